import Foundation
import LAQTestSupport
import Testing

/// `laq quantize --target-bits` and `laq inspect --sensitivity` (spec/QUANTIZATION.md §12).
@Suite struct TargetBitsTests {
    /// Σ bits of the decoded payloads of `names` as `laq inspect --json` reports them.
    static func storedBits(_ path: String, _ names: Set<String>) throws -> Double {
        let inspected = try CLITests.run(["inspect", path, "--json"])
        try #require(inspected.status == 0, "\(inspected.stderr)")
        let tensors = try #require(try CLITests.json(inspected.stdout)["tensors"] as? [[String: Any]])
        return tensors.filter { names.contains($0["name"] as? String ?? "") }.reduce(0.0) { sum, tensor in
            sum + (tensor["bits_per_element"] as? Double ?? 0) * Double(tensor["elements"] as? Int ?? 0)
        }
    }

    @Test("one-shot and calibrated plans stay within the budget as inspect counts it, record the plan, and show it")
    func withinBudget() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let kernels: Set<String> = ["hidden/kernel", "classes/kernel"]
        let elements = 784.0 * 64 + 64 * 10
        for (target, mode) in [(2.0, ["--one-shot"]), (1.7, ["--one-shot"]), (2.0, ["--calib", ErrorMessageTests.data, "--y-key", "labels", "--batch", "32"])] {
            let output = directory.appendingPathComponent("q.laq").path
            let result = try CLITests.run(["quantize", model, "-o", output, "--target-bits", String(target), "--json"] + mode)
            try #require(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("plan: "), "\(result.stderr)")
            let report = try CLITests.json(result.stdout)
            let plan = try #require(report["plan"] as? [String: Any])
            #expect((plan["average_bits"] as? Double ?? 99) <= target)
            // Each tensor is written with the method the plan chose (float ones are not quantized).
            let choices = Dictionary(uniqueKeysWithValues: try #require(plan["tensors"] as? [[String: Any]]).map { ($0["weight"] as? String ?? "", $0["choice"] as? String ?? "") })
            let written = Dictionary(uniqueKeysWithValues: try #require(report["tensors"] as? [[String: Any]]).map { ($0["name"] as? String ?? "", $0["method"] as? String ?? "") })
            #expect(choices.filter { $0.value != "float" } == written, "\(choices) \(written)")
            #expect(try Self.storedBits(output, kernels) <= target * elements)
            #expect(try CLITests.run(["verify", output]).status == 0)
            let view = try CLITests.run(["inspect", output, "--sensitivity", "--json"])
            try #require(view.status == 0, "\(view.stderr)")
            let recorded = try CLITests.json(view.stdout)
            #expect(recorded["target_bits"] as? Double == target)
            let rows = try #require(recorded["tensors"] as? [[String: Any]])
            #expect(Set(rows.compactMap { $0["weight"] as? String }) == kernels)
            #expect(rows.allSatisfy { $0["choice"] is String })
            if mode.contains("--calib") {
                let provenance = try #require(try CLITests.json(try CLITests.run(["inspect", output, "--json"]).stdout)["provenance"] as? [[String: Any]])
                let hessian = try #require((provenance.last?["parameters"] as? [String: Any])?["hessian"] as? [String: Any])
                #expect((hessian["plan_d"] as? String)?.hasPrefix("sqrt(mean of g²) + 1e-8 over ") == true, "\(hessian)")
            }
            let text = try CLITests.run(["inspect", output, "--sensitivity"])
            #expect(text.stdout.contains("(budget \(target == 2 ? "2" : "1.7"))"), "\(text.stdout)")
        }
        // A float file: computed from its Adam state, without a plan.
        let fresh = try CLITests.run(["inspect", model, "--sensitivity"])
        #expect(fresh.status == 0)
        #expect(fresh.stdout.contains("from the imported Adam state"), "\(fresh.stdout)")
        #expect(fresh.stdout.contains("hidden/kernel"))
    }

    @Test("an impossible budget, or --target-bits with --method or --bits, is a usage error")
    func refused() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let output = directory.appendingPathComponent("q.laq").path
        let small = try CLITests.run(["quantize", model, "-o", output, "--target-bits", "0.5", "--one-shot"])
        #expect(small.status == 2)
        #expect(ErrorMessageTests.errorLine(small).contains("--target-bits 0.5 is below the smallest plan, 1.003 bits per weight"), "\(small.stderr)")
        #expect(try CLITests.run(["quantize", model, "-o", output, "--target-bits", "2", "--method", "lab", "--one-shot"]).status == 2)
        #expect(try CLITests.run(["quantize", model, "-o", output, "--target-bits", "2", "--bits", "3", "--one-shot"]).status == 2)
        #expect(try CLITests.run(["quantize", model, "-o", output, "--target-bits", "40", "--one-shot"]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: output))
    }
}
