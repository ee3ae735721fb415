import Foundation
import LAQCalibration
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing

/// Every method on every bundled model, one-shot and calibrated (issue 5's "done when"): each
/// quantizable kernel gets codes in its method's layout, the quantized model written to a `.laq`
/// file and read back gives exactly the in-memory quantized model's outputs, and a short
/// calibration run (two steps, mean squared error against Keras' stored predictions, so that every
/// output kind has a target) trains and keeps finite results.
@Suite struct EveryFixtureTests {
    /// One file per distinct model and optimizer-state form (tf.keras and Keras 3, Adam, AdamW,
    /// Nadam, Adamax, SGD without a Hessian), `.io.npz` holding Keras' inputs and predictions.
    static let fixtures: [(file: String, io: String)] = [
        ("k3_tiny.h5", "k3_tiny"), ("k3_tiny_adamw.h5", "k3_tiny"), ("k3_tiny_nadam.h5", "k3_tiny"),
        ("k3_tiny_adamax.h5", "k3_tiny"), ("k3_tiny_sgd.h5", "k3_tiny"), ("tfk_tiny.h5", "tfk_tiny"),
        ("tfk_tiny_legacy_adam.h5", "tfk_tiny_legacy_adam"), ("k3_branches.h5", "k3_branches"),
        ("k3_conv1d.h5", "k3_conv1d"), ("k3_image.keras", "k3_image"), ("k3_fmnist_mlp.h5", "k3_fmnist_mlp"),
        ("k3_fmnist_cnn.keras", "k3_fmnist_cnn"), ("k3_char_lstm.h5", "k3_char_lstm"),
        ("tfk_fmnist_mlp.h5", "tfk_fmnist_mlp"), ("k3_nested.h5", "k3_nested"), ("tfk_nested.h5", "tfk_nested"),
        ("k3_shared.h5", "k3_shared"), ("tfk_shared.h5", "tfk_shared"),
    ]

    static let methods: [Method] = [
        .bc, .bwn, .lab, .twn, .late, .lata, .lat2e, .lat2a,
        .laq(bits: 3, levels: .linear, alpha: .exact), .laq(bits: 3, levels: .log, alpha: .exact),
        .laq(bits: 2, levels: .linear, alpha: .reference), .dorefa(bits: 3), .rtn(bits: 4),
    ]

    struct Fixture {
        var model: Model
        var data: Calibration.Data
    }

    static func load(_ fixture: (file: String, io: String)) throws -> Fixture {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture.file)").path).model
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(fixture.io).io.npz").path)
        let inputs: [Tensor] = if let x = io["x"] {
            [Tensor(shape: x.shape, data: x.values)]
        } else {
            (0...).lazy.map { io["x\($0)"] }.prefix { $0 != nil }.map { Tensor(shape: $0!.shape, data: $0!.values) }
        }
        let y = try #require(io["y"])
        let data = Calibration.Data(inputs: inputs, labels: y.values, labelWidth: y.shape.last!)
        return Fixture(model: model, data: data.subset(0..<16))
    }

    static func outputs(_ model: Model, _ quantized: [TensorQuantization], _ inputs: [Tensor]) throws -> [Float] {
        var effective = model
        for result in quantized {
            let index = try #require(effective.weights.firstIndex { $0.name == result.weight })
            effective.weights[index].values = result.values
        }
        return try Executor(model: effective).predict(inputs)[0].data
    }

    @Test("one-shot: every method on every fixture writes codes that read back and run as computed",
          arguments: fixtures.map(\.file))
    func oneShot(file: String) throws {
        let fixture = try Self.load(Self.fixtures.first { $0.file == file }!)
        let kernels = fixture.model.weights.filter { ModelQuantizer.isQuantizable($0, in: fixture.model) }.map(\.name)
        try #require(!kernels.isEmpty)
        for method in Self.methods {
            let results = try ModelQuantizer.quantize(fixture.model, settings: QuantizationSettings(method: method))
            #expect(results.map(\.weight) == kernels, "\(file) \(method)")
            for result in results {
                #expect(result.codes.allSatisfy { Int($0) < result.layout.levelCount }, "\(file) \(method) \(result.weight): code out of its table")
                #expect(result.levels.allSatisfy { $0.isFinite } && result.weightedError.isFinite, "\(file) \(method) \(result.weight)")
            }
            let expected = try Self.outputs(fixture.model, results, fixture.data.inputs)
            #expect(expected.allSatisfy { $0.isFinite }, "\(file) \(method): non-finite output")
            let writer = try fixture.model.laqWriter(
                provenance: [], includeOptimizer: false,
                replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
            let reread = try Model(file: try LAQFile(bytes: try writer.encoded()))
            let actual = try Executor(model: reread).predict(fixture.data.inputs)[0].data
            #expect(actual == expected, "\(file) \(method): the file's model differs from the computed one")
        }
    }

    @Test("calibrated: every method on every fixture trains through its quantized weights",
          arguments: fixtures.map(\.file))
    func calibrated(file: String) throws {
        let fixture = try Self.load(Self.fixtures.first { $0.file == file }!)
        let training = fixture.data.subset(0..<8)
        let validation = fixture.data.subset(8..<16)
        for method in Self.methods {
            var settings = Calibration.Settings(quantization: QuantizationSettings(method: method))
            settings.batchSize = 4
            settings.learningRate = 1e-3
            let result = try Calibration(settings: settings, loss: .meanSquaredError)
                .run(fixture.model, training: training, validation: validation)
            #expect(result.steps == 2, "\(file) \(method)")
            #expect(result.epochs.count == 1 && result.epochs[0].trainingLoss.isFinite && result.epochs[0].validationLoss.isFinite,
                    "\(file) \(method): \(result.epochs)")
            #expect(result.quantized.allSatisfy { $0.levels.allSatisfy { $0.isFinite } }, "\(file) \(method)")
            // The kept model is the one-shot start or the trained one, and its outputs are finite.
            #expect(try Self.outputs(result.model, result.quantized, validation.inputs).allSatisfy { $0.isFinite }, "\(file) \(method)")
        }
    }
}
