import Foundation
import LAQCalibration
import LAQEngine
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing

/// spec/QUANTIZATION.md §12: candidates, their costs and estimates, and the plan under a budget.
@Suite struct BitBudgetTests {
    static func candidate(_ bits: Int, _ estimate: Double, _ method: Method? = .lab) -> BitCandidate {
        BitCandidate(method: method, storedBits: bits, estimate: estimate)
    }

    static func tensor(_ name: String, elements: Int, _ candidates: [BitCandidate]) -> TensorSensitivity {
        TensorSensitivity(weight: name, layer: name, elements: elements, candidates: candidates, fixed: false)
    }

    @Test("§12.2: the frontier keeps only candidates no other beats in both bits and estimate")
    func frontier() {
        let kept = BitBudget.frontier([Self.candidate(10, 5), Self.candidate(20, 6), Self.candidate(20, 3), Self.candidate(30, 3), Self.candidate(40, 0)])
        #expect(kept.map(\.storedBits) == [10, 20, 40])
        #expect(kept.map(\.estimate) == [5, 3, 0])
    }

    @Test("§12.2: the plan is the smallest summed estimate within the budget (checked against every combination)")
    func optimal() throws {
        var random = SplitMix64(seed: 5)
        for _ in 0..<40 {
            // Small bit counts: the budget fits in 2¹⁶ units, so the dynamic programme is exact.
            let tensors = (0..<4).map { index in
                Self.tensor("t\(index)", elements: 10, (0..<4).map { _ in Self.candidate(Int.random(in: 5...80, using: &random), Double.random(in: 0...10, using: &random)) })
            }
            let target = Double.random(in: 1...6, using: &random)
            let budget = Int((target * 40).rounded(.down))
            var best = Double.infinity
            for code in 0..<256 {
                let picks = (0..<4).map { tensors[$0].candidates[(code >> (2 * $0)) & 3] }
                if picks.reduce(0, { $0 + $1.storedBits }) <= budget { best = min(best, picks.reduce(0) { $0 + $1.estimate }) }
            }
            guard best.isFinite else {
                #expect(throws: QuantizeError.self) { try BitBudget.plan(tensors, targetBits: target) }
                continue
            }
            let plan = try BitBudget.plan(tensors, targetBits: target)
            #expect(plan.storedBits <= budget)
            #expect(abs(plan.estimate - best) < 1e-9, "plan \(plan.estimate), best \(best)")
        }
    }

    @Test("§12.2: with more bits than units, the budget holds and the plan is at least as good as the best within the budget less one unit per tensor")
    func scaled() throws {
        var random = SplitMix64(seed: 9)
        for _ in 0..<20 {
            let tensors = (0..<4).map { index in
                Self.tensor("t\(index)", elements: 1_000_003, (0..<4).map { _ in
                    Self.candidate(Int.random(in: 500_000...8_000_000, using: &random), Double.random(in: 0...10, using: &random))
                })
            }
            let target = Double.random(in: 1.5...6, using: &random)
            let budget = Int((target * 4_000_012).rounded(.down))
            // Rounding each cost up to whole units loses at most one unit per tensor.
            let reduced = budget - 4 * Int((Double(budget) / 65_536).rounded(.up))
            var best = Double.infinity
            for code in 0..<256 {
                let picks = (0..<4).map { tensors[$0].candidates[(code >> (2 * $0)) & 3] }
                if picks.reduce(0, { $0 + $1.storedBits }) <= reduced { best = min(best, picks.reduce(0) { $0 + $1.estimate }) }
            }
            guard let plan = try? BitBudget.plan(tensors, targetBits: target) else { continue }
            #expect(plan.storedBits <= budget)
            #expect(plan.estimate <= best + 1e-9, "plan \(plan.estimate), best within the reduced budget \(best)")
        }
        // Many tensors (fewer units each): the budget still holds.
        let many = (0..<700).map { index in
            Self.tensor("m\(index)", elements: 1000, [Self.candidate(1000, Double(index % 7) + 1), Self.candidate(1600, 0.5), Self.candidate(32000, 0, nil)])
        }
        let plan = try BitBudget.plan(many, targetBits: 1.7)
        #expect(plan.storedBits <= 1_190_000)
        #expect(plan.estimate < many.reduce(0) { $0 + $1.candidates[0].estimate })
    }

