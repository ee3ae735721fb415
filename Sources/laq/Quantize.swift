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

    @Option(name: .customLong("bn-batches"), help: ArgumentHelp(
        "Batches of the calibration data over which BatchNormalization's moving statistics are re-estimated for the quantized weights (default: 32; 0 keeps the run's moving averages).",
        discussion: "Quantization shifts every activation's mean and variance; the moving averages follow with momentum 0.99 (0.999 in MobileNets), too slowly for a short run, and inference would normalize with the full-precision model's statistics."))
    var bnBatchesOption: Int?
    var bnBatches: Int { bnBatchesOption ?? 32 }

    @Option(name: .customLong("hessian-every"), help: "Steps between refreshes of the curvature d = √v + 1e-8 from the calibration run's Adam state (default: 1, every step, as the paper).")
    var hessianEveryOption: Int?
    var hessianEvery: Int { hessianEveryOption ?? 1 }

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
                         ("--no-clip", noClip), ("--bn-batches", bnBatchesOption != nil), ("--hessian-every", hessianEveryOption != nil)].filter(\.1).map(\.0)
            guard given.isEmpty else {
                throw ValidationError("\(given.joined(separator: ", ")) only apply to a calibration run: use --calib DATA, or drop \(given.count == 1 ? "it" : "them") for --one-shot")
            }
        }
        guard epochs >= 1, epochs <= 10_000, batch >= 1, batch <= 1 << 16 else { throw ValidationError("--epochs and --batch must be positive") }
        guard valSplit > 0, valSplit < 1 else { throw ValidationError("--val-split must be in (0, 1)") }
        guard (0...1 << 20).contains(bnBatches) else { throw ValidationError("--bn-batches must be in 0…1048576") }
        guard (1...1 << 30).contains(hessianEvery) else { throw ValidationError("--hessian-every must be a positive number of steps") }
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
        let model = try reading(input) { try Model(file: file) }
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: defaultMethod, perChannel: perChannel, skip: Set(skip), overrides: overrides))
        options.targetBits = targetBits
        options.floatStorage = float
        options.loss = loss
        options.lossOutput = lossOutput
        (options.xKey, options.yKey) = (xKey, yKey)
        options.calibrationData = calib
        options.validationData = val
        options.validationSplit = valSplit
        (options.epochs, options.batch, options.seed) = (epochs, batch, seed)
        options.learningRate = lrOption
        options.schedule = try schedule()
        options.clip = !noClip
        options.statisticsBatches = bnBatches
        options.curvatureRefresh = hessianEvery
        var bar: ProgressBar?
        let outcome = try reading(input) {
            try QuantizeJob(options: options).run(model) { event in
                switch event {
                case let .planned(plan):
                    let counts = Dictionary(grouping: plan.choices, by: \.label).mapValues(\.count)
                    let mix = counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", ")
                    printError(String(format: "plan: %.3f bits per weight (budget %g) over %d tensors: %@", plan.averageBits, plan.targetBits, plan.tensors.count, mix))
                case let .calibrationStarted(steps):
                    bar = ProgressBar(label: "calibrating", total: Double(steps), unit: { String(Int($0)) })
                case let .step(epoch, epochs, step, perEpoch, running):
                    bar?.label = String(format: "epoch %d/%d step %d/%d loss %.4f", epoch, epochs, step, perEpoch, running)
                    bar?.update(Double((epoch - 1) * perEpoch + step))
                case .calibrationEnded:
                    bar?.finish()
                case let .validation(label, report):
                    let accuracy = report.validationAccuracy.map { String(format: ", accuracy %.2f%%", $0 * 100) } ?? ""
                    printError(String(format: "%@: validation loss %.4f%@", label, report.validationLoss, accuracy))
                case let .planCheck(estimate, increase):
                    printError(String(format: "plan check: estimated ½Σd(w−ŵ)² %.4g; validation loss of the plan one-shot %+.4f against full precision", estimate, increase))
                }
            }
        }
        let record = ProvenanceRecord(
            tool: "laq \(LAQVersion.string)", command: "quantize", arguments: recordedArguments(),
            parameters: .object(outcome.parameters),
            sources: [SourceFile(role: "model", file: URL(fileURLWithPath: input).lastPathComponent, sha256: SHA256.hex(file.storedSHA256), bytes: file.fileSize)],
            created: timestamp ? ISO8601DateFormatter().string(from: Date()) : nil)
        var writer = try outcome.writer(source: file, record: record, includeOptimizer: keepOptimizer)
        writer.options.compression = compression.policy
        try writer.write(to: output)
        let written = try LAQFile(path: output)
        if json {
            try printJSON(outcome.json(written: written, output: output))
        } else {
            print(table(outcome, written: written))
        }
    }

    private func table(_ outcome: QuantizeJob.Outcome, written: LAQFile) -> String {
        let (results, plan) = (outcome.results, outcome.plan)
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
        switch outcome.curvatureSource {
        case nil:
            lines.append("error: Σd(ŵ−w)²/Σd·w² with d = √v + 1e-8 from the calibration run's Adam")
        case let .optimizer(className, iterations, _)?:
            lines.append("error: Σd(ŵ−w)²/Σd·w² with d from \(className)'s second moment (t = \(iterations.map(String.init) ?? "?"))")
        case .none?:
            lines.append("error: Σ(ŵ−w)²/Σw² (no curvature: d ≡ 1)")
        }
        for notice in outcome.notices { lines.append("notice: \(notice)") }
        lines.append("\(input) → \(output) (\(formatBytes(written.fileSize)))")
        return lines.joined(separator: "\n")
    }
}
