import Foundation
import LAQData
import LAQEngine
import LAQFormat
import LAQQuantize

/// `laq quantize` as one library call: a model quantized one-shot (curvature from its imported
/// optimizer state) or by a calibration run on labelled data, with one method or a bit plan
/// (`targetBits`), and the provenance record that says how (spec/QUANTIZATION.md §9, §12).
/// A front end fills ``Options``, follows the ``Event``s and prints the ``Outcome``.
public struct QuantizeJob {
    public struct Options: Sendable {
        /// The method, granularity, skipped layers and per-layer methods. With `targetBits` the
        /// plan chooses the methods of every other tensor.
        public var settings: QuantizationSettings
        /// Average stored bits per quantized weight; nil: `settings`' methods.
        public var targetBits: Double?
        /// Storage of the weights that stay float (the plan costs float at this width).
        public var floatStorage = FloatStorage.float32
        /// The loss by name; nil: the model's training config's.
        public var loss: String?
        /// For a model with several outputs: the one the loss is computed on.
        public var lossOutput: String?
        /// Arrays of the data files.
        public var xKey = "x"
        public var yKey = "y"
        /// Calibration data (a data file specification): the loss-aware fine-tuning runs on it.
        /// nil: one-shot quantization.
        public var calibrationData: String?
        /// Validation data; without it a calibration holds out the last `validationSplit` of its
        /// data. With one-shot quantization: the full-precision and quantized models are evaluated on it.
        public var validationData: String?
        public var validationSplit = 0.1
        public var epochs = 1
        public var batch = 64
        /// Adam's rate of the calibration run; nil: ``Calibration/Settings/defaultLearningRate(for:)``.
        public var learningRate: Float?
        public var schedule = LearningRateSchedule.constant
        public var clip = true
        public var seed: UInt64 = 1
        /// Batches BatchNormalization's statistics are re-estimated over for the quantized weights
        /// (``Calibration/Settings/statisticsBatches``); 0: keep the run's moving averages.
        public var statisticsBatches = 32
        /// Steps between refreshes of the run's curvature (``Calibration/Settings/curvatureRefresh``).
        public var curvatureRefresh = 1

        public init(settings: QuantizationSettings) { self.settings = settings }

        var floatBits: Int { floatStorage == .float32 ? 32 : 16 }
    }

    /// What a job reports while it works, in order.
    public enum Event {
        /// The bit plan, before anything is quantized by it.
        case planned(BitPlan)
        /// The calibration run starts: its total number of steps.
        case calibrationStarted(steps: Int)
        /// A calibration step is done (epochs and steps count from 1); the running training loss.
        case step(epoch: Int, epochs: Int, step: Int, stepsPerEpoch: Int, loss: Double)
        case calibrationEnded
        /// A validation result: of the full-precision model, the one-shot quantization
        /// ("one-shot", or "one-shot (before)" in a calibration) or a calibration epoch.
        case validation(label: String, report: Calibration.EpochReport)
        /// With a plan and calibration: the plan's estimate beside what its one-shot quantization
        /// did to the validation loss (the estimate is in the curvature's units: it ranks tensors).
        case planCheck(estimate: Double, validationLossIncrease: Double)
    }

    /// A job's result: the model to write and what the provenance records.
    public struct Outcome {
        /// The model with the tensors' full-precision weights (trained by a calibration run) and
        /// every output of the input model.
        public var model: Model
        public var results: [TensorQuantization]
        public var plan: BitPlan?
        /// Where the curvature came from; nil for a calibration run (its own Adam).
        public var curvatureSource: CurvatureSource?
        /// The quantize provenance record's `parameters` (spec/QUANTIZATION.md §8, §9, §12.3).
        public var parameters: [String: JSONValue]
        /// What the user should know about the result (no curvature, tensors Keras had quantized).
        public var notices: [String]
        /// The storage of the weights that stay float (the options').
        public var floatStorage = FloatStorage.float32

