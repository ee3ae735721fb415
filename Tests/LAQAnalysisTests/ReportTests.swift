import Foundation
import LAQAnalysis
import LAQFormat
import LAQImport
import LAQEngine
import LAQQuantize
import LAQTestSupport
import Testing

/// `laq report`'s page. Rendering in a browser is checked by tools/check_report.py (headless
/// Chromium, CI); here: what the page contains and that it needs nothing from the network.
@Suite struct ReportTests {
    static func page(history: Bool, name: String = "fmnist_mlp") throws -> (ReportPage, String) {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        model.name = name
        let results = try ModelQuantizer.quantize(model, settings: QuantizationSettings(method: .late))
        var provenance: [ProvenanceRecord] = []
        if history {
            let epochs: [JSONValue] = [
                ["epoch": 0, "training_loss": .null, "validation_loss": 0.9, "validation_accuracy": 0.7],
                ["epoch": 1, "training_loss": 0.6, "validation_loss": 0.5, "validation_accuracy": 0.8],
            ]
            provenance.append(ProvenanceRecord(tool: "laq test", command: "quantize", parameters: [
                "method": "late",
                "hessian": ["history": .array(epochs), "step_losses": ["stride": 1, "values": [0.8, 0.7, 0.6]],
                            "validation_full_precision": ["loss": 0.45, "accuracy": 0.84]],
            ]))
        }
        let writer = try model.laqWriter(provenance: provenance, replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
        let quantized = try LAQFile(bytes: try writer.encoded())
        let reference = try LAQFile(bytes: try model.laqWriter(provenance: []).encoded())
        var page = ReportPage(file: quantized, fileName: "q.laq", reference: reference, referenceName: "fp.laq",
                              diff: try ModelDiff.compare(reference, quantized))
        let html = try page.render()
        return (page, html)
    }

    @Test("every section's charts are on the page, each as an inline SVG with drawn marks")
    func charts() throws {
        let (page, html) = try Self.page(history: true)
        #expect(page.charts == ["bits", "histogram-0", "histogram-1", "calibration-steps", "calibration-loss", "calibration-accuracy", "diff-tensors"])
        for chart in page.charts { #expect(html.contains("data-chart=\"\(chart)\""), "\(chart)") }
        #expect(html.components(separatedBy: "<svg ").count - 1 == page.charts.count)
        #expect(html.contains("class=\"mark level\""), "the quantization levels are drawn over the histograms")
        #expect(html.contains("<body data-charts=\"7\">"))
    }

    @Test("a --target-bits plan gets its section: the sensitivity chart and each tensor's choice and estimates")
    func bitPlan() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let optimizer = model.optimizer
        let tensors = try BitBudget.sensitivity(model, settings: QuantizationSettings(method: .lat2a)) { ModelQuantizer.curvature(of: $0, optimizer: optimizer) }
        let plan = try BitBudget.plan(tensors, targetBits: 2)
        let results = try ModelQuantizer.quantize(model, settings: plan.applied(to: QuantizationSettings(method: .lat2a)))
        let provenance = [ProvenanceRecord(tool: "laq test", command: "quantize", parameters: ["target_bits": 2, "plan": plan.record])]
        let writer = try model.laqWriter(provenance: provenance, replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
        var page = ReportPage(file: try LAQFile(bytes: try writer.encoded()), fileName: "q.laq")
        let html = try page.render()
        #expect(page.charts.contains("sensitivity"))
        #expect(html.contains("<h2>Bit plan</h2>"))
        #expect(html.contains(String(format: "%.3f stored bits per weight", plan.averageBits)))
        for (tensor, choice) in zip(plan.tensors, plan.choices) {
            #expect(html.contains("<td>\(tensor.weight)</td><td class=\"n\">\(tensor.elements)</td><td>\(choice.label)</td>"), "\(tensor.weight)")
        }
        // Without a plan: no section.
        #expect(!(try Self.page(history: true).1.contains("Bit plan")))
    }

    @Test("without a recorded calibration run the page says so and draws no curve")
    func noCalibration() throws {
        let (page, html) = try Self.page(history: false)
        #expect(!page.charts.contains { $0.hasPrefix("calibration") })
        #expect(html.contains("No calibration run is recorded"))
    }

    @Test("self-contained: no external resources, and names from the file are escaped")
    func selfContained() throws {
        let (_, html) = try Self.page(history: false, name: "<script>alert(1)</script>")
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        let urls = html.components(separatedBy: "http").dropFirst().map { String($0.prefix(30)) }
        #expect(urls.allSatisfy { $0.hasPrefix("://www.w3.org/2000/svg") || $0.hasPrefix("-equiv") }, "\(urls)")
        #expect(!html.contains("src=\"") && !html.contains("href=\""))
    }
}
