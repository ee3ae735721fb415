import ArgumentParser
import Foundation
import LAQCalibration
import LAQData
import LAQEngine
import LAQFormat
import LAQQuantize

extension LevelSpacing: ExpressibleByArgument {}
extension AlphaUpdate: ExpressibleByArgument {}
extension FloatStorage: ExpressibleByArgument {}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a .laq model with a loss-aware method or a baseline.",
        discussion: """
            Methods: bc, bwn, lab (binary); twn, late, lata (ternary); lat2e, lat2a (two-scale ternary); \
            laq (m-bit, --levels linear|log); dorefa, rtn (m-bit baselines). Loss-aware methods weight each \
            weight's error by d = √v + 1e-8 from the imported Adam state (d ≡ 1, with a notice, when there is \
            none). Every Dense, EinsumDense, attention, convolution, recurrent and Embedding kernel is quantized unless skipped; biases \
            and normalization stay in float.

            --one-shot quantizes in one pass with d from the imported Adam state. --calib DATA runs the \
            paper's loss-aware fine-tuning: each step quantizes with d = √v from the run's own Adam state, \
            trains the full-precision weights through the quantized ones, and clips them to [−1, 1]; the \
            epoch with the lowest validation loss is kept (the one-shot result counts as epoch 0).
            """
    )

    @Argument(help: "The .laq model (from laq import).")
    var input: String

    @Option(name: .shortAndLong, help: "Output file.")
    var output: String

    @Option(help: "Quantization method (or --target-bits).")
    var method: String?

    @Option(name: .customLong("target-bits"), help: ArgumentHelp(
        "Average stored bits per quantized weight (codes, scales and level tables, as inspect counts them): choose each tensor's method under this budget.",
        discussion: "Candidates: lab, lata, lat2a, laq 2…8-bit linear and log, and float; each is costed by its estimated loss increase ½Σd(w−ŵ)². With --calib, d comes from the calibration data's gradients, then the chosen mix is calibrated; with --one-shot, from the imported Adam state. --layer fixes a layer's method inside the budget; --skip layers stay float outside it."))
    var targetBits: Double?

    @Option(help: "Bits for laq (2…8, default 3), dorefa (1…8, default 3) and rtn (2…8, default 4).")
    var bits: Int?

    @Option(help: "Level spacing for laq.")
    var levels: LevelSpacing = .linear

    @Option(help: "α update for laq: exact (Σd·b·w / Σd·b²) or reference (the published code's).")
    var alpha: AlphaUpdate = .exact

    @Flag(help: "One table of levels per output channel instead of one per tensor.")
    var perChannel = false

    @Flag(help: "Quantize in one pass with the imported optimizer state (no calibration run).")
    var oneShot = false

    @Option(help: "Calibration data (.npz with inputs and labels): run the loss-aware fine-tuning.")
    var calib: String?

    @Option(help: "Validation data (.npz); default: the last --val-split of the calibration data. With --one-shot: the full-precision and quantized models are evaluated on it.")
    var val: String?

    // The calibration options are optional so that giving one with --one-shot is refused
    // instead of silently ignored; their defaults are below.
    @Option(name: .customLong("val-split"), help: "Share of the calibration data held out for validation when --val is not given (default: 0.1).")
    var valSplitOption: Double?
    var valSplit: Double { valSplitOption ?? 0.1 }

    @Option(name: .customLong("epochs"), help: "Calibration epochs (default: 1).")
    var epochsOption: Int?
    var epochs: Int { epochsOption ?? 1 }

    @Option(name: .customLong("lr"), help: "Learning rate of the calibration run's Adam (default: a third of the imported optimizer's rate, else 0.00033; docs/QUALITY.md).")
    var lrOption: Float?

    @Option(name: .customLong("lr-schedule"), help: ArgumentHelp("Learning-rate schedule over the calibration epochs (default: constant).",
                               discussion: "constant; step:FACTOR:E1,E2 (×FACTOR after each listed epoch); every:N:FACTOR (after every N epochs); exp:FACTOR:AFTER (every epoch after AFTER). The paper's MNIST run: step:0.1:15,25."))
    var lrScheduleOption: String?
    var lrSchedule: String { lrScheduleOption ?? "constant" }

    @Option(name: .customLong("batch"), help: "Calibration batch size (default: 64).")
    var batchOption: Int?
    var batch: Int { batchOption ?? 64 }

    @Option(name: .customLong("seed"), help: "Seed for shuffling and dropout (default: 1).")
    var seedOption: UInt64?
    var seed: UInt64 { seedOption ?? 1 }

    @Flag(help: "Do not clip quantized tensors' full-precision weights to [−1, 1] during calibration.")
    var noClip = false

    @OptionGroup var keys: LabelledDataKeys
    var xKey: String { keys.xKey }
    var yKey: String { keys.yKey }

    @Option(help: "Loss for calibration (default: the training config's).")
    var loss: String?

    @Option(name: .customLong("loss-output"), help: "For a model with several outputs: the output the calibration or validation loss is computed on (by name, as `laq inspect` lists them).")
    var lossOutput: String?

    @Option(parsing: .upToNextOption, help: "Layers to keep in full precision.")
    var skip: [String] = []

    @Option(name: .customLong("layer"), help: "Per-layer method, LAYER=METHOD[:BITS] (repeatable), e.g. dense=laq:4.")
    var layerMethods: [String] = []

    @Option(help: "Storage of the weights that stay in float: float32, float16 or bfloat16.")
    var float: FloatStorage = .float32

    @Flag(help: "Carry the optimizer state into the output.")
    var keepOptimizer = false

    @Flag(help: "Record the creation time in the provenance (the file is then not reproducible).")
    var timestamp = false

    @Option(help: CompressionChoice.help)
    var compression: CompressionChoice = .balanced

    @Flag(help: "Print the per-layer report as JSON.")
    var json = false

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        guard oneShot != (calib != nil) else { throw ValidationError("give either --one-shot or --calib DATA") }
        guard (method == nil) != (targetBits == nil) else { throw ValidationError("give either --method METHOD or --target-bits BITS") }
        if targetBits != nil, bits != nil { throw ValidationError("--bits applies to --method; --target-bits chooses each tensor's bits") }
        if let targetBits, !(targetBits > 0 && targetBits <= 32) { throw ValidationError("--target-bits takes bits per weight in (0, 32], got \(targetBits)") }
        // The provenance records the seed as a JSON integer (int64).
        if let seedOption, seedOption > UInt64(Int64.max) { throw ValidationError("--seed takes 0…\(Int64.max), got \(seedOption)") }
        if oneShot {
            let given = [("--val-split", valSplitOption != nil), ("--epochs", epochsOption != nil), ("--lr", lrOption != nil),
                         ("--lr-schedule", lrScheduleOption != nil), ("--batch", batchOption != nil), ("--seed", seedOption != nil),
                         ("--no-clip", noClip)].filter(\.1).map(\.0)
            guard given.isEmpty else {
                throw ValidationError("\(given.joined(separator: ", ")) only apply to a calibration run: use --calib DATA, or drop \(given.count == 1 ? "it" : "them") for --one-shot")
            }
        }
        guard epochs >= 1, epochs <= 10_000, batch >= 1, batch <= 1 << 16 else { throw ValidationError("--epochs and --batch must be positive") }
        guard valSplit > 0, valSplit < 1 else { throw ValidationError("--val-split must be in (0, 1)") }
        if let lrOption { guard lrOption > 0, lrOption.isFinite else { throw ValidationError("--lr must be positive") } }
        _ = try schedule()
    }

    func schedule() throws -> LearningRateSchedule {
        do { return try LearningRateSchedule(parsing: lrSchedule) } catch { throw ValidationError("--lr-schedule \(lrSchedule): \(error.reason)") }
    }

    func parseMethod(_ name: String, bits: Int?) throws -> Method {
        do { return try Method(name: name, bits: bits, levels: levels, alpha: alpha) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        // With --target-bits every planned tensor gets its own method; this one is not used.
        let defaultMethod = try parseMethod(method ?? "lat2a", bits: bits)
        var overrides: [String: Method] = [:]
        for item in layerMethods {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--layer takes LAYER=METHOD[:BITS], got '\(item)'") }
            let spec = parts[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard let name = spec.first, !name.isEmpty, spec.count <= 2 else { throw ValidationError("--layer takes LAYER=METHOD[:BITS], got '\(item)'") }
            var layerBits: Int?
            if spec.count == 2 {
                guard let value = Int(spec[1]) else { throw ValidationError("--layer '\(item)': '\(spec[1])' is not a bit count") }
                layerBits = value
            }
            overrides[parts[0]] = try parseMethod(name, bits: layerBits)
        }
        let file = try openLAQ(input)
        let model: Model
        do { model = try Model(file: file) } catch let error as ModelError { throw CLIError(message: "\(input): \(error)", code: .invalidInput) }
        var settings = QuantizationSettings(method: defaultMethod, perChannel: perChannel, skip: Set(skip), overrides: overrides)
        var results: [TensorQuantization]
        var outputModel = model
        var calibrationRecord: JSONValue?
        var plan: BitPlan?
        if let calib {
            (outputModel, results, calibrationRecord, plan) = try calibrate(try lossModel(model), settings: settings, data: calib)
            outputModel.outputs = model.outputs
            outputModel.outputNames = model.outputNames
        } else {
            do {
                if let targetBits {
                    let optimizer = model.optimizer
                    plan = try bitPlan(model, settings: settings, target: targetBits) { ModelQuantizer.curvature(of: $0, optimizer: optimizer) }
                    settings = plan!.applied(to: settings)
                }
                results = try ModelQuantizer.quantize(model, settings: settings)
            } catch {
                throw CLIError(message: error.isUsage ? error.description : "\(input): \(error)", code: error.isUsage ? .usageOrIO : .invalidInput)
            }
        }
        var validationRecord: JSONValue?
        if calib == nil, let val {
            let model = try lossModel(model)
            let loss = try resolvedLoss(model)
            let data = try labelledData(val, model: model, loss: loss)
            let calibration = Calibration(settings: Calibration.Settings(quantization: settings), loss: loss)
            let full = try evaluated { try calibration.evaluate(model, quantized: [], on: data, epoch: 0) }
            let quantized = try evaluated { try calibration.evaluate(model, quantized: results, on: data, epoch: 0) }
            printValidation("full precision", full)
            printValidation("one-shot", quantized)
            validationRecord = [
                "data": .object(dataRecord(val, samples: data.count)), "loss": .string(loss.name),
                "full_precision": metrics(full), "quantized": metrics(quantized),
            ]
        }
        let source = calibrationRecord == nil ? ModelQuantizer.curvatureSource(model) : .none
        var notices: [String] = []
        if calibrationRecord == nil, source == .none, results.contains(where: { $0.method.isLossAware }) {
            notices.append("the file has no optimizer state: d ≡ 1, so lab is bwn and late/lata the unweighted ternarization; import a model saved with its Adam state")
        }
        let kerasCodes = model.layers.flatMap { layer in layer.kind.weights.filter(\.integerCodes).map { "\(layer.name)/\($0.name)" } }
        if !kerasCodes.isEmpty {
            notices.append("\(kerasCodes.count) tensor\(kerasCodes.count == 1 ? " is" : "s are") already quantized by Keras (model.quantize) and kept as they are: \(kerasCodes.prefix(4).joined(separator: ", "))\(kerasCodes.count > 4 ? ", …" : "")")
        }

        var parameters: [String: JSONValue] = [
            "granularity": .string(perChannel ? "per-channel" : "per-tensor"), "mode": .string(calib == nil ? "one-shot" : "calibrated"),
            "float_storage": .string(float.rawValue),
        ]
        if let plan {
            parameters["target_bits"] = .double(plan.targetBits)
            parameters["plan"] = plan.record
        } else {
            parameters["method"] = .string(defaultMethod.name)
            parameters["bits"] = .int(Int64(defaultMethod.bits))
            if case let .laq(_, spacing, update) = defaultMethod {
                parameters["levels"] = .string(spacing.rawValue)
                parameters["alpha_update"] = .string(update.rawValue)
            }
        }
        if let validationRecord { parameters["validation"] = validationRecord }
        if !skip.isEmpty { parameters["skip"] = .array(skip.sorted().map { .string($0) }) }
        if !overrides.isEmpty { parameters["layers"] = .object(overrides.mapValues { .string($0.description) }) }
        switch source {
        case _ where calibrationRecord != nil:
            parameters["hessian"] = calibrationRecord!
        case let .optimizer(className, iterations, beta2):
            parameters["hessian"] = [
                "source": "imported optimizer state", "optimizer": .string(className),
                "iterations": iterations.map { .int($0) } ?? .null, "beta_2": .double(beta2),
                "d": .string(className == "Adamax" ? "u + 1e-8" : "sqrt(v) + 1e-8 (v as stored, no bias correction)"),
            ]
        case .none:
            parameters["hessian"] = ["source": "none", "d": "1"]
        }
        let inputSHA = SHA256.hex(file.storedSHA256)
        let record = ProvenanceRecord(
            tool: "laq \(LAQVersion.string)", command: "quantize", arguments: recordedArguments(),
            parameters: .object(parameters),
            sources: [SourceFile(role: "model", file: URL(fileURLWithPath: input).lastPathComponent, sha256: inputSHA, bytes: file.fileSize)],
            created: timestamp ? ISO8601DateFormatter().string(from: Date()) : nil)
        var writer = try outputModel.laqWriter(
            provenance: file.manifest.provenance + [record], includeOptimizer: keepOptimizer,
            replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }), floatStorage: float)
        writer.options.compression = compression.policy
        writer.metadata = file.manifest.metadata.filter { keepOptimizer || $0.key != "optimizer" }
        writer.metadata["quantization"] = .object(Dictionary(uniqueKeysWithValues: results.map { result in
            (result.weight, [
                "method": .string(result.method.description), "bits": .int(Int64(result.method.bits)),
                "weighted_error": .double(result.weightedError), "zero_fraction": .double(result.zeroFraction),
            ] as JSONValue)
        }))
        try writer.write(to: output)
        let written = try LAQFile(path: output)
        if json {
            var object = try report(results, written: written, notices: notices)
            if let plan, case var .object(members) = object {
                members["plan"] = plan.record
                object = .object(members)
            }
            try printJSON(object)
        } else {
            print(table(results, written: written, notices: notices, source: source, calibrated: calibrationRecord != nil, plan: plan))
        }
    }

    /// The plan for --target-bits from the curvature `d`, printed (to standard error) before it is
    /// carried out.
    private func bitPlan(_ model: Model, settings: QuantizationSettings, target: Double, d: @escaping @Sendable (Weight) -> [Float]?) throws(QuantizeError) -> BitPlan {
        let tensors = try BitBudget.sensitivity(model, settings: settings, floatBits: float == .float32 ? 32 : 16, curvature: d)
        let plan = try BitBudget.plan(tensors, targetBits: target)
        let counts = Dictionary(grouping: plan.choices, by: \.label).mapValues(\.count)
        let mix = counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", ")
        FileHandle.standardError.write(Data(String(format: "plan: %.3f bits per weight (budget %g) over %d tensors: %@\n", plan.averageBits, target, plan.tensors.count, mix).utf8))
        return plan
    }

    private func table(_ results: [TensorQuantization], written: LAQFile, notices: [String], source: CurvatureSource, calibrated: Bool, plan: BitPlan?) -> String {
        var table = TextTable(headers: ["tensor", "method", "bits/w", "levels", "error", "zeros", "float32", "stored"],
                              rightAligned: [2, 4, 5, 6, 7], shrinkable: [(0, 16), (3, 12)])
        var before: UInt64 = 0
        var after: UInt64 = 0
        for result in results {
            guard let tensor = written.tensor(named: result.weight) else { continue }
            let raw = UInt64(result.codes.count * 4)
            before += raw
            after += tensor.storedLength
            let groups = result.levels.count / max(result.layout.levelCount, 1)
            let levelText = groups > 1 ? "\(groups)× \(result.layout.levelCount)" : result.levels.map(formatFloat).joined(separator: " ")
            table.rows.append([
                result.weight, result.method.description, String(format: "%.2f", tensor.bitsPerElement ?? 0), levelText,
                String(format: "%.4f", result.weightedError), String(format: "%.1f%%", result.zeroFraction * 100),
                formatBytesShort(raw), formatBytesShort(tensor.storedLength),
            ])
        }
        // Tensors the plan keeps in float.
        for (tensor, choice) in zip(plan?.tensors ?? [], plan?.choices ?? []) where choice.method == nil {
            guard let stored = written.tensor(named: tensor.weight) else { continue }
            let raw = UInt64(tensor.elements * 4)
            before += raw
            after += stored.storedLength
            table.rows.append([tensor.weight, "float (plan)", String(format: "%.2f", stored.bitsPerElement ?? 0), "-", "-", "-",
                               formatBytesShort(raw), formatBytesShort(stored.storedLength)])
        }
        var lines = [table.render(width: terminalWidth())]
        if let plan {
            // What uniform two-scale ternary of the same tensors would have cost and been estimated at.
            let uniform = plan.tensors.compactMap { $0.candidates.first { $0.method == .lat2a } ?? ($0.fixed ? $0.candidates.first : nil) }
            let uniformBits = Double(uniform.reduce(0) { $0 + $1.storedBits }) / Double(max(plan.elements, 1))
            lines.append(String(format: "plan: %.3f bits per weight (budget %g); estimated loss increase ½Σd(w−ŵ)² %.4g (uniform lat2a: %.3f bits, %.4g)",
                                plan.averageBits, plan.targetBits, plan.estimate, uniformBits, uniform.reduce(0) { $0 + $1.estimate }))
        }
        lines.append("quantized \(results.count) tensors: \(formatBytes(before)) float32 → \(formatBytes(after)) (\(after == 0 ? "-" : String(format: "%.1f×", Double(before) / Double(after))))")
        switch source {
        case _ where calibrated:
            lines.append("error: Σd(ŵ−w)²/Σd·w² with d = √v + 1e-8 from the calibration run's Adam")
        case let .optimizer(className, iterations, _):
            lines.append("error: Σd(ŵ−w)²/Σd·w² with d from \(className)'s second moment (t = \(iterations.map(String.init) ?? "?"))")
        case .none:
            lines.append("error: Σ(ŵ−w)²/Σw² (no curvature: d ≡ 1)")
        }
        for notice in notices { lines.append("notice: \(notice)") }
        lines.append("\(input) → \(output) (\(formatBytes(written.fileSize)))")
        return lines.joined(separator: "\n")
    }

    private func report(_ results: [TensorQuantization], written: LAQFile, notices: [String]) throws -> JSONValue {
        [
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
    }

    /// Runs the calibration fine-tuning; returns the model (its non-quantized weights trained),
    /// the quantized tensors and the provenance of the curvature.
    private func calibrate(_ model: Model, settings: QuantizationSettings, data path: String) throws -> (Model, [TensorQuantization], JSONValue, BitPlan?) {
        let loss = try resolvedLoss(model)
        let all = try labelledData(path, model: model, loss: loss)
        var training = all
        var validation: Calibration.Data
        if let val {
            validation = try labelledData(val, model: model, loss: loss)
            guard validation.labelWidth == all.labelWidth else {
                throw CLIError(message: "\(val): labels have \(validation.labelWidth) values per sample, the calibration data \(all.labelWidth)", code: .invalidInput)
            }
        } else {
            let held = max(1, Int(Double(all.count) * valSplit))
            guard all.count - held >= 1 else { throw CLIError(message: "\(path): too few samples to hold out validation data", code: .invalidInput) }
            training = all.subset(0..<(all.count - held))
            validation = all.subset((all.count - held)..<all.count)
        }
        var calibration = Calibration.Settings(quantization: settings)
        var plan: BitPlan?
        var planCurvature: JSONValue?
        if let targetBits {
            // d for the plan from the calibration data, before the run (whose Adam starts from zero).
            calibration.batchSize = batch
            calibration.seed = seed
            let d: [String: [Float]]
            do { d = try Calibration(settings: calibration, loss: loss).curvature(of: model, on: training) } catch { throw CLIError(message: "\(input): \(error)", code: .invalidInput) }
            do { plan = try bitPlan(model, settings: settings, target: targetBits) { d[$0.name] } } catch {
                throw CLIError(message: error.isUsage ? error.description : "\(input): \(error)", code: error.isUsage ? .usageOrIO : .invalidInput)
            }
            calibration.quantization = plan!.applied(to: settings)
            let batches = min(Calibration.curvatureBatches, (training.count + batch - 1) / batch)
            planCurvature = .string("sqrt(mean of g²) + 1e-8 over \(batches) batches of the calibration data, full-precision model, before the run")
        }
        calibration.epochs = epochs
        calibration.batchSize = batch
        let defaultRate = Calibration.Settings.defaultLearningRate(for: model)
        let lr = lrOption ?? defaultRate.rate
        calibration.learningRate = lr
        calibration.schedule = try schedule()
        calibration.clip = !noClip
        calibration.seed = seed
        let steps = epochs * ((training.count + batch - 1) / batch)
        let bar = ProgressBar(label: "calibrating", total: Double(steps), unit: { String(Int($0)) })
        let run = Calibration(settings: calibration, loss: loss)
        let full = try evaluated { try run.evaluate(model, quantized: [], on: validation, epoch: 0) }
        let result: Calibration.Result
        do {
            result = try run.run(model, training: training, validation: validation) { epoch, step, perEpoch, running in
                bar.label = String(format: "epoch %d/%d step %d/%d loss %.4f", epoch, self.epochs, step, perEpoch, running)
                bar.update(Double((epoch - 1) * perEpoch + step))
            }
        } catch let error as EngineError {
            bar.finish()
            throw CLIError(message: "\(input): \(error)", code: .invalidInput)
        } catch let error as QuantizeError {
            bar.finish()
            throw CLIError(message: error.isUsage ? error.description : "\(input): \(error)", code: error.isUsage ? .usageOrIO : .invalidInput)
        }
        bar.finish()
        printValidation("full precision", full)
        for report in [result.before] + result.epochs {
            let kept = report.epoch == result.bestEpoch ? " (kept)" : ""
            printValidation(report.epoch == 0 ? "one-shot (before)\(kept)" : "epoch \(report.epoch)\(kept)", report)
        }
        if let plan {
            // The estimate is in the curvature's units (d = √v̂), not the loss's: it ranks tensors.
            // What the plan's one-shot quantization did to the validation loss, beside it.
            FileHandle.standardError.write(Data(String(format: "plan check: estimated ½Σd(w−ŵ)² %.4g; validation loss of the plan one-shot %+.4f against full precision\n",
                                                       plan.estimate, result.before.validationLoss - full.validationLoss).utf8))
        }
        let curve = result.stepLossCurve()
        var data = dataRecord(path, samples: training.count)
        data["validation_samples"] = .int(Int64(validation.count))
        var record: [String: JSONValue] = [
            "source": "calibration run",
            "data": .object(data),
            "validation_full_precision": metrics(full),
            "epochs": .int(Int64(epochs)), "kept_epoch": .int(Int64(result.bestEpoch)), "steps": .int(Int64(result.steps)),
            "learning_rate": .double(Double(lr)), "lr_schedule": .string(try schedule().description), "batch": .int(Int64(batch)), "seed": .int(Int64(seed)), "clip": .bool(!noClip),
            "loss": .string(loss.name), "d": "sqrt(v) + 1e-8, v from the run's Adam (β2 = 0.999), no bias correction",
            "validation_before": metrics(result.before),
            "validation_after": metrics(result.bestEpoch == 0 ? result.before : result.epochs[result.bestEpoch - 1]),
            // The curve `laq report` draws: epoch 0 is the one-shot start.
            "history": .array(([result.before] + result.epochs).map { report in
                ["epoch": .int(Int64(report.epoch)), "training_loss": report.epoch == 0 ? .null : report.trainingLoss.jsonNumber,
                 "validation_loss": report.validationLoss.jsonNumber, "validation_accuracy": report.validationAccuracy.map(\.jsonNumber) ?? .null]
            }),
            "step_losses": ["stride": .int(Int64(curve.stride)), "values": .array(curve.values.map(\.jsonNumber))],
        ]
        if let planCurvature { record["plan_d"] = planCurvature }
        if lrOption == nil { record["learning_rate_default"] = .string(defaultRate.reason) }
        return (result.model, result.quantized, .object(record), plan)
    }

    /// The model with only the output the loss is computed on (`--loss-output`; the only one).
    private func lossModel(_ model: Model) throws -> Model {
        guard model.outputs.count > 1 else {
            if let lossOutput, lossOutput != model.outputNames.first { throw ValidationError("--loss-output \(lossOutput): the model's only output is '\(model.outputNames.first ?? "")'") }
            return model
        }
        let names = model.outputNames.map { "'\($0)'" }.joined(separator: ", ")
        guard let lossOutput else { throw ValidationError("the model has outputs \(names): name the one the loss is computed on with --loss-output") }
        guard let selected = model.keepingOutput(lossOutput) else { throw ValidationError("--loss-output \(lossOutput): the model's outputs are \(names)") }
        return selected
    }

    /// `--loss`, or the training config's.
    private func resolvedLoss(_ model: Model) throws -> Loss {
        if let name = self.loss, Loss(.string(name)) == nil { throw ValidationError("unknown loss '\(name)'") }
        guard let loss = self.loss.map({ Loss(.string($0)) }) ?? Loss(model.training["loss"]) else {
            throw ValidationError("the model's training config names no loss laq knows; pass --loss")
        }
        return loss
    }

    /// An evaluation, with engine errors reported against the input model.
    private func evaluated(_ body: () throws -> Calibration.EpochReport) throws -> Calibration.EpochReport {
        do { return try body() } catch let error as EngineError { throw CLIError(message: "\(input): \(error)", code: .invalidInput) }
    }

    private func printValidation(_ label: String, _ report: Calibration.EpochReport) {
        let accuracy = report.validationAccuracy.map { String(format: ", accuracy %.2f%%", $0 * 100) } ?? ""
        FileHandle.standardError.write(Data(String(format: "%@: validation loss %.4f%@\n", label, report.validationLoss, accuracy).utf8))
    }

    private func metrics(_ report: Calibration.EpochReport) -> JSONValue {
        ["loss": .double(report.validationLoss), "accuracy": report.validationAccuracy.map { .double($0) } ?? .null]
    }

    /// A data file's name, SHA-256 and sample count, for the provenance.
    private func dataRecord(_ path: String, samples: Int) -> [String: JSONValue] {
        let sha = SHA256.hexDigest(ofFile: path) ?? ""
        return ["file": .string(URL(fileURLWithPath: path).lastPathComponent), "sha256": .string(sha), "samples": .int(Int64(samples))]
    }

    /// Inputs and labels from an .npz, checked against the model and the loss.
    private func labelledData(_ path: String, model: Model, loss: Loss) throws -> Calibration.Data {
        let data = try ModelData.labelled(path, for: model, xKey: xKey, yKey: yKey)
        let samples = data.samples
        // The model's output for one sample fixes how many label values a sample needs.
        let output: Tensor
        do { output = try Executor(model: model).predict(data.inputs.map { $0.rows(0..<1) })[0] } catch { throw CLIError(message: "\(input): \(error)", code: .invalidInput) }
        let width = output.lastDimension
        let rowsPerSample = output.count / max(width, 1)
        try ModelData.checkLabels(data, rows: samples * rowsPerSample, width: width, sparse: loss.sparseLabels)
        return Calibration.Data(inputs: data.inputs, labels: data.labels.values, labelWidth: data.labels.values.count / samples)
    }
}