    @Test("§12.2: a larger budget never estimates worse; every budget holds; too small a budget is refused with the smallest")
    func budgets() throws {
        let tensors = try Self.sensitivity()
        var previous = Double.infinity
        for target in [1.1, 1.6, 1.7, 2, 3, 4, 8, 33] {
            let plan = try BitBudget.plan(tensors, targetBits: target)
            #expect(plan.averageBits <= target)
            #expect(plan.estimate <= previous)
            previous = plan.estimate
        }
        #expect(try BitBudget.plan(tensors, targetBits: 33).choices.allSatisfy { $0.method == nil })
        #expect(throws: QuantizeError.invalidOption("--target-bits 0.9 is below the smallest plan, 1.003 bits per weight (every tensor lab, scales and tables included): give at least that")) {
            try BitBudget.plan(tensors, targetBits: 0.9)
        }
    }

    /// The bundled Fashion-MNIST MLP's candidates, d from its imported Adam state.
    static func sensitivity(settings: QuantizationSettings = QuantizationSettings(method: .lat2a)) throws -> [TensorSensitivity] {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let optimizer = model.optimizer
        return try BitBudget.sensitivity(model, settings: settings) { ModelQuantizer.curvature(of: $0, optimizer: optimizer) }
    }

    @Test("§12.1: a candidate's bits are the payload its tensor is written with, and its estimate ½Σd(w−ŵ)²")
    func candidateCosts() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let tensors = try Self.sensitivity()
        #expect(tensors.map(\.weight) == ["hidden/kernel", "classes/kernel"])
        // Every method, and float.
        #expect(tensors.allSatisfy { $0.candidates.count == BitBudget.methods.count + 1 })
        let plan = try BitBudget.plan(tensors, targetBits: 2.5)
        let settings = plan.applied(to: QuantizationSettings(method: .bc))
        let results = try ModelQuantizer.quantize(model, settings: settings)
        for (tensor, choice) in zip(plan.tensors, plan.choices) {
            guard let method = choice.method else {
                #expect(!results.contains { $0.weight == tensor.weight })
                #expect(choice.storedBits == tensor.elements * 32)
                continue
            }
            let result = try #require(results.first { $0.weight == tensor.weight })
            #expect(result.method == method)
            let weight = try #require(model.weight(named: tensor.weight))
            let bytes = try #require(Encoding.codebook(result.layout).decodedLength(shape: weight.shape.map { UInt64($0) }, count: UInt64(weight.values.count)))
            #expect(Int(bytes) * 8 == choice.storedBits)
            // ½ Σ d (w − ŵ)², summed here from the values.
            let d = try #require(ModelQuantizer.curvature(of: weight, optimizer: model.optimizer))
            let values = result.values
            let estimate = 0.5 * weight.values.indices.reduce(0.0) { sum, index in
                let difference = Double(values[index]) - Double(weight.values[index])
                return sum + Double(d[index]) * difference * difference
            }
            #expect(abs(estimate - choice.estimate) <= 1e-9 * max(1, estimate))
        }
    }

    @Test("§12.1: a tensor without d among tensors with one takes their mean d; a slot that cannot be a second moment is ignored")
    func missingCurvature() throws {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        var optimizer = try #require(model.optimizer)
        let hiddenWeight = try #require(model.weight(named: "hidden/kernel"))
        let hidden = try #require(ModelQuantizer.curvature(of: hiddenWeight, optimizer: optimizer))
        optimizer.slots.removeAll { $0.weight == "classes/kernel" }
        model.optimizer = optimizer
        let remaining = optimizer
        let tensors = try BitBudget.sensitivity(model, settings: QuantizationSettings(method: .lat2a)) { ModelQuantizer.curvature(of: $0, optimizer: remaining) }
        let mean = Float(hidden.reduce(0.0) { $0 + Double($1) } / Double(hidden.count))
        let classes = try #require(model.weight(named: "classes/kernel"))
        let expected = ModelQuantizer.quantize(classes, method: .lab, d: [Float](repeating: mean, count: classes.values.count), perChannel: false)
        let lab = try #require(tensors[1].candidates.first { $0.method == .lab })
        #expect(abs(lab.estimate - expected.squaredError / 2) <= 1e-12 * max(1, lab.estimate))
        // Slots of another size, or with a negative or non-finite value, are not curvature.
        let weight = try #require(model.weight(named: "hidden/kernel"))
        for values in [[Float](repeating: 1, count: 3), [-1] + [Float](repeating: 1, count: weight.values.count - 1), [.nan] + [Float](repeating: 1, count: weight.values.count - 1)] {
            var damaged = optimizer
            let index = try #require(damaged.slots.firstIndex { $0.weight == "hidden/kernel" && $0.slot == "v" })
            damaged.slots[index].values = values
            #expect(ModelQuantizer.curvature(of: weight, optimizer: damaged) == nil)
        }
    }

    @Test("§12.1: --layer fixes its tensors' method inside the budget; --skip leaves them out")
    func overridesAndSkip() throws {
        let tensors = try Self.sensitivity(settings: QuantizationSettings(method: .lat2a, skip: ["hidden"], overrides: ["classes": .laq(bits: 4, levels: .log, alpha: .exact)]))
        #expect(tensors.map(\.weight) == ["classes/kernel"])
        #expect(tensors[0].fixed)
        #expect(tensors[0].candidates.map(\.method) == [.laq(bits: 4, levels: .log, alpha: .exact)])
        #expect(throws: QuantizeError.noSuchLayer("nope")) {
            try Self.sensitivity(settings: QuantizationSettings(method: .lat2a, skip: ["nope"]))
        }
    }

    @Test("§12.3: the recorded plan reads back as written")
    func recordRoundTrip() throws {
        let plan = try BitBudget.plan(try Self.sensitivity(), targetBits: 2)
        let report = SensitivityReport(plan: plan)
        let decoded = try #require(SensitivityReport(json: report.json))
        // Rows with the standard candidates record them in the standard order, without naming them.
        #expect(decoded.rows.allSatisfy { $0.labels == SensitivityReport.standardLabels })
        #expect(decoded.rows.map { Set($0.labels) } == report.rows.map { Set($0.labels) })
        #expect(decoded.rows.map(\.choice) == report.rows.map(\.choice))
        // The record keeps the chosen candidate's bits only, and estimates to 3 significant digits.
        #expect(decoded.rows.map(\.choiceBits) == plan.choices.map { Optional($0.storedBits) })
        #expect(decoded.rows.allSatisfy { $0.storedBits.isEmpty })
        #expect(decoded.targetBits == 2)
        #expect(decoded.chosen?.storedBits == plan.storedBits)
        for (read, written) in zip(decoded.rows, report.rows) {
            for label in written.labels {
                let (a, b) = (try #require(read.estimate(of: label)), try #require(written.estimate(of: label)))
                #expect(abs(a - b) <= 5e-3 * abs(b), "\(written.weight) \(label)")
            }
        }
        guard case let .object(object) = report.json, case let .array(tensors)? = object["tensors"], case let .object(first)? = tensors.first else {
            Issue.record("no tensors in the record")
            return
        }
        #expect(Set(first.keys) == ["weight", "elements", "choice", "choice_bits", "estimates"])
        #expect(object["candidates"] == nil)
        // A tensor with other candidates (a --layer override) names its own.
        let overridden = SensitivityReport(targetBits: nil, rows: [.init(weight: "w", elements: 4, choice: "lab", choiceBits: 4, labels: ["lab"],
                                                                         storedBits: [], estimates: [0.25])])
        let reread = try #require(SensitivityReport(json: overridden.json))
        #expect(reread.rows[0].labels == ["lab"] && reread.rows[0].estimates == [0.25] && reread.rows[0].choiceBits == 4)
        // Without a plan, every candidate's bits.
        let listing = SensitivityReport(tensors: plan.tensors)
        let listed = try #require(SensitivityReport(json: listing.json))
        #expect(listed.rows.map(\.storedBits) == plan.tensors.map { $0.candidates.map(\.storedBits) })
        #expect(listed.rows.allSatisfy { $0.choice == nil && $0.choiceBits == nil })
        // Records no real plan can hold are refused, never trapped on; earlier records, with
        // every candidate's bits beside the choice, still read.
        func record(elements: Int64 = 10, bits: JSONValue = 16, estimate: JSONValue = 0.5, choice: JSONValue = "lab", legacy: Bool = false) -> JSONValue {
            var tensor: [String: JSONValue] = ["weight": "w", "elements": .int(elements), "estimates": [estimate], "candidates": ["lab"], "choice": choice]
            if legacy { tensor["stored_bits"] = [bits] } else { tensor["choice_bits"] = bits }
            return ["tensors": [.object(tensor)]]
        }
        for legacy in [false, true] {
            #expect(SensitivityReport(json: record(legacy: legacy))?.chosen?.storedBits == 16)
            #expect(SensitivityReport(json: record(elements: -1, legacy: legacy)) == nil)
            #expect(SensitivityReport(json: record(elements: 1 << 60, legacy: legacy)) == nil)
            #expect(SensitivityReport(json: record(bits: 1e19, legacy: legacy)) == nil)
            #expect(SensitivityReport(json: record(bits: -8, legacy: legacy)) == nil)
            #expect(SensitivityReport(json: record(estimate: -0.5, legacy: legacy)) == nil)
            #expect(SensitivityReport(json: record(choice: "lata", legacy: legacy)) == nil)
        }
        #expect(SensitivityReport(json: ["tensors": [["weight": "w", "elements": 10, "estimates": [0.5], "candidates": ["lab"], "choice": "lab"]]]) == nil)
        // The largest values a record may hold sum without overflow.
        let big = SensitivityReport(targetBits: 2, rows: (0..<4).map { _ in
            .init(weight: "w", elements: 1 << 53, choice: "lab", labels: ["lab"], storedBits: [Int.max], estimates: [1])
        })
        #expect(big.elements == 1 << 55)
        #expect(big.chosen?.storedBits == Int.max)
    }

    @Test("§12.1: with calibration data, d = √(mean g²) + 1e-8 over the batches, from the full-precision model")
    func curvatureFromData() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let (training, _) = try CalibrationTests.data()
        var settings = Calibration.Settings(quantization: QuantizationSettings(method: .lat2a))
        settings.batchSize = 100
        let calibration = Calibration(settings: settings, loss: .sparseCategoricalCrossentropy(fromLogits: false))
        let d = try calibration.curvature(of: model, on: training, batches: 2)
        #expect(Set(d.keys) == ["hidden/kernel", "classes/kernel"])
        // The same two batches by hand: the run's seeded order, batches of 100.
        var random = TrainingRandom(seed: settings.seed)
        let order = random.permutation(training.count)
        var squares = [Double](repeating: 0, count: 640)
        for step in 0..<2 {
            let batch = training.subset(0..<training.count)
            let indices = Array(order[(step * 100)..<((step + 1) * 100)])
            let inputs = [Tensor(shape: [100, 784], data: indices.flatMap { batch.inputs[0].data[($0 * 784)..<(($0 + 1) * 784)] })]
            let labels = indices.map { training.labels[$0] }
            let outcome = try Backpropagation.run(model: model, inputs: inputs, labels: labels, loss: calibration.loss, random: &random)
            let g = try #require(outcome.gradients["classes/kernel"])
            for index in g.indices { squares[index] += Double(g[index]) * Double(g[index]) }
        }
        let expected = squares.map { Float(($0 / 2).squareRoot()) + 1e-8 }
        let got = try #require(d["classes/kernel"])
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(abs($1), 1e-6) })
    }
}
