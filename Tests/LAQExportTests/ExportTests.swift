import Foundation
import LAQData
import LAQExamples
import LAQExport
import LAQFormat
import LAQImport
import LAQEngine
import LAQQuantize
import LAQTestSupport
import Testing

/// `laq export` (spec/EXPORT.md). Keras loading the exported `.h5` is checked by
/// tools/check_export.py (CI); here: laq's own importer reads every exported `.h5` back into the
/// same weights, the safetensors bytes follow the published rules, and failures write nothing.
@Suite struct ExportTests {
    /// A fixture quantized (lat2a, one-shot), written and read back: what `laq export` sees.
    static func quantizedFile(_ fixture: String) throws -> LAQFile {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let results = try ModelQuantizer.quantize(model, settings: QuantizationSettings(method: .lat2a))
        let writer = try model.laqWriter(provenance: [], replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
        return try LAQFile(bytes: try writer.encoded())
    }

    @Test("an exported .h5 imports back into exactly the file's (dequantized) weights",
          arguments: ["k3_tiny.h5", "tfk_tiny.h5", "k3_branches.h5", "k3_char_lstm.h5", "k3_image.keras", "k3_nested.h5",
                      "k3_nested.keras", "tfk_nested.h5", "k3_shared.h5", "tfk_shared.h5"])
    func h5RoundTrip(fixture: String) throws {
        let file = try Self.quantizedFile(fixture)
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.h5").path
        let summary = try Exporter.export(file, as: .h5, to: path)
        let expected = try Model(file: file)
        #expect(summary.tensors == expected.weights.count && summary.bytes > 0)
        let reimported = try KerasImporter().importModel(path: path)
        #expect(reimported.kind == .legacyModel)
        #expect(reimported.model.weights.map(\.name) == expected.weights.map(\.name))
        for (ours, theirs) in zip(reimported.model.weights, expected.weights) {
            #expect(ours.values == theirs.values && ours.shape == theirs.shape, "\(fixture): \(ours.name)")
        }
        #expect(reimported.model.architecture == expected.architecture)
        // Keras' tf.keras 2.x naming (`:0`) for tf.keras sources, Keras 3's otherwise.
        #expect(reimported.model.source.kerasVersion == expected.source.kerasVersion)
    }

    @Test("npz: one float32 array per weight under <layer>/<weight>, the same bytes every time")
    func npz() throws {
        let file = try Self.quantizedFile("k3_tiny.h5")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("a.npz").path
        let second = directory.appendingPathComponent("b.npz").path
        try Exporter.export(file, as: .npz, to: first)
        try Exporter.export(file, as: .npz, to: second)
        #expect(FileManager.default.contents(atPath: first) == FileManager.default.contents(atPath: second))
        let arrays = try Numpy.load(path: first)
        let weights = try Exporter.weights(of: file)
        #expect(Set(arrays.keys) == Set(weights.map(\.name)))
        #expect(!arrays.keys.contains { $0.hasPrefix("optimizer/") }, "optimizer state is not exported")
        for weight in weights {
            #expect(arrays[weight.name]?.values == weight.values && arrays[weight.name]?.shape == weight.shape && arrays[weight.name]?.dtype == "<f4")
        }
        // Quantized tensors are exported dequantized: the values are the codebook's levels.
        let kernel = try #require(arrays["dense/kernel"])
        #expect(Set(kernel.values).count <= 3)
    }

    @Test("safetensors: length-prefixed JSON header padded to 8 bytes, F32 tensors contiguous in name order")
    func safetensorsLayout() throws {
        let tensors = [
            ExportedTensor(name: "b/kernel", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
            ExportedTensor(name: "a/bias", shape: [3], values: [-1, 0, 1]),
            ExportedTensor(name: "scalar", shape: [], values: [7]),
        ]
        let bytes = try SafeTensors.encode(tensors, metadata: ["producer": "laq"])
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect((8 + length) % 8 == 0)
        #expect(bytes[8] == UInt8(ascii: "{"))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
        #expect(header["__metadata__"] as? [String: String] == ["producer": "laq"])
        let data = Array(bytes[(8 + length)...])
        var expectedOffset = 0
        for name in ["a/bias", "b/kernel", "scalar"] {
            let entry = try #require(header[name] as? [String: Any])
            #expect(entry["dtype"] as? String == "F32")
            let offsets = try #require(entry["data_offsets"] as? [Int])
            #expect(offsets[0] == expectedOffset, "\(name): no hole, no overlap")
            let tensor = tensors.first { $0.name == name }!
            #expect(entry["shape"] as? [Int] == tensor.shape)
            let values = data[offsets[0]..<offsets[1]].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(values == tensor.values)
            expectedOffset = offsets[1]
        }
        #expect(expectedOffset == data.count, "the tensors cover the data exactly")
        #expect(throws: ExportError.self) { try SafeTensors.encode(tensors + [tensors[0]]) }
        #expect(throws: ExportError.self) { try SafeTensors.encode([ExportedTensor(name: "__metadata__", shape: [1], values: [0])]) }
    }

    @Test("a file without a Keras architecture exports as npz but not as h5, and the failed export writes nothing")
    func noArchitecture() throws {
        var writer = LAQWriter(model: ModelInfo(), provenance: [])
        try writer.add(TensorRecord(name: "dense/kernel", shape: [2, 2], data: ExampleModels.binary([1, -1, 0.5, -0.5])))
        let file = try LAQFile(bytes: try writer.encoded())
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let h5 = directory.appendingPathComponent("demo.h5").path
        #expect {
            try Exporter.export(file, as: .h5, to: h5)
        } throws: { error in
            guard case .noArchitecture? = error as? ExportError else { return false }
            return true
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty, "no output, no temporary file")
        try Exporter.export(file, as: .npz, to: directory.appendingPathComponent("demo.npz").path)
    }
}
