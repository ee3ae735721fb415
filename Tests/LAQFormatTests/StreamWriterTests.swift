import Foundation
import LAQFormat
import LAQTestSupport
import Testing

/// ``LAQStreamWriter``: tensors spooled as they come, laid out at the end.
@Suite struct StreamWriterTests {
    /// Tensors of every kind: float encodings, codebooks, an opaque payload, compressible and
    /// not, empty, with optimizer slots after their weights.
    static func records() throws -> [TensorRecord] {
        var records: [TensorRecord] = []
        for (index, count) in [0, 1, 17, 1025, 70_000].enumerated() {
            let values = (0..<count).map { 0.1 + 2 * Float(cos(Double($0 * (index + 1)))) }
            let storage = FloatStorage.allCases[index % 3]
            records.append(TensorRecord(name: "w\(index)", shape: [count], data: .float(values, as: storage)))
            records.append(TensorRecord(name: "optimizer/v/w\(index)", shape: [count], role: .optimizer(of: "w\(index)", slot: "v"),
                                        data: .float([Float](repeating: 0.5, count: count), as: .float32)))
        }
        let codes = (0..<3000).map { UInt8($0 * 7 % 3) }
        records.append(TensorRecord(name: "ternary", shape: [1000, 3], data: .codebook(.bits(2, levels: 3, axis: 1), levels: (0..<9).map(Float.init), codes: codes)))
        records.append(TensorRecord(name: "future", shape: [4], features: ["future-encoding"], data: .opaque(encoding: ["type": .string("future")], payload: [1, 2, 3])))
        return records
    }

    static func streamed(_ records: [TensorRecord], order: [String]?, policy: WriteOptions.CompressionPolicy, in directory: URL) throws -> [UInt8] {
        let path = directory.appendingPathComponent("streamed.laq").path
        let writer = try LAQStreamWriter(path: path, metadata: ["note": .string("streamed")], options: WriteOptions(compression: policy))
        for record in records { try writer.add(record) }
        // While tensors are added, nothing appears in the directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        try writer.finish(order: order)
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("the file equals LAQWriter's for the same tensors in the same order", arguments: [WriteOptions.CompressionPolicy.none, .smallest, .balanced])
    func sameBytes(policy: WriteOptions.CompressionPolicy) throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let records = try Self.records()
        var writer = LAQWriter(metadata: ["note": .string("streamed")], options: WriteOptions(compression: policy))
        for record in records { try writer.add(record) }
        let expected = try writer.encoded()
        #expect(try Self.streamed(records, order: nil, policy: policy, in: directory) == expected)
        let file = try LAQFile(bytes: expected)
        #expect(file.verify().isValid)
    }

    @Test("finish(order:) lays the tensors out in the order given")
    func order() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let records = try Self.records()
        // Weights first, then slots, then the rest: an order other than the one added.
        let ordered = records.filter { $0.role == .weight && $0.name.hasPrefix("w") } + records.filter { $0.role != .weight } + records.filter { !$0.name.hasPrefix("w") && $0.role == .weight }
        #expect(ordered.map(\.name) != records.map(\.name))
        var writer = LAQWriter(metadata: ["note": .string("streamed")], options: WriteOptions(compression: .balanced))
        for record in ordered { try writer.add(record) }
        #expect(try Self.streamed(records, order: ordered.map(\.name), policy: .balanced, in: directory) == writer.encoded())
    }

    @Test("bad records and orders are refused, and nothing is written")
    func refusals() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.laq").path
        let writer = try LAQStreamWriter(path: path)
        try writer.add(TensorRecord(name: "a", shape: [2], data: .float([1, 2], as: .float32)))
        try writer.add(TensorRecord(name: "optimizer/m/a", shape: [2], role: .optimizer(of: "a", slot: "m"), data: .float([0, 0], as: .float32)))
        func refused(_ body: () throws -> Void, _ words: String) {
            do { try body(); Issue.record("accepted: \(words)") } catch { #expect("\(error)".contains(words), "\(error)") }
        }
        refused({ try writer.add(TensorRecord(name: "a", shape: [1], data: .float([1], as: .float32))) }, "already in the file")
        refused({ try writer.add(TensorRecord(name: "optimizer/v/b", shape: [1], role: .optimizer(of: "b", slot: "v"), data: .float([1], as: .float32))) }, "has not been added as a weight")
        refused({ try writer.add(TensorRecord(name: "c", shape: [3], data: .float([1], as: .float32))) }, "1 values for shape [3]")
        refused({ try writer.finish(order: ["a"]) }, "names 1 tensors")
        refused({ try writer.finish(order: ["a", "a"]) }, "1 distinct")
        refused({ try writer.finish(order: ["a", "z"]) }, "'z', which was not added")
        refused({ try writer.finish(order: ["optimizer/m/a", "a"]) }, "before its weight 'a'")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        try writer.finish(order: ["a", "optimizer/m/a"])
        let file = try LAQFile(path: path)
        #expect(file.verify().isValid)
        #expect(try file.floats("a") == [1, 2])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.laq"])
    }

    @Test("a writer whose directory is missing fails at once, naming it")
    func missingDirectory() {
        #expect(throws: FormatError.self) { try LAQStreamWriter(path: "/nonexistent-laq-dir/x.laq") }
    }

    @Test("a mapped input gives its pages back and reads the same bytes afterwards; scan passes every byte once")
    func mappedFileRelease() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("input.bin").path
        let bytes = (0..<(20 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let file = try InputFile.mapFile(path)
        #expect(file.data.count == bytes.count)
        var scanned: [UInt8] = []
        file.scan { scanned.append(contentsOf: $0) }
        #expect(scanned == bytes)
        file.release()
        file.release(5..<(9 << 20))
        #expect(Array(file.data) == bytes)
        var part: [UInt8] = []
        file.scan(1000..<(12 << 20)) { part.append(contentsOf: $0) }
        #expect(part == Array(bytes[1000..<(12 << 20)]))
    }
}
