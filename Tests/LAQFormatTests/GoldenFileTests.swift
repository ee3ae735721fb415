import Foundation
import LAQExamples
import LAQFormat
import LAQTestSupport
import Testing

/// Golden files pin the v1.0 bytes: the writer must reproduce them exactly, and the reader must
/// decode them to the values they were made from. `RECORD_GOLDEN=1 swift test --filter Golden`
/// rewrites them (and fails, so a re-recording is never silent).
@Suite struct GoldenFileTests {
    static let cases: [(file: String, make: @Sendable () throws -> LAQWriter)] = [
        ("every-encoding.laq", { try ExampleModels.everyEncoding() }),
    ]

    @Test("golden files are byte-identical to the writer's output", arguments: cases.map(\.file))
    func bytesArePinned(file: String) throws {
        let make = Self.cases.first { $0.file == file }!.make
        let written = try make().encoded()
        let url = TestPaths.testdata("golden/\(file)")
        if ProcessInfo.processInfo.environment["RECORD_GOLDEN"] != nil {
            try Data(written).write(to: url)
            Issue.record("re-recorded \(url.path); run again without RECORD_GOLDEN")
            return
        }
        let golden = try [UInt8](Data(contentsOf: url))
        #expect(golden.count == written.count)
        if let first = zip(golden, written).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
            Issue.record("\(file) differs from the writer's output first at byte \(first.offset)")
        }
    }

    @Test("the golden every-encoding file decodes to its source values")
    func goldenDecodes() throws {
        let file = try LAQFile(path: TestPaths.testdata("golden/every-encoding.laq").path)
        #expect(file.verify().isValid)
        let source = try ExampleModels.everyEncoding()
        for record in source.records {
            let decoded = try file.floats(record.name)
            switch record.data {
            case let .float(values, storage):
                let expected = values.map { value -> Float in
                    switch storage {
                    case .float32: value
                    case .float16: Float(Float16(value))
                    case .bfloat16: HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16Bits(value))
                    }
                }
                #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern), "\(record.name)")
            case let .codebook(layout, levels, codes):
                #expect(decoded == CodebookTensor(layout: layout, shape: record.shape, levels: levels, codes: codes).dequantized())
            case .opaque:
                Issue.record("no opaque tensors in the golden file")
            }
        }
        // spec §6.6's complete example, value by value.
        #expect(try file.floats("base3/spec-example") == [2, -0.5, 0, -1, 0.5, 1])
    }

    @Test("the spec's worked payload bytes appear in the golden file")
    func specExampleBytes() throws {
        let bytes = try [UInt8](Data(contentsOf: TestPaths.testdata("golden/every-encoding.laq")))
        let file = try LAQFile(bytes: bytes)
        let tensor = try #require(file.tensor(named: "base3/spec-example"))
        #expect(tensor.decodedLength == 38)
        let payload: [UInt8] = try file.withDecodedPayload(tensor) { Array($0) }
        #expect(Array(payload[0..<16]) == [0x00, 0x00, 0x80, 0xBF, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0xBF])
        #expect(Array(payload[36...]) == [0xAD, 0x02])
    }
}
