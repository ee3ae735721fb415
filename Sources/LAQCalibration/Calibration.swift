import Foundation
import LAQEngine
import LAQFormat
import LAQQuantize

/// The loss-aware training loop of Hou & Kwok (loss-aware-quantization.md §4), as a short
/// calibration fine-tuning run on the user's data:
///
///     for each step:
///         d = √v + 1e-8 for each quantized tensor, v Adam's second moment after the previous step
///         ŵ = Quantize(method, w, d, warm start = previous ŵ)
///         forward and backward with ŵ in place of w (training mode)
///         Adam step on the full-precision w with ∂loss/∂ŵ (straight-through); everything not
///         quantized trains in full precision with the same Adam
///         clip the quantized tensors' w to [−1, 1] (unless disabled)
///
/// After each epoch the model is quantized with the current d and evaluated on the validation
/// data; the epoch with the lowest validation loss is kept, the one-shot quantization counting as
/// epoch 0 (so a run that does not help returns the one-shot result).
public struct Calibration {
    public struct Settings: Sendable {
        public var quantization: QuantizationSettings
        public var epochs = 1
        public var batchSize = 64
        /// The rate when the model's optimizer state does not say one: a third of Keras' Adam
        /// default (``defaultLearningRate(for:)``).
        public static let defaultLearningRate: Float = 1e-3 / 3
        public var learningRate: Float = defaultLearningRate

        /// A third of the rate the model was last trained with (its imported optimizer's), else
        /// ``defaultLearningRate``. The run fine-tunes a trained model: on the reproduction's MLP
        /// and CNN (3 seeds each) the training rate itself left two-scale ternary 0.7–1.0 points
        /// further from full precision than a third of it, and a tenth was no better; the
        /// character LSTM, trained for few epochs, lost 0.02 nats/char at a third (docs/QUALITY.md).
        public static func defaultLearningRate(for model: Model) -> (rate: Float, reason: String) {
            guard let rate = model.optimizer?.learningRate else { return (defaultLearningRate, "1e-3 / 3 (the model has no optimizer rate)") }
            guard rate.isFinite, rate > 0, rate < 1 else { return (defaultLearningRate, "1e-3 / 3 (the optimizer's rate \(rate) is not in (0, 1))") }
            return (Float(rate / 3), "a third of the imported optimizer's learning rate")
        }
        /// The rate of each epoch from `learningRate` (§9.1).
        public var schedule = LearningRateSchedule.constant
        public var clip = true
        public var seed: UInt64 = 1
        /// Batches of the training data over which BatchNormalization's moving statistics are
        /// re-estimated for the quantized weights before each evaluation, and kept with the
        /// result (``Calibration/withStatistics(_:quantized:on:)``); 0 keeps the moving averages
        /// the run leaves. See spec/QUANTIZATION.md §9.
        public var statisticsBatches = 32
        /// Steps between refreshes of the curvature d = √v + 1e-8 from the run's Adam state: 1
        /// (the paper's) refreshes before every step; R keeps each d for R steps
        /// (``Calibration/refreshes(iterations:refreshedAt:every:)``).
        public var curvatureRefresh = 1

        public init(quantization: QuantizationSettings) { self.quantization = quantization }
    }

    /// Labelled data: one tensor per model input and labels as the loss expects them.
    public struct Data: Sendable {
        public var inputs: [Tensor]
        public var labels: [Float]
        /// Values per sample in `labels` (1 for class indices).
        public var labelWidth: Int

        public init(inputs: [Tensor], labels: [Float], labelWidth: Int) {
            self.inputs = inputs
            self.labels = labels
            self.labelWidth = labelWidth
        }

        public var count: Int { inputs.first?.shape.first ?? 0 }

        /// Samples `range`, in order.
        public func subset(_ range: Range<Int>) -> Data { samples(Array(range)) }

        func samples(_ indices: [Int]) -> Data {
            let inputs = self.inputs.map { tensor in
                let per = tensor.shape.dropFirst().reduce(1, *)
                var values = [Float]()
                values.reserveCapacity(indices.count * per)
                for index in indices { values += tensor.data[(index * per)..<((index + 1) * per)] }
                return Tensor(shape: [indices.count] + tensor.shape.dropFirst(), data: values)
            }
            var labels = [Float]()
            for index in indices { labels += self.labels[(index * labelWidth)..<((index + 1) * labelWidth)] }
            return Data(inputs: inputs, labels: labels, labelWidth: labelWidth)
        }
    }

