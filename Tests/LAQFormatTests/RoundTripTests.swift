import Foundation
import LAQExamples
import LAQFormat
import LAQTestSupport
import Testing

/// Writing then reading is the identity, for every encoding, k, granularity and length.
@Suite struct RoundTripTests {
    static let lengths = [0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 1023, 1025]

    /// Values that exercise rounding: 0.1 + 2·cos(i), ggml's deterministic data.
    static func values(_ count: Int) -> [Float] { (0..<count).map { 0.1 + 2 * Float(cos(Double($0))) } }

    @Test("float encodings", arguments: FloatStorage.allCases)
    func floats(storage: FloatStorage) throws {
        var writer = LAQWriter()
        for count in Self.lengths {
            try writer.add(TensorRecord(name: "t\(count)", shape: [count], data: .float(Self.values(count), as: storage)))
        }
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.verify().isValid)
        for count in Self.lengths {
            let expected = Self.values(count).map { value -> Float in
                switch storage {
                case .float32: value
                case .float16: Float(Float16(value))
                case .bfloat16: HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16Bits(value))
                }
            }
            #expect(try file.floats("t\(count)") == expected)
        }
    }

    @Test("codebook, k bits, per tensor and per axis", arguments: 1...8)
    func codebooks(bits: Int) throws {
        var writer = LAQWriter()
        var expected: [String: CodebookTensor] = [:]
        for count in Self.lengths {
            for perAxis in [false, true] {
                // Per axis: shape [count, 3], one table per column (axis 1).
                let shape = perAxis ? [count, 3] : [count]
                let elements = shape.reduce(1, *)
                let levelCount = max(1, (1 << bits) - (count % 2))  // sometimes L < 2^k
                let groups = perAxis ? 3 : 1
                let levels = (0..<(groups * levelCount)).map { Float($0) * 0.25 - 1 }
                let codes = (0..<elements).map { UInt8(($0 * 5 + count) % levelCount) }
                let layout = CodebookLayout.bits(bits, levels: levelCount, axis: perAxis ? 1 : nil)
                let name = "k\(bits)/n\(count)/\(perAxis ? "axis" : "tensor")"
                try writer.add(TensorRecord(name: name, shape: shape, data: .codebook(layout, levels: levels, codes: codes)))
                expected[name] = CodebookTensor(layout: layout, shape: shape, levels: levels, codes: codes)
            }
        }
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.verify().isValid)
        for (name, tensor) in expected {
            let read = try file.codebook(name)
            #expect(read == tensor, "\(name)")
            #expect(try file.floats(name) == tensor.dequantized(), "\(name)")
        }
    }

    @Test("codebook, base-3 packing, L = 1…3")
    func base3() throws {
        var writer = LAQWriter()
        var expected: [String: [Float]] = [:]
        for count in Self.lengths {
            for levelCount in 1...3 {
                let codes = (0..<count).map { UInt8(($0 * 7) % levelCount) }
                let levels = (0..<levelCount).map { Float($0) - 1 }
                let name = "n\(count)/L\(levelCount)"
                try writer.add(TensorRecord(name: name, shape: [count], data: .codebook(.base3(levels: levelCount), levels: levels, codes: codes)))
                expected[name] = codes.map { levels[Int($0)] }
            }
        }
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.verify().isValid)
        for (name, values) in expected { #expect(try file.floats(name) == values) }
    }

    @Test("metadata, provenance, architecture and roles survive")
    func manifest() throws {
        let writer = try ExampleModels.demoMLP()
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.manifest.model == writer.model)
        #expect(file.manifest.provenance == writer.provenance)
        #expect(file.manifest.metadata == writer.metadata)
        #expect(file.tensor(named: "dense_1/kernel/v")?.role == .optimizer(of: "dense_1/kernel", slot: "v"))
        #expect(file.tensors.map(\.name) == writer.records.map(\.name))
    }

    @Test("§7: the writer keeps zlib only when smaller; payloads are 64-byte aligned")
    func compressionChoice() throws {
        var writer = LAQWriter()
        try writer.add(TensorRecord(name: "zeros", shape: [1000], data: .float([Float](repeating: 0, count: 1000), as: .float32)))
        var random = SeededGenerator(seed: 7)
        try writer.add(TensorRecord(name: "noise", shape: [1000], data: .float((0..<1000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &random) & 0x3FFF_FFFF) }, as: .float32)))
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.tensor(named: "zeros")?.compression == .zlib)
        #expect(file.tensor(named: "noise")?.compression == Compression.stored)
        #expect(file.tensors.allSatisfy { $0.offset % 64 == 0 })

        writer.options.compression = .none
        let stored = try LAQFile(bytes: try writer.encoded())
        #expect(stored.tensors.allSatisfy { $0.compression == Compression.stored })
        #expect(try stored.floats("zeros") == file.floats("zeros"))
    }

    @Test("balanced: incompressible floats stay stored; a payload that compresses after its first 64 KiB is deflated")
    func balancedPolicy() throws {
        var random = SeededGenerator(seed: 11)
        func noise(_ count: Int) -> [Float] {
            (0..<count).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &random) & 0x3FFF_FFFF) }
        }
        let count = 1 << 18  // 1 MiB: large enough to be probed
        var writer = LAQWriter(options: WriteOptions(compression: .balanced))
        try writer.add(TensorRecord(name: "noise", shape: [count], data: .float(noise(count), as: .float32)))
        // Random for its first quarter, zeros after: the probe's windows are spread over the payload.
        let tail = noise(count / 4) + [Float](repeating: 0, count: count - count / 4)
        try writer.add(TensorRecord(name: "dead_tail", shape: [count], data: .float(tail, as: .float32)))
        // Codes compress well and are below the probe threshold.
        try writer.add(TensorRecord(name: "codes", shape: [4096], data: .codebook(
            .bits(2, levels: 3), levels: [-1, 0, 1], codes: (0..<4096).map { UInt8($0 % 64 == 0 ? 2 : 1) })))
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.tensor(named: "noise")?.compression == Compression.stored)
        #expect(file.tensor(named: "dead_tail")?.compression == .zlib)
        #expect(file.tensor(named: "codes")?.compression == .zlib)
        #expect(try file.floats("dead_tail") == tail)
        #expect(file.verify().isValid)
    }

    @Test("§9: the same content gives byte-identical files")
    func determinism() throws {
        let first = try ExampleModels.demoMLP(seed: 3).encoded()
        let second = try ExampleModels.demoMLP(seed: 3).encoded()
        #expect(first == second)
    }

    @Test("§10: writes are atomic: a failed write leaves the destination untouched and no temporary file")
    func atomicWrite() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.laq").path
        try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
        struct Interrupted: Error {}
        #expect(throws: Interrupted.self) {
            try AtomicFile.write(to: path) { sink in
                try [UInt8](repeating: 1, count: 3 << 20).withUnsafeBytes { try sink.write($0) }
                throw Interrupted()
            }
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "previous")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.laq"])

        try ExampleModels.everyEncoding().write(to: path)
        #expect(LAQFile.verify(path: path).report.isValid)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.laq"])
    }

    @Test("§10: a file written in pieces of every size, past several writeback chunks, reads back byte for byte")
    func largeAtomicWrite() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("large.bin").path
        // Pieces smaller than, equal to and larger than the sink's 1 MiB buffer; 13.5 MiB in all
        // (writeback is started every 4 MiB).
        let sizes = [1, 1 << 20, 3 << 20, 17, (1 << 20) - 1, 5 << 20, 123_457, 4 << 20]
        var expected: [UInt8] = []
        try AtomicFile.write(to: path) { sink in
            for (index, size) in sizes.enumerated() {
                let piece = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                expected += piece
                try piece.withUnsafeBytes { try sink.write($0) }
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(expected))
    }

    @Test("the writer refuses what the format cannot hold")
    func writerChecks() throws {
        var writer = LAQWriter()
        try writer.add(TensorRecord(name: "a", shape: [2], data: .float([1, 2], as: .float32)))
        #expect(throws: FormatError.invalidArgument("tensor 'a': the name is already in the file")) {
            try writer.add(TensorRecord(name: "a", shape: [2], data: .float([1, 2], as: .float32)))
        }
        #expect(throws: FormatError.self) { try writer.add(TensorRecord(name: "b", shape: [3], data: .float([1, 2], as: .float32))) }
        #expect(throws: FormatError.self) {
            try writer.add(TensorRecord(name: "c", shape: [2], data: .codebook(.bits(1), levels: [0, 1], codes: [0, 2])))
        }
        #expect(throws: FormatError.self) {
            try writer.add(TensorRecord(name: "d", shape: [2], role: .optimizer(of: "missing", slot: "m"), data: .float([1, 2], as: .float32)))
        }
        #expect(throws: FormatError.self) { try writer.add(TensorRecord(name: "", shape: [], data: .float([1], as: .float32))) }
        #expect(throws: FormatError.self) {
            try writer.add(TensorRecord(name: "e", shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data: .float([1], as: .float32)))
        }
    }
}
