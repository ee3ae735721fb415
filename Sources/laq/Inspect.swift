import ArgumentParser
import Foundation
import LAQAnalysis
import LAQFormat

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a .laq file: version, model, provenance and every tensor.",
        discussion: "Tensors this laq cannot decode (unknown encoding or feature) are listed and marked. Checksums are checked by `laq verify`."
    )

    @Argument(help: "The .laq file.")
    var file: String

    @Flag(help: "Print JSON for scripts instead of tables.")
    var json = false

    @Option(help: ArgumentHelp("Show one tensor's histogram with its quantization levels instead of the listing.",
                               discussion: "A tensor name (dense/kernel) or a layer name (its first quantized weight, else its first weight)."),
            completion: nil)
    var histogram: String?

    @Option(help: "Histogram bins (with --histogram).")
    var bins: Int = 24

    @Option(help: "With --histogram: the full-precision file the tensor was quantized from; its values are binned, this file's levels marked.")
    var against: String?

    @Flag(help: ArgumentHelp("Show each quantizable tensor's estimated loss increase per candidate method instead of the listing.",
                             discussion: "For a file quantized with --target-bits: the recorded plan. For a float file: computed now, with d from its Adam state."))
    var sensitivity = false

    func validate() throws {
        if sensitivity, histogram != nil { throw ValidationError("give --sensitivity or --histogram, not both") }
        guard (2...200).contains(bins) else { throw ValidationError("--bins must be in 2…200") }
    }

    func run() throws {
        let laq = try openLAQ(file)
        if let histogram { return try showHistogram(histogram, in: laq) }
        if sensitivity { return try showSensitivity(laq) }
        // A damaged payload does not stop the listing: its statistics are left out and the
        // problem is noted (and the exit status is 1, as `laq verify`'s).
        let listing = FileListing(laq)
        if json {
            try printJSON(listing.json(path: file))
        } else {
            print(text(laq, listing.rows, damaged: listing.damaged))
        }
        if !listing.damaged.isEmpty { throw ExitCode(ExitStatus.invalidInput.rawValue) }
    }

    private func text(_ laq: LAQFile, _ rows: [(TensorInfo, TensorStatistics?)], damaged: [String: FormatError]) -> String {
        let manifest = laq.manifest
        var lines: [String] = []
        lines.append("\(file): laq format \(laq.header.major).\(laq.header.minor), \(formatBytes(laq.fileSize))")
        lines.append("sha256 (stored): \(SHA256.hex(laq.storedSHA256))")
        let model = manifest.model
        let describe = { (items: [TensorDescription]) in
            items.map { item in
                "\(item.name) [\((item.shape ?? []).map { $0.map(String.init) ?? "?" }.joined(separator: ","))] \(item.dtype)"
            }.joined(separator: ", ")
        }
        lines.append("model: \(model.name.isEmpty ? "(unnamed)" : model.name)\(model.framework.isEmpty ? "" : " (\(model.framework))")")
        if !model.inputs.isEmpty || !model.outputs.isEmpty {
            lines.append("  inputs:  \(describe(model.inputs))")
            lines.append("  outputs: \(describe(model.outputs))")
        }
        if !laq.unsupportedFeatures.isEmpty {
            lines.append("  NOT DECODABLE by this laq: the file requires \(laq.unsupportedFeatures.joined(separator: ", "))")
        }
        if !manifest.provenance.isEmpty {
            lines.append("provenance:")
            for (step, record) in manifest.provenance.enumerated() {
                var line = "  \(step + 1). \(record.tool) \(record.command)"
                if let parameters = record.parameters, case let .object(members) = parameters, !members.isEmpty {
                    line += "  " + members.keys.sorted().map { "\($0)=\(compact(members[$0]!))" }.joined(separator: " ")
                }
                if let created = record.created { line += "  at \(created)" }
                lines.append(line)
                for source in record.sources ?? [] {
                    lines.append("     \(source.role): \(source.file) (\(formatBytes(source.bytes)), sha256 \(source.sha256.prefix(16))…)")
                }
            }
        }
        // Free-form (§4.3): one line per key, cut to the terminal; --json has it whole.
        if !manifest.metadata.isEmpty {
            lines.append("metadata:")
            let width = terminalWidth()
            for key in manifest.metadata.keys.sorted() {
                let line = "  \(key): \(compactJSON(manifest.metadata[key]!))"
                lines.append(line.count > width ? String(line.prefix(width - 1)) + "…" : line)
            }
        }
        var table = TextTable(
            headers: ["tensor", "shape", "encoding", "bits/w", "levels", "zeros", "float32", "stored", "ratio"],
            rightAligned: [3, 5, 6, 7, 8], shrinkable: [(0, 18), (4, 12), (2, 10), (0, 10)], droppable: [8])
        // Sums as Double: declared sizes of undecodable tensors can be huge.
        var totalRaw = 0.0
        var totalStored = 0.0
        var notes: [String] = []
        for (tensor, statistics) in rows {
            let raw = Double(tensor.elementCount) * 4
            totalRaw += raw
            totalStored += Double(tensor.storedLength)
            var name = tensor.name
            if case let .optimizer(_, slot) = tensor.role { name += " (\(slot))" }
            let compressed = tensor.compression == .zlib ? " z" : ""
            table.rows.append([
                name, formatShape(tensor.shape), tensor.encodingSummary + compressed,
                tensor.bitsPerElement.map { $0.rounded() == $0 ? String(Int($0)) : String(format: "%.2f", $0) } ?? "-",
                statistics.map(levelSummary) ?? "-",
                statistics.map { String(format: "%.1f%%", $0.zeroFraction * 100) } ?? "-",
                formatBytesShort(raw),
                formatBytesShort(tensor.storedLength),
                tensor.storedLength == 0 ? "-" : String(format: "%.1f×", raw / Double(tensor.storedLength)),
            ])
            if let reason = tensor.unsupportedReason { notes.append("  \(tensor.name): not decodable by this laq: needs \(reason)") }
            if let problem = damaged[tensor.name] { notes.append("  \(tensor.name): DAMAGED: \(problem) (run laq verify)") }
        }
        lines.append("tensors: \(laq.tensors.count)  (levels: quantization levels, or N× per-channel tables; z: zlib; ratio: float32/stored)")
        lines.append(table.render(width: terminalWidth()))
        lines.append(
            "total: \(formatBytes(totalRaw)) as float32 → \(formatBytes(totalStored)) stored, file \(formatBytes(Double(laq.fileSize))) ("
                + String(format: "%.1f×", totalRaw / Double(laq.fileSize)) + ")")
        if !notes.isEmpty {
            lines.append("notes:")
            lines += notes
        }
        return lines.joined(separator: "\n")
    }

    private func levelSummary(_ statistics: TensorStatistics) -> String {
        if let levels = statistics.levels {
            if levels.count == 2, levels[0] == -levels[1] { return "±" + formatFloat(abs(levels[0])) }
            return levels.count <= 3 ? "[" + levels.map(formatFloat).joined(separator: " ") + "]"
                : "\(levels.count) in [\(formatFloat(levels.min()!))…\(formatFloat(levels.max()!))]"
        }
        if let groups = statistics.groups, let low = statistics.levelMinimum, let high = statistics.levelMaximum {
            return "\(groups)× [\(formatFloat(low))…\(formatFloat(high))]"
        }
        return "[\(formatFloat(statistics.minimum))…\(formatFloat(statistics.maximum))]"
    }

    private func compact(_ value: JSONValue) -> String {
        switch value {
        case let .string(text): text
        case let .int(number): String(number)
        case let .double(number): String(number)
        case let .bool(flag): String(flag)
        case .null: "null"
        default: "…"
        }
    }

    /// The tensor named `name`, or the first quantized (else first) weight of the layer `name`.
    private func tensor(_ name: String, in laq: LAQFile) throws -> TensorInfo {
        if let tensor = laq.tensor(named: name) { return tensor }
        // The layer's own weights first (`inner` is a nested model's scope, `inner/dense` a layer).
        let own = laq.tensors.filter { $0.role == .weight && $0.name.split(separator: "/").dropLast().joined(separator: "/") == name }
        let weights = own.isEmpty ? laq.tensors.filter { $0.role == .weight && $0.name.hasPrefix(name + "/") } : own
        if let tensor = weights.first(where: { $0.encoding?.typeName == "codebook" }) ?? weights.first { return tensor }
        let layers = Set(laq.tensors.filter { $0.role == .weight }.compactMap { $0.name.split(separator: "/").dropLast().joined(separator: "/") })
        throw CommandError.usage("\(file): no tensor or layer '\(name)' (layers: \(layers.sorted().joined(separator: ", ")))")
    }

    private func showHistogram(_ name: String, in laq: LAQFile) throws {
        let info = try tensor(name, in: laq)
        guard info.isDecodable else { throw CommandError.refused("\(file): '\(info.name)' cannot be decoded: \(info.unsupportedReason ?? "")") }
        let reference = try against.map { try openLAQ($0) }
        // Each file's problems are reported against that file.
        let histogram: TensorHistogram
        do {
            histogram = try TensorHistogram.of(info, in: laq, reference: reference, bins: bins)
        } catch let error as TensorHistogram.ReferenceError {
            throw FileError(path: against ?? "", reason: error.underlying)
        } catch let error as FormatError {
            if case .io = error { throw error }
            throw FileError(path: file, reason: error)
        }
        if json {
            try printJSON(histogram.json)
            return
        }
        var lines = ["\(histogram.name)  \(formatShape(histogram.shape))  \(histogram.encoding)  \(histogram.total) values in [\(formatFloat(histogram.minimum)), \(formatFloat(histogram.maximum))]"]
        let barWidth = max(10, min(50, terminalWidth() - 48))
        func bar(_ count: Int, _ largest: Int) -> String {
            let length = largest > 0 ? Int((Double(count) / Double(largest) * Double(barWidth)).rounded()) : 0
            return String(repeating: "█", count: length) + String(repeating: " ", count: barWidth - length)
        }
        func level(_ item: TensorHistogram.Level) -> String {
            item.minimum == item.maximum ? formatFloat(item.minimum) : "\(formatFloat(item.minimum))…\(formatFloat(item.maximum))"
        }
        if let levels = histogram.levels {
            lines.append("levels (code: level\(levels.contains { $0.minimum != $0.maximum } ? " range over the channels" : ""), share of elements):")
            let largest = levels.map(\.count).max() ?? 0
            let labels = levels.map { "  \($0.code): \(level($0))" }
            let labelWidth = labels.map(\.count).max() ?? 0
            for (item, label) in zip(levels, labels) {
                let share = String(format: "%5.1f%%", 100 * Double(item.count) / Double(max(histogram.total, 1)))
                lines.append(label.padding(toLength: labelWidth, withPad: " ", startingAt: 0) + "  " + share + " │" + bar(item.count, largest))
            }
        }
        // Per-tensor levels of a quantized tensor alone: the level table is the whole histogram.
        let perTensor = histogram.levels?.allSatisfy { $0.minimum == $0.maximum } ?? false
        if perTensor, reference == nil {
            print(lines.joined(separator: "\n"))
            return
        }
        let source = reference == nil ? "" : " of \(against ?? "")'s values"
        lines.append("histogram\(source) (\(histogram.bins.count) bins)\(histogram.levels == nil ? "" : ", ◆ levels"):")
        let largest = histogram.bins.map(\.count).max() ?? 0
        for bin in histogram.bins {
            let marks = (histogram.levels ?? []).filter { $0.minimum <= bin.upper && $0.maximum >= bin.lower }
            let range = "\(formatFloat(bin.lower).leftPadded(10)) … \(formatFloat(bin.upper).leftPadded(10))"
            let suffix = marks.isEmpty ? "" : "  ◆ " + marks.map { "\($0.code)" }.joined(separator: ",")
            lines.append("  \(range) │\(bar(bin.count, largest)) \(String(bin.count).leftPadded(8))\(suffix)")
        }
        print(lines.joined(separator: "\n"))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
