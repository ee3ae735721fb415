import Foundation
import LAQCalibration
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQModel
import LAQQuantize
import LAQTestSupport
import Testing

/// The calibration run on real data: the bundled Fashion-MNIST MLP and 1,000 images of the
/// training split (testdata/keras/fmnist_calibration.npz, images 40,000–40,999, stored as float16),
/// 800 for calibration and 200 for validation.
@Suite struct CalibrationTests {
    static func data() throws -> (Calibration.Data, Calibration.Data) {
        let arrays = try Numpy.load(path: TestPaths.testdata("keras/fmnist_calibration.npz").path)
        let x = try #require(arrays["x"])
        let y = try #require(arrays["y"])
        let all = Calibration.Data(inputs: [Tensor(shape: x.shape, data: x.values)], labels: y.values, labelWidth: 1)
        return (all.subset(0..<800), all.subset(800..<1000))
    }

    @Test("a short calibration run beats one-shot quantization of the same model", arguments: [Method.late, .lat2a, .lab])
    func beatsOneShot(method: Method) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let (training, validation) = try Self.data()
        var settings = Calibration.Settings(quantization: QuantizationSettings(method: method))
        settings.epochs = 2
        settings.batchSize = 32
        let result = try Calibration(settings: settings, loss: .sparseCategoricalCrossentropy(fromLogits: false))
            .run(model, training: training, validation: validation)
        try #require(result.bestEpoch > 0, "\(method): calibration did not improve on one-shot")
        let kept = result.epochs[result.bestEpoch - 1]
        #expect(kept.validationLoss < result.before.validationLoss, "\(method): \(kept.validationLoss) vs one-shot \(result.before.validationLoss)")
        #expect(result.steps == 2 * 25)
        #expect(Set(result.quantized.map(\.weight)) == ["hidden/kernel", "classes/kernel"])
        // Clipping keeps the quantized tensors' full-precision weights in [−1, 1].
        #expect(result.model.weight(named: "hidden/kernel")!.values.allSatisfy { abs($0) <= 1 })
    }

    @Test("the run is reproducible: the same seed gives the same codes")
    func reproducible() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let (training, validation) = try Self.data()
        var settings = Calibration.Settings(quantization: QuantizationSettings(method: .lata))
        settings.batchSize = 100
        let run = { try Calibration(settings: settings, loss: .sparseCategoricalCrossentropy(fromLogits: false)).run(model, training: training, validation: validation) }
        let first = try run()
        let second = try run()
        #expect(first.quantized.map(\.codes) == second.quantized.map(\.codes))
    }
}
