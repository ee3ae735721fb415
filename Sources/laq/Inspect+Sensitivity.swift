import Foundation
import LAQEngine
import LAQFormat
import LAQQuantize

extension Inspect {
    /// The sensitivity view: the plan a `--target-bits` run recorded, or, for a file not yet
    /// quantized, every tensor's candidates costed now with d from its optimizer state.
    func showSensitivity(_ laq: LAQFile) throws {
        let report: SensitivityReport
        var source: String
        if let recorded = laq.manifest.provenance.last(where: { $0.command == "quantize" }),
           case let .object(parameters)? = recorded.parameters, let plan = parameters["plan"] {
            guard let decoded = SensitivityReport(json: plan) else {
                throw CommandError.refused("\(file): the quantize provenance holds a plan laq cannot read")
            }
            report = decoded
            source = "the plan recorded by laq quantize --target-bits"
        } else {
            let model: Model
            model = try reading(file) { try Model(file: laq) }
            guard !model.layers.flatMap({ $0.kind.weights }).contains(where: \.integerCodes),
                  !laq.tensors.contains(where: { if case .codebook = $0.encoding { true } else { false } }) else {
                throw CommandError.refused("\(file) is already quantized without a bit plan: run --sensitivity on the file laq import wrote")
            }
            let optimizer = model.optimizer
            report = try reading(file) {
                SensitivityReport(tensors: try BitBudget.sensitivity(model, settings: QuantizationSettings(method: .lat2a)) {
                    ModelQuantizer.curvature(of: $0, optimizer: optimizer)
                })
            }
            source = optimizer == nil ? "no optimizer state: d ≡ 1 (plain squared error)" : "d = √v + 1e-8 from the imported \(optimizer!.className) state"
        }
        if json {
            guard case var .object(object) = report.json else { return }
            object["file"] = .string(file)
            object["source"] = .string(source)
            try printJSON(.object(object))
        } else {
            print(sensitivityText(report, source: source))
        }
    }

    /// Columns of estimates by nominal width: binary, ternary (the better of one and two scales),
    /// m-bit (the better of linear and log spacing), float.
    private func sensitivityText(_ report: SensitivityReport, source: String) -> String {
        let columns: [(title: String, labels: [String])] = [("lab", ["lab"]), ("ternary", ["lata", "lat2a"])]
            + (2...8).map { bits in ("\(bits)-bit", LevelSpacing.allCases.map { Method.laq(bits: bits, levels: $0, alpha: .exact).description }) }
        let chosen = report.rows.contains { $0.choice != nil }
        // The chart: each tensor's estimate at two-scale ternary against the largest, so that the
        // layers that suffer most from 2-bit quantization stand out.
        let reference = report.rows.map { $0.estimate(of: "lat2a") ?? $0.estimates.first ?? 0 }
        let largest = reference.max() ?? 0
        var table = TextTable(headers: ["tensor", "weights"] + (chosen ? ["chosen", "bits/w"] : []) + columns.map(\.title) + ["lat2a share"],
                              rightAligned: Set(1..<(2 + (chosen ? 2 : 0) + columns.count)).subtracting(chosen ? [2] : []),
                              shrinkable: [(0, 16)], droppable: Array((chosen ? 4 : 2)..<(chosen ? 4 : 2) + columns.count).reversed())
        for (row, value) in zip(report.rows, reference) {
            var cells = [row.weight, String(row.elements)]
            if let choice = row.choice, let bits = row.choiceBits {
                cells += [choice, String(format: "%.2f", Double(bits) / Double(max(row.elements, 1)))]
            } else if chosen {
                cells += ["-", "-"]
            }
            for column in columns {
                let values = column.labels.compactMap(row.estimate(of:))
                cells.append(values.min().map { String(format: "%.3g", $0) } ?? "-")
            }
            let width = largest > 0 && value > 0 ? Int(min(12, (value / largest * 12).rounded())) : 0
            cells.append(String(repeating: "█", count: width) + (width == 0 && value > 0 ? "▏" : ""))
            table.rows.append(cells)
        }
        var lines = ["\(file): estimated loss increase ½Σd(w−ŵ)² per tensor and candidate (\(source))"]
        lines.append(table.render(width: terminalWidth()))
        if let chosen = report.chosen {
            lines.append(String(format: "plan: %.3f bits per weight%@ over %d weights; estimated loss increase %.4g",
                                Double(chosen.storedBits) / Double(max(report.elements, 1)),
                                report.targetBits.map { String(format: " (budget %g)", $0) } ?? "", report.elements, chosen.estimate))
        }
        lines.append("ternary: the better of lata and lat2a; m-bit: of linear and log levels; float keeps the tensor (estimate 0)")
        return lines.joined(separator: "\n")
    }
}
