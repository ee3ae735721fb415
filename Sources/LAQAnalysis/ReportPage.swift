import Foundation
import LAQFormat
import LAQQuantize

/// `laq report`: one self-contained HTML page (inline CSS and SVG, no network access) about a
/// `.laq` file: per-tensor bits, sizes and compression; weight histograms with the quantization
/// levels drawn over them; the calibration loss and metric curves recorded in the provenance;
/// and, against a reference file, the diff summary (with data: output agreement and each
/// layer's effect). A small inline script only checks that every chart was drawn and writes the
/// result into the page (`#chart-check`), for headless rendering tests.
public struct ReportPage {
    public var file: LAQFile
    public var fileName: String
    /// The full-precision file the model was quantized from (`--against`), and its diff.
    public var reference: LAQFile?
    public var referenceName: String?
    public var diff: ModelDiff?
    public var dataName: String?
    /// At most this many weight histograms (the largest tensors first).
    public var maxHistograms = 16

    public init(file: LAQFile, fileName: String, reference: LAQFile? = nil, referenceName: String? = nil,
                diff: ModelDiff? = nil, dataName: String? = nil) {
        self.file = file
        self.fileName = fileName
        self.reference = reference
        self.referenceName = referenceName
        self.diff = diff
        self.dataName = dataName
    }

    /// The ids of the charts the page draws, in order (what a renderer must find drawn).
    public private(set) var charts: [String] = []

