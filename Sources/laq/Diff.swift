import ArgumentParser
import Foundation
import LAQAnalysis
import LAQData
import LAQEngine
import LAQFormat

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two .laq files: model, metadata, provenance, every tensor; with --data, their outputs.",
        discussion: """
            Content is compared, not storage (compression, offsets and table order do not count); provenance \
            is listed but does not by itself make files differ. For each tensor in both files: shape and \
            encoding, max |Δ| and relative L2 error of the dequantized values, and the share of codes that \
            changed when both are quantized. With --data: top-1 agreement, KL divergence and max |Δ| of the \
            outputs, each layer's activation error, and each changed layer's effect on the output alone \
            (only its weights taken from B), which names the layer that hurts most.

            Exit status, as diff(1): 0 the same; 1 different; 2 trouble (unreadable or damaged file, bad data).
            """
    )

    @Argument(help: "The first (reference) file, A.")
    var a: String

    @Argument(help: "The second file, B.")
    var b: String

    @OptionGroup var comparison: ComparisonData
    var data: String? { comparison.data }

    @Flag(help: "Print JSON for scripts (the shape is in spec/EXPORT.md §5.4).")
    var json = false

    @OptionGroup var threading: ThreadOptions

    func run() throws {
        // Its failures end with 2, as diff(1)'s trouble: ExitStatus.of(_:in:).
        let fileA = try openLAQ(a), fileB = try openLAQ(b)
        var diff: ModelDiff
        diff = try ModelDiff.compare(fileA, fileB)
        if let data {
            diff.outputs = try Self.compareOutputs(fileA, named: a, fileB, named: b, diff: diff, data: data, xKey: comparison.xKey, limit: comparison.limit)
        }
        if json {
            try printJSON(diff.json(fileA: a, fileB: b, shaA: SHA256.hex(fileA.storedSHA256), shaB: SHA256.hex(fileB.storedSHA256), data: data))
        } else {
            print(render(diff, fileA: fileA, fileB: fileB))
        }
        if !diff.isSame { throw ExitCode(ExitStatus.invalidInput.rawValue) }
    }

    private func render(_ diff: ModelDiff, fileA: LAQFile, fileB: LAQFile) -> String {
        var lines = ["A: \(a) (sha256 \(SHA256.hex(fileA.storedSHA256).prefix(16))…)", "B: \(b) (sha256 \(SHA256.hex(fileB.storedSHA256).prefix(16))…)"]
        func clip(_ text: String?) -> String {
            guard let text else { return "(none)" }
            return text.count > 60 ? String(text.prefix(57)) + "…" : text
        }
        lines.append(diff.model.isEmpty ? "model: same" : "model:")
        for change in diff.model { lines.append("  \(change.field): \(clip(change.a)) → \(clip(change.b))") }
        lines.append(diff.architecture.isEmpty ? "architecture: same" : "architecture: \(diff.architecture.count) change\(diff.architecture.count == 1 ? "" : "s")")
        for change in diff.architecture { lines.append("  \(change.kind.rawValue) \(change.layer): \(change.detail)") }
        lines.append(diff.metadata.isEmpty ? "metadata: same" : "metadata:")
        for change in diff.metadata {
            let what = change.a == nil ? "added" : change.b == nil ? "removed" : "changed"
            lines.append("  \(change.field): \(what)")
        }
        let shared = diff.sharedProvenance
        lines.append("provenance: A \(diff.provenanceA.count) step\(diff.provenanceA.count == 1 ? "" : "s"), B \(diff.provenanceB.count), \(shared) in common"
                     + (diff.provenanceB.count > shared ? "; B adds: \(diff.provenanceB[shared...].joined(separator: ", "))" : "")
                     + (diff.provenanceA.count > shared ? "; A adds: \(diff.provenanceA[shared...].joined(separator: ", "))" : ""))

        let same = diff.tensors.filter(\.identical).count
        lines.append("tensors: \(diff.tensors.count - diff.onlyInA.count - diff.onlyInB.count) in both (\(same) same), \(diff.onlyInA.count) only in A, \(diff.onlyInB.count) only in B")
        var table = TextTable(headers: ["tensor", "shape", "encoding A → B", "max |Δ|", "rel L2", "codes Δ"],
                              rightAligned: [3, 4, 5], shrinkable: [(2, 16), (0, 16), (1, 8)])
        func number(_ value: Double?) -> String { value.map { $0.isFinite ? String(format: "%.3g", $0) : "inf" } ?? "-" }
        // Optimizer state present in one file only (dropped by quantize) is one line, not a row each.
        let optimizerOnly = diff.tensors.filter { ($0.shapeA == nil || $0.shapeB == nil) && $0.name.hasPrefix("optimizer/") }
        for tensor in diff.tensors where !tensor.identical && !optimizerOnly.contains(where: { $0.name == tensor.name }) {
            let shape = tensor.shapeA == tensor.shapeB || tensor.shapeB == nil ? formatShape(tensor.shapeA ?? []) :
                tensor.shapeA == nil ? formatShape(tensor.shapeB!) : "\(formatShape(tensor.shapeA!)) → \(formatShape(tensor.shapeB!))"
            let encoding = tensor.shapeB == nil ? "only in A" : tensor.shapeA == nil ? "only in B" :
                tensor.encodingA == tensor.encodingB ? tensor.encodingA ?? "" : "\(tensor.encodingA ?? "") → \(tensor.encodingB ?? "")"
            let codes = tensor.codesChanged.map { String(format: "%.1f%%", 100 * $0) } ?? "-"
            table.rows.append([tensor.name, shape, tensor.note.map { "\(encoding) (\($0))" } ?? encoding,
                               number(tensor.maxAbsDifference), number(tensor.relativeL2), codes])
        }
        if !table.rows.isEmpty { lines.append(table.render(width: terminalWidth())) }
        let optimizerA = optimizerOnly.filter { $0.shapeB == nil }.count, optimizerB = optimizerOnly.count - optimizerA
        if optimizerA > 0 { lines.append("optimizer state only in A: \(optimizerA) tensors") }
        if optimizerB > 0 { lines.append("optimizer state only in B: \(optimizerB) tensors") }

        if let outputs = diff.outputs {
            lines.append("")
            lines.append("outputs on \(data ?? "") (\(outputs.samples) samples):")
            for output in outputs.outputs {
                let kl = output.klDivergence.map { String(format: "KL(A‖B) %.4g nats (%@)", $0, output.distribution) } ?? "KL undefined"
                if let note = output.note {
                    lines.append("  \(output.output): not compared (\(note))")
                    continue
                }
                let agreement = output.top1Agreement.map { String(format: "%.2f%%", 100 * $0) } ?? "–"
                let maxAbs = output.maxAbsDifference.isNaN ? "–" : String(format: "%.4g", output.maxAbsDifference)
                lines.append("  \(output.output): top-1 agreement \(agreement), \(kl), max |Δ| \(maxAbs)")
                for (side, count, layer) in [("A", output.nonFiniteA, output.firstNonFiniteLayerA), ("B", output.nonFiniteB, output.firstNonFiniteLayerB)] where count > 0 {
                    lines.append("  warning: \(count) values of \(side)'s \(output.output) are not finite (NaN or infinite)\(layer.map { ", first produced by layer '\($0)'" } ?? ""); their rows count as disagreeing")
                }
            }
            if let note = outputs.layerNote { lines.append("  \(note)") }
            if !outputs.layers.isEmpty {
                var layers = TextTable(headers: ["layer", "activation rel err", "alone: KL", "alone: rel err"],
                                       rightAligned: [1, 2, 3], shrinkable: [(0, 12)])
                let hurt = outputs.mostHurtLayer
                for layer in outputs.layers {
                    layers.rows.append([layer.layer + (layer.layer == hurt ? "  ← most hurt" : ""), number(layer.activationError),
                                        number(layer.isolatedKL), number(layer.isolatedError)])
                }
                lines.append("layers (activation error of B against A; alone: the output with only this layer's weights from B):")
                lines.append(layers.render(width: terminalWidth()))
                if let hurt { lines.append("most hurt layer: \(hurt)") }
            }
        }
        lines.append(diff.isSame ? "same content" : "different")
        return lines.joined(separator: "\n")
    }

    /// Runs the models of A and B on `data` (both must be runnable), with a progress bar on large
    /// data. Shared with `laq report`.
    static func compareOutputs(_ fileA: LAQFile, named a: String, _ fileB: LAQFile, named b: String, diff: ModelDiff,
                               data: String, xKey: String, limit: Int?) throws -> OutputComparison {
        let modelA: Model, modelB: Model
        modelA = try reading(a, "cannot run it") { try Model(file: fileA, optimizerState: false) }
        modelB = try reading(b, "cannot run it") { try Model(file: fileB, optimizerState: false) }
        var inputs = try ModelData.inputs(from: DataFile.open(data), for: modelA, key: xKey)
        if let limit { inputs = inputs.map { $0.rows(0..<min(limit, $0.shape.first ?? 0)) } }
        let samples = inputs.first?.shape.first ?? 0
        let bar = samples >= 1024 ? ProgressBar(label: "running both models", total: Double(samples), unit: { String(Int($0)) }) : nil
        defer { bar?.finish() }
        return try reading(data) {
            try OutputComparison.compare(modelA, modelB, inputs: inputs, changedLayers: diff.changedLayers(in: modelA)) { done, _ in
                bar?.update(Double(done))
            }
        }
    }
}

/// The data both models of `diff` and `report` run on.
struct ComparisonData: ParsableArguments {
    @Option(help: "Inputs (.npy/.npz) to run both models on (report: with --against).")
    var data: String?

    @Option(help: "Inputs array in the .npz (multi-input models: the input layers' names or x0, x1, …).")
    var xKey: String = "x"

    @Option(help: "Use only the first N samples of --data.")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be positive") }
    }
}
