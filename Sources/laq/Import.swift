import ArgumentParser
import Foundation
import LAQFormat
import LAQImport
import LAQEngine

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a Keras model (.h5, .keras, .weights.h5) with its Adam state into a .laq file.",
        discussion: """
            The file kind is recognised by content: legacy full-model .h5 (tf.keras 2.x, Keras 3), Keras 3 \
            .keras archives, and weights-only files (.weights.h5, tf.keras save_weights), which need the \
            architecture from --config (model.to_json()). Adam, AdamW, Nadam and Adamax moments are kept as \
            optional tensors tied to their weights: loss-aware quantization uses the second moment as its \
            curvature estimate. Each tensor is written as it is read, so memory holds about one \
            tensor; the output's directory needs room for the file twice until it is written. A failed \
            import writes nothing.
            """
    )

    @Argument(help: "The Keras file.")
    var model: String

    @Option(name: .shortAndLong, help: "Output file (default: the model's name with .laq).")
    var output: String?

    @Option(help: "Architecture JSON for weights-only files (model.to_json() or a .keras config.json).")
    var config: String?

    @Flag(help: "Do not import the optimizer state.")
    var noOptimizer = false

    @Flag(help: "Record the creation time in the provenance (the file is then not reproducible).")
    var timestamp = false

    @Option(help: CompressionChoice.help)
    var compression: CompressionChoice = .balanced

    @Flag(help: "Print the summary as JSON.")
    var json = false

    /// Files and models from this size on get progress bars (on a terminal).
    static let progressThreshold: UInt64 = 16 << 20

    var sourceSize: UInt64 { (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? UInt64) ?? 0 }

    var outputPath: String {
        if let output { return output }
        var base = URL(fileURLWithPath: model).lastPathComponent
        for suffix in [".weights.h5", ".keras", ".hdf5", ".h5"] where base.hasSuffix(suffix) {
            base.removeLast(suffix.count)
            break
        }
        return base + ".laq"
    }

    func run() throws {
        // Each tensor is written (to a spool beside the output) as it is read, so memory holds
        // one tensor, not the model; the file is laid out and written at the end.
        let writer = try LAQStreamWriter(path: outputPath, options: WriteOptions(compression: compression.policy))
        let result: KerasImporter.Result
        do {
            // The file's size approximates the tensor bytes to read (HDF5 and zip overheads are small).
            let bar = sourceSize >= Self.progressThreshold ? ProgressBar(label: "importing", total: Double(sourceSize)) : nil
            defer { bar?.finish() }
            var progress: (@Sendable (Int) -> Void)?
            if let bar { progress = { bytes in bar.advance(Double(bytes)) } }
            result = try KerasImporter(includeOptimizer: !noOptimizer, progress: progress)
                .importModel(path: model, configPath: config, delivery: .stream { try writer.add($0) })
        }
        let imported = result.model
        var parameters: [String: JSONValue] = ["include_optimizer": .bool(!noOptimizer), "file_kind": .string(result.kind.rawValue)]
        if let config { parameters["config"] = .string(URL(fileURLWithPath: config).lastPathComponent) }
        let record = ProvenanceRecord(
            tool: "laq \(LAQVersion.string)", command: "import", arguments: recordedArguments(),
            parameters: .object(parameters),
            sources: [SourceFile(role: "model", file: imported.source.file ?? model, sha256: imported.source.sha256 ?? "", bytes: imported.source.bytes ?? 0)],
            created: timestamp ? ISO8601DateFormatter().string(from: Date()) : nil)
        writer.model = imported.modelInfo()
        writer.metadata = imported.fileMetadata(includeOptimizer: !noOptimizer)
        writer.provenance = [record]
        try writer.finish(order: imported.tensorNames(includeOptimizer: !noOptimizer))
        let written: LAQFile
        do {
            written = try LAQFile(path: outputPath)
        } catch {
            // The writer checks what readers check, so this is a bug; leave nothing behind.
            try? FileManager.default.removeItem(atPath: outputPath)
            throw error
        }
        if json {
            try printJSON(result.json(output: outputPath, outputBytes: written.fileSize))
        } else {
            print(summaryText(result, file: written))
        }
    }

    private func shapeText(_ shape: Shape?) -> String {
        guard let shape else { return "?" }
        return "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    }

    private func summaryText(_ result: KerasImporter.Result, file: LAQFile) -> String {
        let model = result.model
        var lines = ["Model: \"\(model.name)\"  (\(result.kind.rawValue)\(model.source.kerasVersion.map { ", Keras \($0)" } ?? ""))"]
        var table = TextTable(headers: ["Layer (type)", "Output Shape", "Param #", "Connected to"], rightAligned: [2], shrinkable: [(3, 12), (0, 16)])
        for row in model.summaryRows() {
            table.rows.append(["\(row.layer) (\(row.className))", shapeText(row.outputShape), String(row.parameters), row.inputs.joined(separator: ", ")])
        }
        lines.append(table.render(width: terminalWidth()))
        let counts = model.parameterCounts
        lines.append("Total params: \(counts.trainable + counts.nonTrainable) (trainable \(counts.trainable), non-trainable \(counts.nonTrainable))")
        if let optimizer = model.optimizer {
            lines.append("Optimizer: \(optimizer.className), \(optimizer.slots.count) slots (\(Set(optimizer.slots.map(\.slot)).sorted().joined(separator: ", "))) for \(optimizer.slots.count / 2) trainable weights, t = \(optimizer.iterations.map(String.init) ?? "?"), β2 = \(optimizer.beta2), ε = \(optimizer.epsilon) [\(optimizer.scheme)]")
        } else if !noOptimizer {
            lines.append("Optimizer: none imported")
        }
        for notice in result.notices { lines.append("notice: \(notice)") }
        lines.append("\(model.source.file ?? self.model) (\(formatBytes(model.source.bytes ?? 0))) → \(outputPath) (\(formatBytes(file.fileSize)))")
        return lines.joined(separator: "\n")
    }
}