    /// One epoch's outcome.
    public struct EpochReport: Sendable {
        public var epoch: Int
        public var trainingLoss: Double
        public var validationLoss: Double
        public var validationAccuracy: Double?
    }

    /// Progress: epoch, step, steps per epoch, running training loss.
    public typealias Progress = (_ epoch: Int, _ step: Int, _ steps: Int, _ loss: Double) -> Void

    public struct Result: Sendable {
        /// The model with its full-precision weights after the kept epoch (non-quantized weights trained).
        public var model: Model
        public var quantized: [TensorQuantization]
        public var epochs: [EpochReport]
        public var bestEpoch: Int
        /// Validation loss and accuracy of the model quantized one-shot before calibration.
        public var before: EpochReport
        public var steps: Int
        /// Batches BatchNormalization's statistics were re-estimated over at each evaluation; 0
        /// when they were not (none in the model, or ``Settings/statisticsBatches`` 0).
        public var statisticsBatches: Int
        /// Each step's training loss (of its batch, through the quantized weights), in order.
        public var stepLosses: [Double]

        /// The step losses averaged over consecutive windows of `stride` steps, so that at most
        /// `maxPoints` remain (for the provenance's loss curve); stride 1 keeps every step.
        public func stepLossCurve(maxPoints: Int = 500) -> (stride: Int, values: [Double]) {
            let stride = max(1, (stepLosses.count + maxPoints - 1) / max(maxPoints, 1))
            let values = Swift.stride(from: 0, to: stepLosses.count, by: stride).map { start in
                let window = stepLosses[start..<min(start + stride, stepLosses.count)]
                return window.reduce(0, +) / Double(window.count)
            }
            return (stride, values)
        }
    }

    public let settings: Settings
    public let loss: Loss

    public init(settings: Settings, loss: Loss) {
        self.settings = settings
        self.loss = loss
    }

    /// Runs the calibration. `model`'s optimizer state (if any) gives the curvature of the
    /// one-shot baseline reported as `before`; the run itself starts Adam from zero, as the
    /// reference code does.
    public func run(_ start: Model, training: Data, validation: Data, progress: Progress? = nil) throws -> Result {
        var model = start
        let quantizedNames = Set(model.weights.filter {
            ModelQuantizer.isQuantizable($0, in: model) && settings.quantization.method(for: $0) != nil
        }.map(\.name))
        precondition(settings.batchSize >= 1, "batch size must be positive")
        let baseline = try ModelQuantizer.quantize(model, settings: settings.quantization)
        let (startModel, statisticsBatches) = try withStatistics(start, quantized: baseline, on: training)
        let before = try evaluate(startModel, quantized: baseline, on: validation, epoch: 0)

        var adam = Adam(learningRate: settings.learningRate)
        var random = TrainingRandom(seed: settings.seed)
        var warm: [String: [Float]] = [:]
        // The curvature the steps quantize with, refreshed every `curvatureRefresh` steps, and
        // the iteration it was taken at (nil: not yet, Adam has no v).
        var d: [String: [Float]] = [:]
        var refreshedAt: Int?
        // The one-shot quantization counts as epoch 0: a run that does not improve on it keeps it.
        func score(_ loss: Double) -> Double { loss.isFinite ? loss : .infinity }
        var best: (loss: Double, model: Model, quantized: [TensorQuantization], epoch: Int)? = (score(before.validationLoss), startModel, baseline, 0)
        var reports: [EpochReport] = []
        var stepLosses: [Double] = []
        // The steps' activations and gradients reuse the memory of the step before.
        let workspace = Workspace()
        let steps = (training.count + settings.batchSize - 1) / settings.batchSize
        for epoch in 1...max(settings.epochs, 1) {
            adam.learningRate = settings.schedule.rate(base: settings.learningRate, epoch: epoch)
            let order = random.permutation(training.count)
            var total = 0.0
            for step in 0..<steps {
                let batch = training.samples(Array(order[(step * settings.batchSize)..<min((step + 1) * settings.batchSize, training.count)]))
                if Self.refreshes(iterations: adam.iterations, refreshedAt: refreshedAt, every: settings.curvatureRefresh) {
                    d = curvature(adam, names: quantizedNames)
                    refreshedAt = adam.iterations > 0 ? adam.iterations : nil
                }
                let quantized = quantize(model, names: quantizedNames, d: d, warm: warm)
                var effective = model
                for result in quantized {
                    let values = result.values
                    if let index = effective.weights.firstIndex(where: { $0.name == result.weight }) {
                        effective.weights[index].values = values
                    }
                    warm[result.weight] = values
                }
                let outcome = try Backpropagation.run(model: effective, inputs: batch.inputs, labels: batch.labels, loss: loss, random: &random,
                                                       workspace: workspace)
                adam.step(&model.weights, gradients: outcome.gradients)
                for index in model.weights.indices {
                    if let update = outcome.stateUpdates[model.weights[index].name] { model.weights[index].values = update }
                    if settings.clip, quantizedNames.contains(model.weights[index].name) {
                        model.weights[index].values = model.weights[index].values.map { min(max($0, -1), 1) }
                    }
                }
                total += outcome.loss
                stepLosses.append(outcome.loss)
                progress?(epoch, step + 1, steps, total / Double(step + 1))
            }
            // The epoch's result is quantized with the latest curvature.
            d = curvature(adam, names: quantizedNames)
            refreshedAt = adam.iterations
            let quantized = quantize(model, names: quantizedNames, d: d, warm: warm)
            // Statistics the one-shot start found nothing to re-estimate for (no such layer, too
            // few values) are not looked for again.
            let evaluated = statisticsBatches > 0 ? try withStatistics(model, quantized: quantized, on: training).model : model
            var report = try evaluate(evaluated, quantized: quantized, on: validation, epoch: epoch)
            report.trainingLoss = total / Double(max(steps, 1))
            reports.append(report)
            if best == nil || score(report.validationLoss) < best!.loss {
                best = (score(report.validationLoss), evaluated, quantized, epoch)
            }
        }
        return Result(model: best!.model, quantized: best!.quantized, epochs: reports, bestEpoch: best!.epoch, before: before,
                      steps: adam.iterations, statisticsBatches: statisticsBatches, stepLosses: stepLosses)
    }

