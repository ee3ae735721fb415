import Foundation
import LAQExamples
import LAQFormat
import LAQTestSupport
import Testing

/// `tools/laq_reader.py`, written from spec/FORMAT.md alone, must decode every file the Swift
/// writer produces to the same float32 bits, and reject the same bad files. This is how we know
/// the spec is complete.
@Suite struct PythonReaderInteropTests {
    /// Expected decoded float32 values, computed from the writer's inputs (not from the Swift reader).
    static func expectedValues(_ record: TensorRecord) -> [Float] {
        switch record.data {
        case let .float(values, storage):
            return values.map { value in
                switch storage {
                case .float32: value
                case .float16: Float(Float16(value))
                case .bfloat16: HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16Bits(value))
                }
            }
        case let .codebook(layout, levels, codes):
            return CodebookTensor(layout: layout, shape: record.shape, levels: levels, codes: codes).dequantized()
        case .opaque:
            return []
        }
    }

    static func write(_ writer: LAQWriter, named name: String, in directory: URL) throws {
        try writer.write(to: directory.appendingPathComponent("\(name).laq").path)
        var expected: [UInt8] = []
        for record in writer.records {
            expectedValues(record).withUnsafeBytes { expected.append(contentsOf: $0) }
        }
        try Data(expected).write(to: directory.appendingPathComponent("\(name).expected"))
    }

    /// Files covering every encoding, k, granularity, compression and length.
    static func corpus(in directory: URL) throws -> Int {
        var count = 0
        let lengths = [0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 1023, 1025]
        for storage in FloatStorage.allCases {
            var writer = LAQWriter()
            for length in lengths {
                let values = (0..<length).map { 0.1 + 2 * Float(cos(Double($0))) }
                try writer.add(TensorRecord(name: "n\(length)", shape: [length], data: .float(values, as: storage)))
            }
            try writer.add(TensorRecord(name: "special", shape: [6], data: .float([.infinity, -.infinity, .nan, -0.0, Float(bitPattern: 0x0001_16C2) /* 1e-40, subnormal */, .infinity /* 7e38 in float32 */], as: storage)))
            try write(writer, named: "float-\(storage.rawValue)", in: directory)
            count += 1
        }
        for bits in 1...8 {
            for axis in [nil, 0, 1] as [Int?] {
                var writer = LAQWriter()
                for length in lengths {
                    let shape = axis == nil ? [length] : [length, 3]
                    let elements = shape.reduce(1, *)
                    let levelCount = max(1, (1 << bits) - length % 3)
                    let groups = axis.map { shape[$0] } ?? 1
                    let codes = (0..<elements).map { UInt8(($0 * 7 + length) % levelCount) }
                    let levels = (0..<(groups * levelCount)).map { Float($0) * 0.125 - 2 }
                    try writer.add(
                        TensorRecord(
                            name: "n\(length)", shape: shape,
                            data: .codebook(.bits(bits, levels: levelCount, axis: axis), levels: levels, codes: codes)))
                }
                try write(writer, named: "codebook-k\(bits)-axis\(axis.map(String.init) ?? "none")", in: directory)
                count += 1
            }
        }
        for axis in [nil, 1] as [Int?] {
            var writer = LAQWriter()
            for length in lengths {
                let shape = axis == nil ? [length] : [length, 4]
                let codes = (0..<shape.reduce(1, *)).map { UInt8(($0 * 5 + 1) % 3) }
                let levels = (0..<((axis == nil ? 1 : 4) * 3)).map { Float($0) - 3 }
                try writer.add(TensorRecord(name: "n\(length)", shape: shape, data: .codebook(.base3(axis: axis), levels: levels, codes: codes)))
            }
            try write(writer, named: "base3-axis\(axis.map(String.init) ?? "none")", in: directory)
            count += 1
        }
        try write(try ExampleModels.everyEncoding(), named: "every-encoding", in: directory)
        try write(try ExampleModels.demoMLP(), named: "demo-mlp", in: directory)
        var stored = try ExampleModels.demoMLP()
        stored.options.compression = .none
        try write(stored, named: "demo-mlp-stored", in: directory)
        return count + 3
    }

    /// Bad files, each of which the Python reader must reject with its own error type.
    static func badFiles(in directory: URL) throws -> Int {
        let valid = try ExampleModels.everyEncoding().encoded()
        let surgeon = FileSurgeon(valid)
        var cases: [String: [UInt8]] = [:]
        cases["truncated"] = Array(valid.dropLast(7))
        cases["appended"] = valid + [0]
        cases["magic"] = { var bytes = valid; bytes[0] = 0x88; return bytes }()
        cases["major2"] = { var bytes = valid; bytes[8] = 2; FileSurgeon.fixHeaderCRC(&bytes); return bytes }()
        cases["byteswapped"] = { var bytes = valid; bytes[8] = 0; bytes[9] = 1; FileSurgeon.fixHeaderCRC(&bytes); return bytes }()
        cases["header-crc"] = { var bytes = valid; bytes[40] ^= 0x40; return bytes }()
        cases["manifest-crc"] = { var bytes = valid; bytes[100] ^= 1; return bytes }()
        cases["payload-flip"] = { var bytes = valid; bytes[surgeon.dataOffset] ^= 1; FileSurgeon.fixSHA(&bytes); return bytes }()
        cases["sha"] = { var bytes = valid; bytes[bytes.count - 20] ^= 1; return bytes }()
        cases["overlap"] = surgeon.rebuild(manifest: { manifest in
            var tensors = manifest["tensors"] as! [[String: Any]]
            tensors[1]["offset"] = tensors[0]["offset"]
            manifest["tensors"] = tensors
        })
        cases["duplicate"] = surgeon.rebuild(manifest: { manifest in
            var tensors = manifest["tensors"] as! [[String: Any]]
            tensors[2]["name"] = tensors[3]["name"]
            manifest["tensors"] = tensors
        })
        cases["canonical-duplicate"] = surgeon.rebuild(manifest: { manifest in
            var tensors = manifest["tensors"] as! [[String: Any]]
            tensors[2]["name"] = "caf\u{E9}"
            tensors[3]["name"] = "cafe\u{301}"
            manifest["tensors"] = tensors
        })
        cases["bomb"] = surgeon.rebuild(manifest: { manifest in
            var tensors = manifest["tensors"] as! [[String: Any]]
            let index = tensors.firstIndex { $0["name"] as? String == "zlib/zeros" }!
            tensors[index]["shape"] = [1 << 30]
            tensors[index]["decoded_length"] = 4 << 30
            manifest["tensors"] = tensors
        })
        cases["deep"] = surgeon.rebuild(manifest: { manifest in
            var value: Any = 0
            for _ in 0..<300 { value = [value] }
            manifest["metadata"] = ["x": value]
        })
        for (name, bytes) in cases {
            try Data(bytes).write(to: directory.appendingPathComponent("bad-\(name).laq"))
        }
        return cases.count
    }

    /// Manifests that test the JSON rules of §4 (strictness): each is the valid every-encoding
    /// file with its manifest text edited in place (the text keeps its length, padded with
    /// spaces, so offsets stay right). Name → (edited manifest, whether a reader must accept it).
    static func jsonCases() throws -> (cases: [(name: String, manifest: [UInt8], valid: Bool)], data: [UInt8], expected: [UInt8]) {
        let writer = try ExampleModels.everyEncoding()
        var expected: [UInt8] = []
        for record in writer.records { expectedValues(record).withUnsafeBytes { expected.append(contentsOf: $0) } }
        let filler = String(repeating: "x", count: 600)
        let base = FileSurgeon(FileSurgeon(try writer.encoded()).rebuild(manifest: { $0["metadata"] = ["note": filler] }))
        let text = Array(base.original[64..<(64 + base.manifestLength)])
        let data = Array(base.original[base.dataOffset..<(base.dataOffset + base.dataLength)])
        let note = Array("\"note\":\"\(filler)\"".utf8)
        let at = try #require(text.firstRange(of: note))
        /// The manifest with the filler member replaced by `members` (raw bytes), padded back.
        func metadata(_ members: [UInt8]) -> [UInt8] {
            var edited = text
            edited.replaceSubrange(at, with: members)
            return edited + [UInt8](repeating: 0x20, count: text.count - edited.count)
        }
        func metadata(_ members: String) -> [UInt8] { metadata(Array(members.utf8)) }
        /// The manifest with the first `old` replaced by `new` and the filler shortened to match.
        func replacing(_ old: String, _ new: String) -> [UInt8] {
            var edited = metadata("\"note\":\"\(String(repeating: "x", count: 600 - (new.utf8.count - old.utf8.count)))\"")
            let range = edited.firstRange(of: Array(old.utf8))!
            edited.replaceSubrange(range, with: Array(new.utf8))
            return edited
        }
        let offset = "\"offset\":\(Int(base.dataOffset))"
        let nested = { (depth: Int) in "\"a\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        let cases: [(String, [UInt8], Bool)] = [
            ("bom", [0xEF, 0xBB, 0xBF] + metadata("\"a\":1").dropLast(3), false),
            ("duplicate-key", metadata("\"a\":1,\"a\":2"), false),
            ("duplicate-canonical-key", metadata("\"caf\u{E9}\":1,\"cafe\u{301}\":2"), false),
            ("duplicate-tensor-key", replacing("\"dtype\":\"float32\"", "\"dtype\":\"float32\",\"dtype\":\"float32\""), false),
            ("trailing-comma-object", metadata("\"a\":1,"), false),
            ("trailing-comma-array", metadata("\"a\":[1,2,]"), false),
            ("integer-with-fraction", replacing(offset, offset + ".0"), false),
            ("integer-with-exponent", replacing(offset, offset + "e0"), false),
            ("nan", metadata("\"a\":NaN"), false),
            ("infinity", metadata("\"a\":Infinity"), false),
            ("negative-infinity", metadata("\"a\":-Infinity"), false),
            ("overflow", metadata("\"a\":1e999"), false),
            ("integer-overflow", metadata("\"a\":1" + String(repeating: "0", count: 400)), false),
            ("long-integer", metadata("\"a\":1" + String(repeating: "0", count: 300)), true),
            ("lone-surrogate", metadata("\"a\":\"\\ud800\""), false),
            ("lone-low-surrogate", metadata("\"a\":\"\\udc00x\""), false),
            ("invalid-utf8", metadata(Array("\"a\":\"".utf8) + [0xFF] + Array("\"".utf8)), false),
            ("control-character", metadata(Array("\"a\":\"".utf8) + [0x01] + Array("\"".utf8)), false),
            ("leading-zero", metadata("\"a\":01"), false),
            ("comment", metadata("\"a\":/* c */1"), false),
            ("single-quotes", metadata("'a':1"), false),
            ("too-deep", metadata(nested(127)), false),
            ("deepest", metadata(nested(126)), true),
            ("whitespace", metadata("\"a\" :\n [ 1 ,\t2 ] "), true),
            ("escapes", metadata("\"a\":\"\\u00e9\\/\\n\\ud83d\\ude00\""), true),
            ("large-integer", metadata("\"a\":100000000000000000000000000000"), true),
            ("float", metadata("\"a\":-1.5e3"), true),
            ("unsorted-keys", metadata("\"b\":1,\"a\":2"), true),
        ]
        var trailing = metadata("\"a\":1")
        trailing[trailing.count - 1] = UInt8(ascii: "x")
        return (cases + [("text-after-value", trailing, false)], data, expected)
    }

    /// Runs tools/check_interop.py on `directory`: its exit status and output.
    static func checkInterop(_ directory: URL) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestPaths.repositoryRoot.appendingPathComponent("tools/check_interop.py").path, directory.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("the Swift and Python readers give every crafted manifest the same verdict (§4)")
    func strictJSONAgrees() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (cases, data, expected) = try Self.jsonCases()
        for (name, manifest, valid) in cases {
            let file = FileSurgeon.assemble(manifest: manifest, data: data)
            let path = directory.appendingPathComponent(valid ? "json-\(name).laq" : "bad-json-\(name).laq")
            try Data(file).write(to: path)
            if valid { try Data(expected).write(to: directory.appendingPathComponent("json-\(name).expected")) }
            let (_, report) = LAQFile.verify(path: path.path)
            #expect(report.problems.isEmpty == valid, "\(name): \(report.problems.map(\.error))")
        }
        let (status, output) = try Self.checkInterop(directory)
        #expect(status == 0, "\(output)")
        #expect(output.contains("interop: \(cases.count) passed, 0 failed"), "\(output)")
    }

    @Test func pythonReaderAgrees() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = try Self.corpus(in: directory)
        let bad = try Self.badFiles(in: directory)
        let (status, output) = try Self.checkInterop(directory)
        #expect(status == 0, "\(output)")
        #expect(output.contains("interop: \(good + bad) passed, 0 failed"), "\(output)")
    }
}