    public mutating func render() throws -> String {
        charts = []
        var sections: [String] = []
        sections.append(summary())
        sections.append(sizes())
        sections.append(try histograms())
        sections.append(calibration())
        if let plan = bitPlan() { sections.append(plan) }
        if let diff { sections.append(comparison(diff)) }
        let title = "laq report: \(file.manifest.model.name.isEmpty ? fileName : file.manifest.model.name)"
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
        <title>\(SVGChart.escape(title))</title>
        <style>
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 980px; padding: 0 1em; color: #222; }
        h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
        table { border-collapse: collapse; font-size: 13px; } td, th { padding: 2px 8px; text-align: left; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } tr:nth-child(even) { background: #f6f6f6; }
        figure.chart { margin: 1em 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
        svg .label, svg .value, svg .tick { font: 11px system-ui, sans-serif; fill: #333; } svg .axis { stroke: #888; }
        .cards { display: flex; gap: 1em; flex-wrap: wrap; } .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; }
        .card b { display: block; font-size: 1.3em; } .note { color: #666; font-size: 12px; } code { font-size: 12px; }
        </style>
        </head>
        <body data-charts="\(charts.count)">
        <h1>\(SVGChart.escape(title))</h1>
        \(sections.joined(separator: "\n"))
        <pre id="chart-check" class="note"></pre>
        <script>
        // Checks that every chart was laid out and drew its marks; tools/check_report.py reads the result.
        (function () {
          var result = { expected: \(charts.count), drawn: 0, failed: [] };
          document.querySelectorAll("figure.chart").forEach(function (figure) {
            var svg = figure.querySelector("svg"), marks = svg ? svg.querySelectorAll(".mark") : [];
            var box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
            var visible = 0;
            marks.forEach(function (mark) { var b = mark.getBBox(); if (b.width > 0 || b.height > 0) visible++; });
            if (box.width > 0 && box.height > 0 && visible > 0) result.drawn++;
            else result.failed.push(figure.dataset.chart);
          });
          document.getElementById("chart-check").textContent = "chart-check " + JSON.stringify(result);
        })();
        </script>
        </body>
        </html>
        """
    }

    private mutating func add(_ id: String) -> String {
        charts.append(id)
        return id
    }

    private var weights: [TensorInfo] { file.tensors.filter { $0.role == .weight } }

    private func summary() -> String {
        let parameters = weights.reduce(0) { $0 + $1.elementCount }
        let quantized = weights.filter { $0.encoding?.typeName == "codebook" }
        let quantizedParameters = quantized.reduce(0) { $0 + $1.elementCount }
        let stored = weights.reduce(UInt64(0)) { $0 + $1.storedLength }
        let float32 = UInt64(parameters) * 4
        let bits = parameters > 0 ? Double(stored) * 8 / Double(parameters) : 0
        func card(_ value: String, _ label: String) -> String { "<div class=\"card\"><b>\(SVGChart.escape(value))</b>\(SVGChart.escape(label))</div>" }
        var lines = ["<p><code>\(SVGChart.escape(fileName))</code> · format \(file.header.major).\(file.header.minor) · \(bytes(file.fileSize)) · sha256 <code>\(SHA256.hex(file.storedSHA256))</code></p>"]
        lines.append("<div class=\"cards\">")
        lines.append(card("\(parameters)", "parameters"))
        lines.append(card(parameters > 0 ? String(format: "%.1f%%", 100 * Double(quantizedParameters) / Double(parameters)) : "–", "quantized (\(quantized.count) tensors)"))
        lines.append(card(String(format: "%.2f", bits), "stored bits per weight"))
        lines.append(card(bytes(stored), "weights stored (float32: \(bytes(float32)), \(stored > 0 ? String(format: "%.1f×", Double(float32) / Double(stored)) : "–") smaller)"))
        lines.append("</div>")
        if !file.manifest.provenance.isEmpty {
            lines.append("<p class=\"note\">Made by: " + file.manifest.provenance.map { SVGChart.escape("\($0.tool) \($0.command)") }.joined(separator: " → ") + "</p>")
        }
        return lines.joined(separator: "\n")
    }

    private mutating func sizes() -> String {
        var rows = ""
        var items: [(label: String, value: Double, note: String)] = []
        for tensor in weights {
            let bits = tensor.elementCount > 0 ? Double(tensor.storedLength) * 8 / Double(tensor.elementCount) : 0
            let float32 = UInt64(tensor.elementCount) * 4
            rows += "<tr><td>\(SVGChart.escape(tensor.name))</td><td>\(tensor.shape.map(String.init).joined(separator: "×"))</td><td>\(SVGChart.escape(tensor.encodingSummary))</td>"
                + "<td class=\"n\">\(String(format: "%.2f", bits))</td><td class=\"n\">\(bytes(tensor.storedLength))</td><td class=\"n\">\(bytes(float32))</td>"
                + "<td class=\"n\">\(tensor.storedLength > 0 ? String(format: "%.1f×", Double(float32) / Double(tensor.storedLength)) : "–")</td><td>\(SVGChart.escape(tensor.compressionName))</td></tr>\n"
            items.append((tensor.name, bits, String(format: "%.2f bits · %@", bits, bytes(tensor.storedLength))))
        }
        let chart = items.isEmpty ? "" : SVGChart.bars(add("bits"), title: "Stored bits per weight, by tensor (payload size × 8 / elements)", items: items)
        return """
        <h2>Bits and sizes per tensor</h2>
        \(chart)
        <table><tr><th>tensor</th><th>shape</th><th>encoding</th><th class="n">bits/weight</th><th class="n">stored</th><th class="n">float32</th><th class="n">ratio</th><th>compression</th></tr>
        \(rows)</table>
        """
    }

    private mutating func histograms() throws -> String {
        let quantized = weights.filter { $0.encoding?.typeName == "codebook" && $0.isDecodable }
        let candidates = (quantized.isEmpty ? weights.filter { $0.isDecodable && $0.shape.count >= 2 } : quantized)
        let chosen = Set(candidates.sorted { $0.elementCount > $1.elementCount }.prefix(maxHistograms).map(\.name))
        var parts = ["<h2>Weights and their quantization levels</h2>"]
        if candidates.count > chosen.count {
            parts.append("<p class=\"note\">The \(chosen.count) largest of \(candidates.count) tensors.</p>")
        }
        if reference != nil {
            parts.append("<p class=\"note\">Bars: the full-precision weights of <code>\(SVGChart.escape(referenceName ?? ""))</code>; red: the levels they were quantized to (bands: per-channel levels, the range over the channels).</p>")
        } else if !quantized.isEmpty {
            parts.append("<p class=\"note\">Bars: the dequantized weights; red: the levels (bands: per-channel levels, the range over the channels). Give <code>--against</code> the full-precision file to see the weights before quantization.</p>")
        }
        for (index, tensor) in candidates.enumerated() where chosen.contains(tensor.name) {
            let usable = reference.flatMap { $0.tensor(named: tensor.name) }.map { $0.shape == tensor.shape && $0.isDecodable } ?? false
            let histogram = try TensorHistogram.of(tensor, in: file, reference: usable ? reference : nil, bins: 60)
            let usage = histogram.levels.map { levels in
                "levels (share of elements): " + levels.map { level in
                    let value = level.minimum == level.maximum ? SVGChart.number(Double(level.minimum)) : "\(SVGChart.number(Double(level.minimum)))…\(SVGChart.number(Double(level.maximum)))"
                    return "\(value) \(String(format: "%.1f%%", 100 * Double(level.count) / Double(max(histogram.total, 1))))"
                }.joined(separator: ", ")
            }
            parts.append(SVGChart.histogram(add("histogram-\(index)"), title: "\(tensor.name) · \(tensor.shape.map(String.init).joined(separator: "×")) · \(tensor.encodingSummary)",
                                            histogram: histogram, caption: usage))
        }
        return parts.joined(separator: "\n")
    }

    private mutating func calibration() -> String {
        var parts = ["<h2>Calibration</h2>"]
        // The last step that recorded a calibration run's history.
        guard let record = file.manifest.provenance.last(where: { $0.parameters?["hessian"]?["history"] != nil }),
              let hessian = record.parameters?["hessian"], case let .array(history)? = hessian["history"] else {
            parts.append("<p class=\"note\">No calibration run is recorded in this file's provenance (one-shot quantization, or not quantized).</p>")
            return parts.joined(separator: "\n")
        }
        func double(_ value: JSONValue?) -> Double? {
            switch value {
            case let .double(v)?: v
            case let .int(v)?: Double(v)
            default: nil
            }
        }
        let method = record.parameters?["method"]?.stringValue ?? "?"
        parts.append("<p>\(SVGChart.escape(record.tool)) \(SVGChart.escape(record.command)): method <code>\(SVGChart.escape(method))</code>, \(double(hessian["epochs"]).map { String(Int($0)) } ?? "?") epochs, \(double(hessian["steps"]).map { String(Int($0)) } ?? "?") steps, learning rate \(double(hessian["learning_rate"]).map { SVGChart.number($0) } ?? "?") (\(SVGChart.escape(hessian["lr_schedule"]?.stringValue ?? "constant"))), batch \(double(hessian["batch"]).map { String(Int($0)) } ?? "?"), loss \(SVGChart.escape(hessian["loss"]?.stringValue ?? "?")); kept epoch \(double(hessian["kept_epoch"]).map { String(Int($0)) } ?? "?") (0 is the one-shot start).</p>")
        if case let .array(values)? = hessian["step_losses"]?["values"], let stride = double(hessian["step_losses"]?["stride"]) {
            let points = values.enumerated().compactMap { index, value in double(value).map { (x: Double(index) * stride + 1, y: $0) } }
            if !points.isEmpty {
                parts.append(SVGChart.lines(add("calibration-steps"), title: "Training loss per step (through the quantized weights)", xLabel: "step",
                                            series: [("training loss", points, "#3b6ea8")]))
            }
        }
        let epochs = history.compactMap { entry -> (epoch: Double, loss: Double?, accuracy: Double?, training: Double?)? in
            guard let epoch = double(entry["epoch"]) else { return nil }
            return (epoch, double(entry["validation_loss"]), double(entry["validation_accuracy"]), double(entry["training_loss"]))
        }
        var series: [(name: String, points: [(x: Double, y: Double)], color: String)] = [
            ("validation loss", epochs.compactMap { e in e.loss.map { (x: e.epoch, y: $0) } }, "#c0392b"),
            ("training loss", epochs.compactMap { e in e.training.map { (x: e.epoch, y: $0) } }, "#3b6ea8"),
        ]
        if let full = double(hessian["validation_full_precision"]?["loss"]), let last = epochs.last?.epoch {
            series.append(("full precision", [(x: 0, y: full), (x: last, y: full)], "#27ae60"))
        }
        series = series.filter { !$0.points.isEmpty }
        if !series.isEmpty {
            parts.append(SVGChart.lines(add("calibration-loss"), title: "Loss per epoch (epoch 0: one-shot quantization)", xLabel: "epoch", series: series))
        }
        let accuracy = epochs.compactMap { e in e.accuracy.map { (x: e.epoch, y: $0 * 100) } }
        if !accuracy.isEmpty {
            var accuracySeries: [(name: String, points: [(x: Double, y: Double)], color: String)] = [("validation accuracy %", accuracy, "#8e44ad")]
            if let full = double(hessian["validation_full_precision"]?["accuracy"]), let last = epochs.last?.epoch {
                accuracySeries.append(("full precision", [(x: 0, y: full * 100), (x: last, y: full * 100)], "#27ae60"))
            }
            parts.append(SVGChart.lines(add("calibration-accuracy"), title: "Validation accuracy per epoch", xLabel: "epoch", series: accuracySeries))
        }
        return parts.joined(separator: "\n")
    }

    /// The plan of `laq quantize --target-bits` (spec/QUANTIZATION.md §12.3), when the file has one.
    private mutating func bitPlan() -> String? {
        guard let record = file.manifest.provenance.last(where: { $0.command == "quantize" }),
              let value = record.parameters?["plan"], let plan = SensitivityReport(json: value) else { return nil }
        let chosen = plan.chosen
        var parts = ["<h2>Bit plan</h2>"]
        parts.append("<p>\(SVGChart.escape(record.tool)) quantize --target-bits \(plan.targetBits.map { SVGChart.number($0) } ?? "?"): "
            + (chosen.map { String(format: "%.3f stored bits per weight over %d weights, estimated loss increase ½Σd(w−ŵ)² %.4g", Double($0.storedBits) / Double(max(plan.elements, 1)), plan.elements, $0.estimate) } ?? "")
            + ". Each tensor's method was chosen where its estimate, from the loss-aware curvature d, costs least for its bits.</p>")
        let items = plan.rows.map { row -> (label: String, value: Double, note: String) in
            let value = row.estimate(of: "lat2a") ?? row.estimates.first ?? 0
            return (row.weight, value, String(format: "%.3g at lat2a · chose %@", value, row.choice ?? "–"))
        }
        if !items.isEmpty {
            parts.append(SVGChart.bars(add("sensitivity"), title: "Estimated loss increase at two-scale ternary (lat2a), by tensor", items: items, color: "#c0392b"))
        }
        let columns = ["lab", "lata", "lat2a"] + (2...8).map { "laq \($0)-bit linear" } + ["float"]
        var rows = "<tr><th>tensor</th><th class=\"n\">weights</th><th>chosen</th><th class=\"n\">bits/weight</th>"
            + columns.map { "<th class=\"n\">\(SVGChart.escape($0))</th>" }.joined() + "</tr>\n"
        for row in plan.rows {
            rows += "<tr><td>\(SVGChart.escape(row.weight))</td><td class=\"n\">\(row.elements)</td><td>\(SVGChart.escape(row.choice ?? "–"))</td>"
                + "<td class=\"n\">\(row.choiceBits.map { String(format: "%.2f", Double($0) / Double(max(row.elements, 1))) } ?? "–")</td>"
                + columns.map { label in "<td class=\"n\">\(row.estimate(of: label).map { String(format: "%.3g", $0) } ?? "–")</td>" }.joined() + "</tr>\n"
        }
        parts.append("<table>\(rows)</table>")
        parts.append("<p class=\"note\">Estimates ½Σd(w−ŵ)² per candidate (log-level m-bit candidates are in the file's provenance and in <code>laq inspect --sensitivity --json</code>).</p>")
        return parts.joined(separator: "\n")
    }

    private mutating func comparison(_ diff: ModelDiff) -> String {
        var parts = ["<h2>Against <code>\(SVGChart.escape(referenceName ?? ""))</code></h2>"]
        parts.append("<p>\(diff.isSame ? "Same content." : "Different.") Model: \(diff.model.isEmpty ? "same" : diff.model.map(\.field).joined(separator: ", ") + " differ"); architecture: \(diff.architecture.isEmpty ? "same" : "\(diff.architecture.count) layer changes"); tensors: \(diff.tensors.filter(\.identical).count) same, \(diff.tensors.filter { !$0.identical && $0.shapeA != nil && $0.shapeB != nil }.count) changed, \(diff.onlyInA.count) only in the reference, \(diff.onlyInB.count) only here.</p>")
        let changed = diff.tensors.filter { !$0.identical && $0.relativeL2 != nil }
        if !changed.isEmpty {
            parts.append(SVGChart.bars(add("diff-tensors"), title: "Relative L2 error of each changed tensor (‖q − w‖ / ‖w‖)",
                                       items: changed.map { ($0.name, $0.relativeL2!, String(format: "%.3g%@", $0.relativeL2!, $0.codesChanged.map { String(format: " · codes Δ %.1f%%", 100 * $0) } ?? "")) },
                                       color: "#c0392b"))
        }
        if let outputs = diff.outputs {
            for output in outputs.outputs {
                parts.append("<p>On <code>\(SVGChart.escape(dataName ?? ""))</code> (\(outputs.samples) samples), output <code>\(SVGChart.escape(output.output))</code>: top-1 agreement \(output.top1Agreement.map { String(format: "%.2f%%", 100 * $0) } ?? "–"), KL(reference ‖ this) \(output.klDivergence.map { SVGChart.number($0) } ?? "–") nats, max |Δ| \(output.maxAbsDifference.isNaN ? "–" : SVGChart.number(output.maxAbsDifference)).</p>")
                for (side, count, layer) in [("the reference", output.nonFiniteA, output.firstNonFiniteLayerA), ("this model", output.nonFiniteB, output.firstNonFiniteLayerB)] where count > 0 {
                    parts.append("<p class=\"warning\">\(count) output values of \(side) are not finite (NaN or infinite)\(layer.map { ", first produced by layer <code>\(SVGChart.escape($0))</code>" } ?? ""); their rows count as disagreeing.</p>")
                }
            }
            let isolated = outputs.layers.filter { $0.isolatedError != nil }
            if !isolated.isEmpty {
                let hurt = outputs.mostHurtLayer
                parts.append(SVGChart.bars(add("diff-layers"), title: "Each changed layer alone: output KL when only its weights are quantized",
                                           items: isolated.map { ($0.layer + ($0.layer == hurt ? " (most hurt)" : ""), $0.isolatedKL ?? $0.isolatedError!, String(format: "KL %@ · rel err %@", SVGChart.number($0.isolatedKL ?? .nan), SVGChart.number($0.isolatedError!))) },
                                           color: "#8e44ad"))
            }
            if !outputs.layers.isEmpty {
                parts.append(SVGChart.bars(add("diff-activations"), title: "Activation error per layer (relative L2, all layers quantized)",
                                           items: outputs.layers.map { ($0.layer, $0.activationError, SVGChart.number($0.activationError)) }, color: "#d35400"))
            }
        }
        return parts.joined(separator: "\n")
    }

    private func bytes(_ count: UInt64) -> String {
        let value = Double(count)
        if value < 1024 { return "\(count) B" }
        if value < 1024 * 1024 { return String(format: "%.1f KiB", value / 1024) }
        if value < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", value / 1024 / 1024) }
        return String(format: "%.2f GiB", value / 1024 / 1024 / 1024)
    }
}