    /// `model` with its BatchNormalization moving statistics re-estimated for the `quantized`
    /// weights: the population mean and biased variance of each layer's input over
    /// ``Settings/statisticsBatches`` batches of `data` in training mode
    /// (``Backpropagation/populationStatistics(model:batches:inputs:random:)``), the same batches
    /// at every call (the run's seed). Quantization shifts every activation's statistics; the
    /// moving averages follow them with momentum 0.99 or 0.999, too slowly for a short run,
    /// and inference would normalize with the full-precision model's. Returns the batches used,
    /// 0 when nothing was re-estimated (no such layer, or the setting 0).
    public func withStatistics(_ model: Model, quantized: [TensorQuantization], on data: Data) throws -> (model: Model, batches: Int) {
        let batches = min(settings.statisticsBatches, (data.count + settings.batchSize - 1) / max(settings.batchSize, 1))
        guard batches > 0 else { return (model, 0) }
        var effective = model
        for result in quantized {
            if let index = effective.weights.firstIndex(where: { $0.name == result.weight }) { effective.weights[index].values = result.values }
        }
        var shuffle = TrainingRandom(seed: settings.seed)
        let order = shuffle.permutation(data.count)
        // Dropout stays active (training mode, as Keras' moving statistics see it), with masks of
        // their own seed.
        var random = TrainingRandom(seed: settings.seed ^ 0x5A7A_5A7A)
        let size = settings.batchSize
        let statistics = try Backpropagation.populationStatistics(model: effective, batches: batches, inputs: { index in
            data.samples(Array(order[(index * size)..<min((index + 1) * size, data.count)])).inputs
        }, random: &random, minimumCount: Self.statisticsMinimumValues)
        guard !statistics.isEmpty else { return (model, 0) }
        var result = model
        for index in result.weights.indices {
            if let values = statistics[result.weights[index].name], values.count == result.weights[index].values.count {
                result.weights[index].values = values
            }
        }
        return (result, batches)
    }

    /// The fewest values per channel a BatchNormalization layer's statistics are re-estimated
    /// from (``withStatistics(_:quantized:on:)``); a layer that sees fewer keeps its moving
    /// averages. The variance of 64 values is within about 18% (√(2/64)) of the population's.
    public static let statisticsMinimumValues = 64

