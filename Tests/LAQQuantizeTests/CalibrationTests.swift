import Foundation
import LAQCalibration
import LAQData
import LAQEngine
import LAQExamples
import LAQFormat
import LAQImport
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

    @Test("BatchNormalization's statistics are re-estimated for the kept quantized weights (the population's over the batches); 0 batches keeps the moving averages")
    func statisticsReestimated() throws {
        // The demo MLP: 784 → dense_1 (128, linear) → BatchNormalization → ReLU → 64 → 10.
        let model = try Model(file: LAQFile(bytes: try ExampleModels.demoMLP().encoded()))
        let (training, validation) = try Self.data()
        let small = training.subset(0..<200)
        var settings = Calibration.Settings(quantization: QuantizationSettings(method: .lat2a))
        settings.batchSize = 50
        settings.statisticsBatches = 4  // every sample
        let loss = Loss.sparseCategoricalCrossentropy(fromLogits: false)
        let result = try Calibration(settings: settings, loss: loss).run(model, training: small, validation: validation.subset(0..<100))
        #expect(result.statisticsBatches == 4)
        // The reference: dense_1's outputs with the kept quantized kernel, over the 200 samples.
        let kernel = try #require(result.quantized.first { $0.weight == "dense_1/kernel" }).values
        let bias = try #require(result.model.weight(named: "dense_1/bias")).values
        let x = small.inputs[0].data
        var sum = [Double](repeating: 0, count: 128), squares = [Double](repeating: 0, count: 128)
        for row in 0..<200 {
            for j in 0..<128 {
                var z = Double(bias[j])
                for i in 0..<784 { z += Double(x[row * 784 + i]) * Double(kernel[i * 128 + j]) }
                sum[j] += z
                squares[j] += z * z
            }
        }
        let mean = try #require(result.model.weight(named: "batch_normalization/moving_mean")).values
        let variance = try #require(result.model.weight(named: "batch_normalization/moving_variance")).values
        for j in 0..<128 {
            let m = sum[j] / 200
            #expect(abs(Double(mean[j]) - m) < 1e-4 * max(1, abs(m)))
            #expect(abs(Double(variance[j]) - (squares[j] / 200 - m * m)) < 1e-4 * max(1, squares[j] / 200))
        }
        settings.statisticsBatches = 0
        let plain = try Calibration(settings: settings, loss: loss).run(model, training: small, validation: validation.subset(0..<100))
        #expect(plain.statisticsBatches == 0)
        #expect(plain.model.weight(named: "batch_normalization/moving_mean")!.values != mean)
        // 40 samples are fewer values per channel than the minimum (64): the moving averages stay.
        settings.statisticsBatches = 32
        let few = try Calibration(settings: settings, loss: loss).run(model, training: training.subset(0..<40), validation: validation.subset(0..<100))
        settings.statisticsBatches = 0
        let fewPlain = try Calibration(settings: settings, loss: loss).run(model, training: training.subset(0..<40), validation: validation.subset(0..<100))
        #expect(few.statisticsBatches == 0)
        #expect(few.model.weight(named: "batch_normalization/moving_mean")!.values == fewPlain.model.weight(named: "batch_normalization/moving_mean")!.values)
    }

    @Test("the curvature refresh schedule: at the first step with a v, then every R steps; R = 1 every step")
    func refreshSchedule() {
        // Steps are numbered by Adam's iterations before them: 0 has no v, 1 the first.
        func refreshed(every: Int, steps: Int) -> [Int] {
            var at: Int?
            var result: [Int] = []
            for iterations in 0..<steps where Calibration.refreshes(iterations: iterations, refreshedAt: at, every: every) {
                result.append(iterations)
                at = iterations > 0 ? iterations : nil
            }
            return result
        }
        #expect(refreshed(every: 1, steps: 6) == [0, 1, 2, 3, 4, 5])
        #expect(refreshed(every: 5, steps: 13) == [0, 1, 6, 11])
        // A run shorter than R still weights by the first v, not by none.
        #expect(refreshed(every: 100, steps: 50) == [0, 1])
    }

    @Test("the default learning rate: a third of the imported optimizer's, else 1e-3 / 3")
    func defaultRate() throws {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let trained = try #require(model.optimizer?.learningRate)
        #expect(abs(trained - 1e-3) < 1e-9)
        #expect(Calibration.Settings.defaultLearningRate(for: model).rate == Float(trained / 3))
        #expect(Calibration.Settings.defaultLearningRate(for: model).reason == "a third of the imported optimizer's learning rate")
        model.optimizer?.learningRate = .nan
        #expect(Calibration.Settings.defaultLearningRate(for: model).rate == Calibration.Settings.defaultLearningRate)
        #expect(Calibration.Settings.defaultLearningRate(for: model).reason.hasPrefix("1e-3 / 3 (the optimizer's rate nan"))
        model.optimizer = nil
        #expect(Calibration.Settings.defaultLearningRate(for: model) == (Float(1e-3) / 3, "1e-3 / 3 (the model has no optimizer rate)"))
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

    @Test("§9.1: each schedule's rate per epoch, decays counted after the epochs they name")
    func scheduleRates() throws {
        let base: Float = 0.01
        func rates(_ schedule: LearningRateSchedule, _ epochs: [Int]) -> [Float] { epochs.map { schedule.rate(base: base, epoch: $0) } }
        #expect(rates(.constant, [1, 50]) == [base, base])
        // The paper's MNIST: ×0.1 after epochs 15 and 25.
        #expect(rates(.steps(factor: 0.1, after: [15, 25]), [1, 15, 16, 25, 26]) == [base, base, base * 0.1, base * 0.1, base * powf(0.1, 2)])
        // CIFAR-10: ×0.5 every 15 epochs.
        #expect(rates(.periodic(factor: 0.5, period: 15), [1, 15, 16, 30, 31]) == [base, base, base * 0.5, base * 0.5, base * 0.25])
        // The character LSTM: ×0.98 per epoch after epoch 10.
        #expect(rates(.exponential(factor: 0.98, after: 10), [1, 10, 11, 12]) == [base, base, base * 0.98, base * powf(0.98, 2)])
    }

    @Test("schedules parse from their command-line form and back; bad ones are refused with a reason")
    func scheduleParsing() throws {
        for text in ["constant", "step:0.1:15,25", "every:15:0.5", "exp:0.98:10"] {
            #expect(try LearningRateSchedule(parsing: text).description == text)
        }
        for bad in ["", "linear", "step:2:15", "step:0.1:", "step:0.1:0", "every:0:0.5", "every:15", "exp:-1:3", "constant:1"] {
            #expect(throws: ScheduleError.self, "\(bad)") { try LearningRateSchedule(parsing: bad) }
        }
    }

    @Test("the calibration run uses the schedule: a zero rate leaves every full-precision weight as it was")
    func scheduleApplied() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let (training, validation) = try Self.data()
        var settings = Calibration.Settings(quantization: QuantizationSettings(method: .lata))
        settings.batchSize = 100
        settings.schedule = .exponential(factor: 0, after: 0)
        let frozen = try Calibration(settings: settings, loss: .sparseCategoricalCrossentropy(fromLogits: false))
            .run(model, training: training, validation: validation)
        #expect(frozen.steps == 8, "the run took its 8 steps, at rate 0")
        #expect(frozen.model.weights == model.weights)
    }
}
