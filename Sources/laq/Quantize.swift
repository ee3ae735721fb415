import ArgumentParser
import Foundation
import LAQFormat
import LAQModel
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
            none). Every Dense, convolution, recurrent and Embedding kernel is quantized unless skipped; biases \
            and normalization stay in float. This version quantizes in one pass (--one-shot); the calibration \
            fine-tuning run needs the training engine, which is not in this version.
            """
    )

    @Argument(help: "The .laq model (from laq import).")
    var input: String

    @Option(name: .shortAndLong, help: "Output file.")
    var output: String

    @Option(help: "Quantization method.")
    var method: String

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

    @Option(help: "Compression: balanced (zlib when it saves ≥ 10%; float weights stay mappable), smallest, none.")
    var compression: CompressionChoice = .balanced

    @Flag(help: "Print the per-layer report as JSON.")
    var json = false

    func validate() throws {
        guard oneShot else {
            throw ValidationError("only --one-shot quantization is available in this version (the calibration run needs the training engine)")
        }
    }

    func parseMethod(_ name: String, bits: Int?) throws -> Method {
        do { return try Method(name: name, bits: bits, levels: levels, alpha: alpha) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let defaultMethod = try parseMethod(method, bits: bits)
        var overrides: [String: Method] = [:]
        for item in layerMethods {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--layer takes LAYER=METHOD[:BITS], got '\(item)'") }
            let spec = parts[1].split(separator: ":").map(String.init)
            overrides[parts[0]] = try parseMethod(spec[0], bits: spec.count > 1 ? Int(spec[1]) : nil)
        }
        let file = try LAQFile(path: input)
        let model: Model
        do { model = try Model(file: file) } catch let error as ModelError { throw CLIError(message: "\(input): \(error)", code: 1) }
        let settings = QuantizationSettings(method: defaultMethod, perChannel: perChannel, skip: Set(skip), overrides: overrides)
        let results: [TensorQuantization]
        do { results = try ModelQuantizer.quantize(model, settings: settings) } catch { throw CLIError(message: error.description, code: 2) }
        let source = ModelQuantizer.curvatureSource(model)
        var notices: [String] = []
        if source == .none, results.contains(where: { $0.method.isLossAware }) {
            notices.append("the file has no optimizer state: d ≡ 1, so lab is bwn and late/lata the unweighted ternarization; import a model saved with its Adam state")
        }

        var parameters: [String: JSONValue] = [
            "method": .string(defaultMethod.name), "bits": .int(Int64(defaultMethod.bits)),
            "granularity": .string(perChannel ? "per-channel" : "per-tensor"), "mode": "one-shot",
            "float_storage": .string(float.rawValue),
        ]
        if case let .laq(_, spacing, update) = defaultMethod {
            parameters["levels"] = .string(spacing.rawValue)
            parameters["alpha_update"] = .string(update.rawValue)
        }
        if !skip.isEmpty { parameters["skip"] = .array(skip.sorted().map { .string($0) }) }
        if !overrides.isEmpty { parameters["layers"] = .object(overrides.mapValues { .string($0.description) }) }
        switch source {
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
        var writer = try model.laqWriter(
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
            try printJSON(report(results, written: written, notices: notices))
        } else {
            print(table(results, written: written, notices: notices, source: source))
        }
    }

    private func table(_ results: [TensorQuantization], written: LAQFile, notices: [String], source: CurvatureSource) -> String {
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
        var lines = [table.render(width: terminalWidth())]
        lines.append("quantized \(results.count) tensors: \(formatBytes(before)) float32 → \(formatBytes(after)) (\(after == 0 ? "-" : String(format: "%.1f×", Double(before) / Double(after))))")
        switch source {
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
}
