import Foundation
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing
@testable import LAQAnalysis

/// `laq diff` (spec/EXPORT.md §5) on the bundled Fashion-MNIST MLP and its 1,000 calibration images.
@Suite struct DiffTests {
    static func imported() throws -> Model {
        try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
    }

    static func file(_ model: Model, replacing: [String: TensorData] = [:], provenance: [ProvenanceRecord] = [],
                     compression: WriteOptions.CompressionPolicy? = nil) throws -> LAQFile {
        var writer = try model.laqWriter(provenance: provenance, replacing: replacing)
        if let compression { writer.options.compression = compression }
        return try LAQFile(bytes: try writer.encoded())
    }

    static func quantized(_ model: Model, _ method: Method) throws -> (LAQFile, [TensorQuantization]) {
        let results = try ModelQuantizer.quantize(model, settings: QuantizationSettings(method: method))
        return (try file(model, replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) })), results)
    }

    @Test("§5.1: a file and a re-written copy (other compression, one more provenance step) have the same content")
    func rewrittenCopy() throws {
        let model = try Self.imported()
        let original = try Self.file(model)
        let step = ProvenanceRecord(tool: "laq test", command: "rewrite", arguments: [], parameters: .null, sources: [], created: nil)
        let copy = try Self.file(try Model(file: original), provenance: original.manifest.provenance + [step], compression: WriteOptions.CompressionPolicy.none)
        #expect(copy.storedSHA256 != original.storedSHA256, "the bytes differ")
        let diff = try ModelDiff.compare(original, copy)
        #expect(diff.isSame)
        #expect(diff.tensors.count == original.tensors.count && diff.tensors.allSatisfy { $0.identical })
        #expect(diff.provenanceB.count == diff.provenanceA.count + 1 && diff.sharedProvenance == diff.provenanceA.count)
    }

    @Test("§5.2: max |Δ|, relative L2 and the share of changed codes equal their definitions")
    func tensorMeasures() throws {
        let model = try Self.imported()
        let (lat2a, first) = try Self.quantized(model, .lat2a)
        let (late, second) = try Self.quantized(model, .late)
        let diff = try ModelDiff.compare(lat2a, late)
        #expect(!diff.isSame)
        for (x, y) in zip(first, second) {
            let entry = try #require(diff.tensors.first { $0.name == x.weight })
            let p = x.values, q = y.values
            var maxAbs = 0.0, squaredDifference = 0.0, squaredA = 0.0
            for (a, b) in zip(p, q) {
                let difference = Double(b) - Double(a)
                maxAbs = max(maxAbs, abs(difference))
                squaredDifference += difference * difference
                squaredA += Double(a) * Double(a)
            }
            let relative = (squaredDifference / squaredA).squareRoot()
            let changed = zip(x.codes, y.codes).filter { (a: UInt8, b: UInt8) in a != b }.count
            let codes = Double(changed) / Double(x.codes.count)
            #expect(entry.maxAbsDifference == maxAbs)
            #expect(abs(entry.relativeL2! - relative) <= 1e-12 * max(relative, 1))
            #expect(entry.codesChanged == codes)
            #expect(!entry.identical)
        }
        // Full precision against quantized: no codes to compare on the float side.
        let fp = try ModelDiff.compare(try Self.file(model), lat2a)
        #expect(fp.tensors.first { $0.name == "hidden/kernel" }?.codesChanged == nil)
        #expect(fp.tensors.first { $0.name == "hidden/kernel" }?.encodingB == lat2a.tensor(named: "hidden/kernel")?.encodingSummary)
        #expect(fp.onlyInA.isEmpty && fp.onlyInB.isEmpty)
    }

    @Test("§5.1: a changed layer option is named in the architecture changes")
    func architectureChange() throws {
        var model = try Self.imported()
        let original = try Self.file(model)
        guard case var .object(root) = model.architecture, case var .object(config) = root["config"],
              case var .array(layers) = config["layers"] else { Issue.record("unexpected architecture"); return }
        for index in layers.indices {
            guard case var .object(layer) = layers[index], case var .object(layerConfig) = layer["config"],
                  layerConfig["name"] == .string("hidden") else { continue }
            layerConfig["activation"] = "tanh"
            layer["config"] = .object(layerConfig)
            layers[index] = .object(layer)
        }
        config["layers"] = .array(layers)
        root["config"] = .object(config)
        model.architecture = .object(root)
        let diff = try ModelDiff.compare(original, try Self.file(model))
        #expect(diff.architecture == [ModelDiff.LayerChange(layer: "hidden", kind: .changed, detail: "config: activation")])
        #expect(!diff.isSame)
    }

    @Test("§5.3: with data, the layer whose weights were damaged most is named; identical models agree fully")
    func mostHurtLayer() throws {
        let model = try Self.imported()
        let arrays = try Numpy.load(path: TestPaths.testdata("keras/fmnist_calibration.npz").path)
        let x = try #require(arrays["x"])
        let inputs = [Tensor(shape: x.shape, data: x.values).rows(0..<300)]
        // B: the output layer's kernel gets large noise, the hidden layer's a little.
        var damaged = model
        var random = SplitMix64(seed: 7)
        for index in damaged.weights.indices {
            let scale: Float = switch damaged.weights[index].name {
            case "classes/kernel": 0.5
            case "hidden/kernel": 0.01
            default: 0
            }
            damaged.weights[index].values = damaged.weights[index].values.map { $0 + scale * (Float(random.next() % 2001) / 1000 - 1) }
        }
        let diff = try ModelDiff.compare(try Self.file(model), try Self.file(damaged))
        #expect(diff.changedLayers(in: model) == ["hidden", "classes"])
        let comparison = try OutputComparison.compare(model, damaged, inputs: inputs, changedLayers: diff.changedLayers(in: model), batchSize: 128)
        #expect(comparison.mostHurtLayer == "classes")
        let output = try #require(comparison.outputs.first)
        #expect(output.rows == 300 && output.distribution == "probabilities")
        #expect((output.top1Agreement ?? 1) < 1 && (output.klDivergence ?? 0) > 0)
        #expect(comparison.layers.map { $0.layer } == ["hidden", "classes"])
        #expect(comparison.layers.allSatisfy { $0.isolatedError != nil })

        // Outputs of different shapes are not compared, and say so.
        var accumulator = OutputComparison.Accumulator(name: "out")
        accumulator.add(Tensor(shape: [2, 3], data: [Float](repeating: 0.5, count: 6)), Tensor(shape: [2, 4], data: [Float](repeating: 0.25, count: 8)))
        #expect(accumulator.result.agreement.top1Agreement == nil && accumulator.result.agreement.note?.contains("shapes differ") == true)

        let same = try OutputComparison.compare(model, model, inputs: inputs, changedLayers: [])
        #expect(same.outputs.first?.top1Agreement == 1 && same.outputs.first?.klDivergence == 0 && same.outputs.first?.maxAbsDifference == 0)
        #expect(same.layers.allSatisfy { $0.activationError == 0 && $0.isolatedError == nil })
        #expect(same.mostHurtLayer == nil)
    }

    @Test("KL(p ‖ q) in nats, softmax of logits, and the distribution kind of an output")
    func divergence() {
        let expected = 0.5 * log(0.5 / 0.9) + 0.5 * log(0.5 / 0.1)
        #expect(abs(OutputComparison.Accumulator.kl([0.5, 0.5], [0.9, 0.1]) - expected) < 1e-15)
        #expect(OutputComparison.Accumulator.kind([0.2, 0.8, 0.5, 0.5], width: 2) == "probabilities")
        #expect(OutputComparison.Accumulator.kind([2, -1, 0.5, 0.5], width: 2) == "softmax of logits")
        #expect(OutputComparison.Accumulator.kind([0.2, 0.9], width: 1) == "bernoulli")
        let softmax = OutputComparison.Accumulator.softmax([0, log(3)])
        #expect(abs(softmax[0] - 0.25) < 1e-7 && abs(softmax[1] - 0.75) < 1e-7)
    }
}