        /// The writer of the output file: `source`'s provenance with `record` appended, the
        /// quantized tensors and their summary in the metadata (`quantization`).
        public func writer(source: LAQFile, record: ProvenanceRecord, includeOptimizer: Bool) throws -> LAQWriter {
            var writer = try model.laqWriter(
                provenance: source.manifest.provenance + [record], includeOptimizer: includeOptimizer,
                replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }), floatStorage: floatStorage)
            writer.metadata = source.manifest.metadata.filter { includeOptimizer || $0.key != "optimizer" }
            writer.metadata["quantization"] = .object(Dictionary(uniqueKeysWithValues: results.map { result in
                (result.weight, [
                    "method": .string(result.method.description), "bits": .int(Int64(result.method.bits)),
                    "weighted_error": .double(result.weightedError), "zero_fraction": .double(result.zeroFraction),
                ] as JSONValue)
            }))
            return writer
        }

        /// `laq quantize --json`: per tensor its method, error and stored bytes in `written` (the
        /// file the outcome was written to), the notices and the plan.
        public func json(written: LAQFile, output: String) -> JSONValue {
            var object: [String: JSONValue] = [
                "output": .string(output), "output_bytes": .int(Int64(written.fileSize)),
                "notices": .array(notices.map { .string($0) }),
                "tensors": .array(results.map { result in
                    [
                        "name": .string(result.weight), "method": .string(result.method.description),
                        "bits": .int(Int64(result.method.bits)), "weighted_error": .double(result.weightedError),
                        "zero_fraction": .double(result.zeroFraction),
                        "stored_bytes": .int(Int64(written.tensor(named: result.weight)?.storedLength ?? 0)),
                        "float32_bytes": .int(Int64(result.codes.count * 4)),
                    ]
                }),
            ]
            if let plan { object["plan"] = plan.record }
            return .object(object)
        }
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    /// Quantizes `model` (as read from its file) as the options say.
    public func run(_ model: Model, events: @escaping (Event) -> Void = { _ in }) throws -> Outcome {
        guard options.epochs >= 1, options.batch >= 1, options.statisticsBatches >= 0, options.curvatureRefresh >= 1,
              options.validationSplit > 0, options.validationSplit < 1 else {
            throw QuantizeError.invalidOption("epochs, batch and the curvature refresh must be positive, BatchNormalization batches not negative, the validation split in (0, 1)")
        }
        var settings = options.settings
        var outcome: Outcome
        if options.calibrationData != nil {
            outcome = try calibrate(try lossModel(model), events: events)
            outcome.model.outputs = model.outputs
            outcome.model.outputNames = model.outputNames
        } else {
            var plan: BitPlan?
            if let targetBits = options.targetBits {
                let optimizer = model.optimizer
                plan = try bitPlan(model, target: targetBits) { ModelQuantizer.curvature(of: $0, optimizer: optimizer) }
                events(.planned(plan!))
                settings = plan!.applied(to: settings)
            }
            let results = try ModelQuantizer.quantize(model, settings: settings)
            outcome = Outcome(model: model, results: results, plan: plan, curvatureSource: ModelQuantizer.curvatureSource(model),
                              parameters: [:], notices: [])
            if let path = options.validationData {
                let model = try lossModel(model)
                let loss = try resolvedLoss(model)
                let data = try labelledData(path, model: model, loss: loss)
                let calibration = Calibration(settings: Calibration.Settings(quantization: settings), loss: loss)
                let full = try calibration.evaluate(model, quantized: [], on: data, epoch: 0)
                let quantized = try calibration.evaluate(model, quantized: results, on: data, epoch: 0)
                events(.validation(label: "full precision", report: full))
                events(.validation(label: "one-shot", report: quantized))
                outcome.parameters["validation"] = [
                    "data": .object(Self.dataRecord(path, samples: data.count)), "loss": .string(loss.name),
                    "full_precision": Self.metrics(full), "quantized": Self.metrics(quantized),
                ]
            }
        }
        recordSettings(of: model, in: &outcome)
        return outcome
    }

    /// The parameters every quantize record has, and the notices.
    private func recordSettings(of model: Model, in outcome: inout Outcome) {
        if outcome.curvatureSource == CurvatureSource.none, outcome.results.contains(where: { $0.method.isLossAware }) {
            outcome.notices.append("the file has no optimizer state: d ≡ 1, so lab is bwn and late/lata the unweighted ternarization; import a model saved with its Adam state")
        }
        let kerasCodes = model.layers.flatMap { layer in layer.kind.weights.filter(\.integerCodes).map { "\(layer.name)/\($0.name)" } }
        if !kerasCodes.isEmpty {
            outcome.notices.append("\(kerasCodes.count) tensor\(kerasCodes.count == 1 ? " is" : "s are") already quantized by Keras (model.quantize) and kept as they are: \(kerasCodes.prefix(4).joined(separator: ", "))\(kerasCodes.count > 4 ? ", …" : "")")
        }
        outcome.floatStorage = options.floatStorage
        let settings = options.settings
        var parameters = outcome.parameters
        parameters["granularity"] = .string(settings.perChannel ? "per-channel" : "per-tensor")
        parameters["mode"] = .string(options.calibrationData == nil ? "one-shot" : "calibrated")
        parameters["float_storage"] = .string(options.floatStorage.rawValue)
        if let plan = outcome.plan {
            parameters["target_bits"] = .double(plan.targetBits)
            parameters["plan"] = plan.record
        } else {
            parameters["method"] = .string(settings.method.name)
            parameters["bits"] = .int(Int64(settings.method.bits))
            if case let .laq(_, spacing, update) = settings.method {
                parameters["levels"] = .string(spacing.rawValue)
                parameters["alpha_update"] = .string(update.rawValue)
            }
        }
        if !settings.skip.isEmpty { parameters["skip"] = .array(settings.skip.sorted().map { .string($0) }) }
        if !settings.overrides.isEmpty { parameters["layers"] = .object(settings.overrides.mapValues { .string($0.description) }) }
        switch outcome.curvatureSource {
        case nil:
            break  // a calibration run: its record is `hessian` already
        case let .optimizer(className, iterations, beta2):
            parameters["hessian"] = [
                "source": "imported optimizer state", "optimizer": .string(className),
                "iterations": iterations.map { .int($0) } ?? .null, "beta_2": .double(beta2),
                "d": .string(className == "Adamax" ? "u + 1e-8" : "sqrt(v) + 1e-8 (v as stored, no bias correction)"),
            ]
        case .none?:
            parameters["hessian"] = ["source": "none", "d": "1"]
        }
        outcome.parameters = parameters
    }

    /// The plan for `targetBits` from the curvature `d`.
    private func bitPlan(_ model: Model, target: Double, d: @escaping @Sendable (Weight) -> [Float]?) throws(QuantizeError) -> BitPlan {
        let tensors = try BitBudget.sensitivity(model, settings: options.settings, floatBits: options.floatBits, curvature: d)
        return try BitBudget.plan(tensors, targetBits: target)
    }

    /// The calibration run: the model with its non-quantized weights trained, the quantized
    /// tensors, and the run's record as `hessian`.
    private func calibrate(_ model: Model, events: @escaping (Event) -> Void) throws -> Outcome {
        let path = options.calibrationData!
        let loss = try resolvedLoss(model)
        let all = try labelledData(path, model: model, loss: loss)
        var training = all
        var validation: Calibration.Data
        if let val = options.validationData {
            validation = try labelledData(val, model: model, loss: loss)
            guard validation.labelWidth == all.labelWidth else {
                throw DataError(file: DataFile.path(of: val), reason: "labels have \(validation.labelWidth) values per sample, the calibration data \(all.labelWidth)")
            }
        } else {
            let held = max(1, Int(Double(all.count) * options.validationSplit))
            guard all.count - held >= 1 else {
                throw DataError(file: DataFile.path(of: path), reason: "\(all.count) sample\(all.count == 1 ? "" : "s") are too few to hold out validation data: give more, or --val")
            }
            training = all.subset(0..<(all.count - held))
            validation = all.subset((all.count - held)..<all.count)
        }
        var calibration = Calibration.Settings(quantization: options.settings)
        calibration.epochs = options.epochs
        calibration.batchSize = options.batch
        calibration.seed = options.seed
        let defaultRate = Calibration.Settings.defaultLearningRate(for: model)
        calibration.learningRate = options.learningRate ?? defaultRate.rate
        calibration.schedule = options.schedule
        calibration.clip = options.clip
        calibration.statisticsBatches = options.statisticsBatches
        calibration.curvatureRefresh = options.curvatureRefresh
        var plan: BitPlan?
        var planCurvature: JSONValue?
        if let targetBits = options.targetBits {
            // d for the plan from the calibration data, before the run (whose Adam starts from zero).
            let d = try Calibration(settings: calibration, loss: loss).curvature(of: model, on: training)
            plan = try bitPlan(model, target: targetBits) { d[$0.name] }
            events(.planned(plan!))
            calibration.quantization = plan!.applied(to: options.settings)
            let batches = min(Calibration.curvatureBatches, (training.count + options.batch - 1) / options.batch)
            planCurvature = .string("sqrt(mean of g²) + 1e-8 over \(batches) batches of the calibration data, full-precision model, before the run")
        }
        let run = Calibration(settings: calibration, loss: loss)
        let full = try run.evaluate(model, quantized: [], on: validation, epoch: 0)
        let perEpoch = (training.count + options.batch - 1) / options.batch
        events(.calibrationStarted(steps: options.epochs * perEpoch))
        let result: Calibration.Result
        do {
            defer { events(.calibrationEnded) }
            result = try run.run(model, training: training, validation: validation) { epoch, step, perEpoch, running in
                events(.step(epoch: epoch, epochs: options.epochs, step: step, stepsPerEpoch: perEpoch, loss: running))
            }
        }
        events(.validation(label: "full precision", report: full))
        for report in [result.before] + result.epochs {
            let kept = report.epoch == result.bestEpoch ? " (kept)" : ""
            events(.validation(label: report.epoch == 0 ? "one-shot (before)\(kept)" : "epoch \(report.epoch)\(kept)", report: report))
        }
        if let plan { events(.planCheck(estimate: plan.estimate, validationLossIncrease: result.before.validationLoss - full.validationLoss)) }
        let curve = result.stepLossCurve()
        var data = Self.dataRecord(path, samples: training.count)
        data["validation_samples"] = .int(Int64(validation.count))
        var record: [String: JSONValue] = [
            "source": "calibration run",
            "data": .object(data),
            "validation_full_precision": Self.metrics(full),
            "epochs": .int(Int64(options.epochs)), "kept_epoch": .int(Int64(result.bestEpoch)), "steps": .int(Int64(result.steps)),
            "learning_rate": .double(Double(calibration.learningRate)), "lr_schedule": .string(options.schedule.description),
            "batch": .int(Int64(options.batch)), "seed": .int(Int64(options.seed)), "clip": .bool(options.clip),
            "loss": .string(loss.name), "d": "sqrt(v) + 1e-8, v from the run's Adam (β2 = 0.999), no bias correction",
            "validation_before": Self.metrics(result.before),
            "validation_after": Self.metrics(result.bestEpoch == 0 ? result.before : result.epochs[result.bestEpoch - 1]),
            // The curve `laq report` draws: epoch 0 is the one-shot start.
            "history": .array(([result.before] + result.epochs).map { report in
                ["epoch": .int(Int64(report.epoch)), "training_loss": report.epoch == 0 ? .null : report.trainingLoss.jsonNumber,
                 "validation_loss": report.validationLoss.jsonNumber, "validation_accuracy": report.validationAccuracy.map(\.jsonNumber) ?? .null]
            }),
            "step_losses": ["stride": .int(Int64(curve.stride)), "values": .array(curve.values.map(\.jsonNumber))],
        ]
        if let planCurvature { record["plan_d"] = planCurvature }
        // Recorded only where it differs from the paper's every step.
        if options.curvatureRefresh != 1 { record["d_refresh_steps"] = .int(Int64(options.curvatureRefresh)) }
        if result.statisticsBatches > 0 {
            record["bn_statistics"] = .string("BatchNormalization moving_mean and moving_variance re-estimated for the quantized weights: population mean and biased variance over \(result.statisticsBatches) batches of the calibration data, training mode")
        }
        if options.learningRate == nil { record["learning_rate_default"] = .string(defaultRate.reason) }
        return Outcome(model: result.model, results: result.quantized, plan: plan, curvatureSource: nil,
                       parameters: ["hessian": .object(record)], notices: [])
    }

    /// The model with only the output the loss is computed on (the only one, or `lossOutput`).
    public func lossModel(_ model: Model) throws(QuantizeError) -> Model {
        guard model.outputs.count > 1 else {
            if let lossOutput = options.lossOutput, lossOutput != model.outputNames.first {
                throw .invalidOption("--loss-output \(lossOutput): the model's only output is '\(model.outputNames.first ?? "")'")
            }
            return model
        }
        let names = model.outputNames.map { "'\($0)'" }.joined(separator: ", ")
        guard let lossOutput = options.lossOutput else { throw .invalidOption("the model has outputs \(names): name the one the loss is computed on with --loss-output") }
        guard let selected = model.keepingOutput(lossOutput) else { throw .invalidOption("--loss-output \(lossOutput): the model's outputs are \(names)") }
        return selected
    }

    /// The loss `options.loss` names, or the training config's.
    public func resolvedLoss(_ model: Model) throws(QuantizeError) -> Loss {
        if let name = options.loss {
            guard let loss = Loss(.string(name)) else { throw .invalidOption("unknown loss '\(name)'") }
            return loss
        }
        guard let loss = Loss(model.training["loss"]) else { throw .invalidOption("the model's training config names no loss laq knows; pass --loss") }
        return loss
    }

    /// Inputs and labels from a data file, checked against the model and the loss: the model's
    /// output for one sample fixes how many label values a sample needs.
    private func labelledData(_ path: String, model: Model, loss: Loss) throws -> Calibration.Data {
        let data = try ModelData.labelled(path, for: model, xKey: options.xKey, yKey: options.yKey)
        let samples = data.samples
        let output = try Executor(model: model).predict(data.inputs.map { $0.rows(0..<1) })[0]
        let width = output.lastDimension
        let rowsPerSample = output.count / max(width, 1)
        try ModelData.checkLabels(data, rows: samples * rowsPerSample, width: width, sparse: loss.sparseLabels)
        return Calibration.Data(inputs: data.inputs, labels: data.labels.values, labelWidth: data.labels.values.count / samples)
    }

    /// A validation result for the record; a loss that is not finite (a model computing NaN) is null.
    static func metrics(_ report: Calibration.EpochReport) -> JSONValue {
        ["loss": report.validationLoss.jsonNumber, "accuracy": report.validationAccuracy.map(\.jsonNumber) ?? .null]
    }

    /// A data file's name, SHA-256 and sample count, for the provenance (spec §4.5: base names only).
    static func dataRecord(_ path: String, samples: Int) -> [String: JSONValue] {
        let sha = SHA256.hexDigest(ofFile: path) ?? ""
        return ["file": .string(URL(fileURLWithPath: path).lastPathComponent), "sha256": .string(sha), "samples": .int(Int64(samples))]
    }
}