    /// Batches ``curvature(of:on:batches:)`` averages over by default.
    public static let curvatureBatches = 32

    /// The curvature of the full-precision model on `data`, for a bit plan made before the run:
    /// d = √v̂ + 1e-8 for every quantizable weight, v̂ the mean squared gradient over at most
    /// `batches` batches of the run's size (training mode, the run's seed and shuffling). v̂ is
    /// what Adam's v estimates (an average of g², here without the decay and its bias), so d is
    /// the quantizers' d for the model as it stands rather than one left by the original training.
    public func curvature(of model: Model, on data: Data, batches: Int = Calibration.curvatureBatches) throws -> [String: [Float]] {
        let names = Set(model.weights.filter { ModelQuantizer.isQuantizable($0, in: model) }.map(\.name))
        var random = TrainingRandom(seed: settings.seed)
        let order = random.permutation(data.count)
        let count = min(batches, (data.count + settings.batchSize - 1) / settings.batchSize)
        var sums: [String: [Double]] = [:]
        let workspace = Workspace()
        for step in 0..<count {
            let batch = data.samples(Array(order[(step * settings.batchSize)..<min((step + 1) * settings.batchSize, data.count)]))
            let outcome = try Backpropagation.run(model: model, inputs: batch.inputs, labels: batch.labels, loss: loss, random: &random,
                                                   workspace: workspace)
            for (name, gradient) in outcome.gradients where names.contains(name) {
                var sum = sums[name] ?? [Double](repeating: 0, count: gradient.count)
                for index in gradient.indices { sum[index] += Double(gradient[index]) * Double(gradient[index]) }
                sums[name] = sum
            }
        }
        return sums.mapValues { sum in sum.map { Float(($0 / Double(max(count, 1))).squareRoot()) + 1e-8 } }
    }

    /// Whether a step refreshes the curvature: while there is none from Adam's v yet (the first
    /// step has no v, the second the first one), then when `every` steps have passed since the
    /// last refresh. `every` 1 refreshes before every step, as the paper does.
    public static func refreshes(iterations: Int, refreshedAt: Int?, every: Int) -> Bool {
        guard let refreshedAt else { return true }
        return iterations - refreshedAt >= max(every, 1)
    }

    /// d = √v + 1e-8 of the selected weights from Adam's second moment (1e-8 before the first step).
    func curvature(_ adam: Adam, names: Set<String>) -> [String: [Float]] {
        var d: [String: [Float]] = [:]
        for name in names { d[name] = adam.v[name].map { $0.map { $0.squareRoot() + 1e-8 } } }
        return d
    }

    /// Quantizes the selected weights with the curvature `d` (a weight without one, before
    /// Adam's first step: uniform d, which every method treats as d ≡ 1).
    func quantize(_ model: Model, names: Set<String>, d: [String: [Float]], warm: [String: [Float]]) -> [TensorQuantization] {
        model.weights.filter { names.contains($0.name) }.compactMap { weight in
            guard let method = settings.quantization.method(for: weight) else { return nil }
            let d = d[weight.name]
            return ModelQuantizer.quantize(weight, method: method, d: d, perChannel: settings.quantization.perChannel,
                                           gates: ModelQuantizer.gateCount(of: weight, in: model), warm: warm[weight.name])
        }
    }

    /// Validation loss and accuracy of `model` with the quantized weights in place (none: the
    /// full-precision model), in inference mode, with the run's loss.
    public func evaluate(_ model: Model, quantized: [TensorQuantization], on data: Data, epoch: Int) throws -> EpochReport {
        var effective = model
        for result in quantized {
            if let index = effective.weights.firstIndex(where: { $0.name == result.weight }) { effective.weights[index].values = result.values }
        }
        let executor = try Executor(model: effective)
        var outputs: [Float] = []
        var width = 1
        for start in stride(from: 0, to: data.count, by: 256) {
            let batch = data.samples(Array(start..<min(start + 256, data.count)))
            let output = try executor.predict(batch.inputs)[0]
            width = output.lastDimension
            outputs += output.data
        }
        let result = Evaluation.evaluate(outputs: outputs, labels: data.labels, width: width, sparse: loss.sparseLabels, loss: loss, k: 5)
        return EpochReport(epoch: epoch, trainingLoss: .nan, validationLoss: result.loss ?? .nan, validationAccuracy: result.accuracy)
    }
}
