import Foundation
import LAQEngine
import LAQFormat

/// One way to store a quantizable tensor, with its cost and its estimated harm.
public struct BitCandidate: Sendable, Equatable {
    /// nil: the tensor stays float.
    public var method: Method?
    /// Bits of the decoded payload: codes, and for codebooks the level tables (float32 each), as
    /// `laq inspect` counts them (spec/FORMAT.md rule 5.6).
    public var storedBits: Int
    /// The loss increase estimated from the curvature: ½ Σ dᵢ (wᵢ − ŵᵢ)² (0 for float).
    public var estimate: Double

    public init(method: Method?, storedBits: Int, estimate: Double) {
        self.method = method
        self.storedBits = storedBits
        self.estimate = estimate
    }

    /// `lab`, `lat2a`, `laq 3-bit log`, or `float`.
    public var label: String { method?.description ?? "float" }
}

/// A quantizable tensor's candidates.
public struct TensorSensitivity: Sendable {
    public var weight: String
    public var layer: String
    public var elements: Int
    /// By stored bits, then estimate.
    public var candidates: [BitCandidate]
    /// Whether `--layer` fixed the method (the only candidate): it counts in the budget, but is
    /// not chosen.
    public var fixed: Bool

    public init(weight: String, layer: String, elements: Int, candidates: [BitCandidate], fixed: Bool) {
        self.weight = weight
        self.layer = layer
        self.elements = elements
        self.candidates = candidates
        self.fixed = fixed
    }
}

/// Per-tensor choices under a budget of stored bits per quantizable weight
/// (spec/QUANTIZATION.md §12).
public struct BitPlan: Sendable {
    /// The budget: average stored bits per weight over the planned tensors.
    public var targetBits: Double
    public var tensors: [TensorSensitivity]
    /// Each tensor's choice, in the order of `tensors`.
    public var choices: [BitCandidate]

    public var elements: Int { tensors.reduce(0) { saturatingSum($0, $1.elements) } }
    public var storedBits: Int { choices.reduce(0) { saturatingSum($0, $1.storedBits) } }
    /// Average stored bits per weight of the plan (≤ `targetBits`).
    public var averageBits: Double { elements == 0 ? 0 : Double(storedBits) / Double(elements) }
    /// Σ of the chosen candidates' estimates.
    public var estimate: Double { choices.reduce(0) { $0 + $1.estimate } }

    /// The settings that carry out the plan: a method per weight, float where chosen.
    public func applied(to settings: QuantizationSettings) -> QuantizationSettings {
        var settings = settings
        for (tensor, choice) in zip(tensors, choices) {
            if let method = choice.method { settings.weightMethods[tensor.weight] = method } else { settings.floatWeights.insert(tensor.weight) }
        }
        return settings
    }

    /// The plan as the provenance records it (``SensitivityReport``).
    public var record: JSONValue { SensitivityReport(plan: self).json }
}

/// Every tensor's candidates with their stored bits and estimates, and the plan's choice when
/// there is one: what `laq inspect --sensitivity` shows, and what the provenance of a
/// `--target-bits` run records (spec/QUANTIZATION.md §12.3).
public struct SensitivityReport: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var weight: String
        public var elements: Int
        /// The chosen candidate's label and stored bits, nil without a plan.
        public var choice: String?
        public var choiceBits: Int?
        /// Labels and estimates: fewest bits first as costed, in ``standardLabels`` order as read
        /// from a record.
        public var labels: [String]
        public var estimates: [Double]
        /// Every candidate's stored bits, in the order of `labels`; empty when read from a plan
        /// record, which keeps the chosen candidate's only.
        public var storedBits: [Int]

        public init(weight: String, elements: Int, choice: String?, choiceBits: Int? = nil, labels: [String], storedBits: [Int], estimates: [Double]) {
            self.weight = weight
            self.elements = elements
            self.choice = choice
            self.labels = labels
            self.storedBits = storedBits
            self.estimates = estimates
            self.choiceBits = choiceBits ?? choice.flatMap { labels.firstIndex(of: $0) }.flatMap { $0 < storedBits.count ? storedBits[$0] : nil }
        }

        /// The estimate of the candidate labelled `label`.
        public func estimate(of label: String) -> Double? { labels.firstIndex(of: label).map { estimates[$0] } }
    }

    public var targetBits: Double?
    public var rows: [Row]

    public init(targetBits: Double?, rows: [Row]) {
        self.targetBits = targetBits
        self.rows = rows
    }

    public init(plan: BitPlan) {
        self.init(tensors: plan.tensors, choices: plan.choices)
        targetBits = plan.targetBits
    }

    /// Without a plan: the candidates only.
    public init(tensors: [TensorSensitivity], choices: [BitCandidate]? = nil) {
        targetBits = nil
        rows = tensors.indices.map { index in
            let tensor = tensors[index]
            return Row(weight: tensor.weight, elements: tensor.elements, choice: choices?[index].label,
                       labels: tensor.candidates.map(\.label), storedBits: tensor.candidates.map(\.storedBits),
                       estimates: tensor.candidates.map(\.estimate))
        }
    }

    public var elements: Int { rows.reduce(0) { saturatingSum($0, $1.elements) } }

    /// Stored bits and summed estimate of the chosen candidates; nil without a plan.
    public var chosen: (storedBits: Int, estimate: Double)? {
        var bits = 0
        var estimate = 0.0
        for row in rows {
            guard let choice = row.choice, let bitsOfChoice = row.choiceBits, let index = row.labels.firstIndex(of: choice) else { return nil }
            bits = saturatingSum(bits, bitsOfChoice)
            estimate += row.estimates[index]
        }
        return (bits, estimate)
    }

    /// The candidates of §12.1 in their order there: what a record's rows list when they do not
    /// name their own.
    public static let standardLabels = BitBudget.methods.map(\.description) + ["float"]

    /// `{"target_bits", "average_bits", "stored_bits", "elements", "estimate", "tensors":
    /// [{"weight", "elements", "choice", "choice_bits", "estimates": […]}]}` with a plan (the
    /// provenance record: the chosen candidate's stored bits only, estimates to 3 significant
    /// digits, as they are shown); without one, each tensor's `stored_bits` for every candidate
    /// in place of `choice` and `choice_bits`. A tensor's arrays follow ``standardLabels``, or
    /// its own `candidates` when it has other ones (a `--layer` override).
    public var json: JSONValue {
        let standard = Self.standardLabels
        var object: [String: JSONValue] = [
            "elements": .int(Int64(elements)),
            "tensors": .array(rows.map { row in
                // The row's values in the standard order when it has exactly the standard candidates.
                let order = row.labels.count == standard.count ? standard.compactMap { row.labels.firstIndex(of: $0) } : []
                let indices = order.count == standard.count ? order : Array(row.labels.indices)
                var item: [String: JSONValue] = [
                    "weight": .string(row.weight), "elements": .int(Int64(row.elements)),
                    "estimates": .array(indices.map { .double(rounded(row.estimates[$0], digits: 3)) }),
                ]
                if let choice = row.choice, let bits = row.choiceBits {
                    item["choice"] = .string(choice)
                    item["choice_bits"] = .int(Int64(bits))
                } else if row.storedBits.count == row.labels.count {
                    item["stored_bits"] = .array(indices.map { .int(Int64(row.storedBits[$0])) })
                }
                if order.count != standard.count { item["candidates"] = .array(row.labels.map { .string($0) }) }
                return .object(item)
            }),
        ]
        if let targetBits { object["target_bits"] = .double(targetBits) }
        if let chosen {
            object["stored_bits"] = .int(Int64(chosen.storedBits))
            object["average_bits"] = .double(Double(chosen.storedBits) / Double(max(elements, 1)))
            object["estimate"] = .double(rounded(chosen.estimate))
        }
        return .object(object)
    }

    /// Reads ``json`` back; nil when `value` is not such a record.
    public init?(json value: JSONValue) {
        guard case let .object(object) = value, case let .array(tensors)? = object["tensors"] else { return nil }
        func strings(_ value: JSONValue?) -> [String]? {
            guard case let .array(items)? = value else { return nil }
            let texts = items.compactMap(\.stringValue)
            return texts.count == items.count ? texts : nil
        }
        func numbers(_ value: JSONValue?) -> [Double]? {
            guard case let .array(items)? = value else { return nil }
            let values = items.compactMap { item -> Double? in
                switch item {
                case let .int(number): Double(number)
                case let .double(number): number
                default: nil
                }
            }
            return values.count == items.count ? values : nil
        }
        // Earlier records list the labels most rows share at the top.
        let common = strings(object["candidates"]) ?? Self.standardLabels
        var rows: [Row] = []
        for tensor in tensors {
            guard case let .object(item) = tensor, let weight = item["weight"]?.stringValue, case let .int(elements)? = item["elements"], elements >= 0, elements <= 1 << 53,
                  let estimates = numbers(item["estimates"]) else { return nil }
            let labels = strings(item["candidates"]) ?? common
            // Every candidate's bits (without a plan, and in earlier plan records), or the
            // choice's; counts a real tensor can have, and estimates a sum of squares can take.
            let bits = numbers(item["stored_bits"]) ?? []
            let choiceBits = numbers(item["choice_bits"].map { .array([$0]) })?.first
            let choice = item["choice"]?.stringValue
            guard labels.count == estimates.count, bits.isEmpty || bits.count == labels.count, !bits.isEmpty || (choice != nil && choiceBits != nil),
                  (bits + [choiceBits ?? 0]).allSatisfy({ $0 >= 0 && $0 <= 0x1p53 }), choice.map(labels.contains) ?? true,
                  estimates.allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
            rows.append(Row(weight: weight, elements: Int(elements), choice: choice, choiceBits: choiceBits.map { Int($0) }, labels: labels,
                            storedBits: bits.map { Int($0) }, estimates: estimates))
        }
        var target: Double?
        switch object["target_bits"] {
        case let .double(value)?: target = value
        case let .int(value)?: target = Double(value)
        default: target = nil
        }
        self.init(targetBits: target, rows: rows)
    }
}

/// a + b, or Int.max where that overflows (sizes from a file's record).
func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

/// An estimate to `digits` significant digits (d is a noisy average), which keeps the
/// provenance short.
private func rounded(_ value: Double, digits: Int = 5) -> Double {
    value.isFinite ? Double(String(format: "%.\(digits)g", value)) ?? value : value
}

/// Bit allocation from the loss-aware curvature: each tensor's candidates are costed in stored
/// bits and in estimated loss increase ½ Σ d (w − ŵ)² (the second-order term of the loss with the
/// diagonal curvature d the quantizers weight by), and a plan picks one per tensor so that the
/// stored bits stay within the budget and the summed estimate is small.
public enum BitBudget {
    /// The quantizers a plan chooses from: binary, ternary with one and two scales, and m-bit
    /// linear and logarithmic for m = 2…8 (all loss-aware; the alternating ternary methods, as the
    /// calibration run uses them), besides keeping float.
    public static let methods: [Method] = [.lab, .lata, .lat2a]
        + (2...8).flatMap { bits in LevelSpacing.allCases.map { Method.laq(bits: bits, levels: $0, alpha: .exact) } }

    /// Every candidate of every quantizable, non-skipped weight of `model`; a layer that
    /// `settings.overrides` names keeps its method as the only candidate. `curvature(weight)` is
    /// d, or nil for d ≡ 1; `floatBits` the bits of a weight kept float (32, or 16 stored as
    /// float16/bfloat16). The tensors run on laq's threads.
    public static func sensitivity(
        _ model: Model, settings: QuantizationSettings, floatBits: Int = 32, curvature: @Sendable (Weight) -> [Float]?
    ) throws(QuantizeError) -> [TensorSensitivity] {
        try ModelQuantizer.check(model, settings: settings)
        let weights = model.weights.filter { ModelQuantizer.isQuantizable($0, in: model) && !settings.skip.contains($0.layer) }
        // One job per (tensor, method), method by method: the pool splits the list into
        // contiguous parts, so each part holds candidates of every tensor, large ones included.
        let candidates = weights.map { settings.overrides[$0.layer].map { [$0] } ?? methods }
        let jobs = (0..<methods.count).flatMap { position in
            weights.indices.compactMap { index in position < candidates[index].count ? (index, candidates[index][position]) : nil }
        }
        let gates = weights.map { ModelQuantizer.gateCount(of: $0, in: model) }
        var measured = weights.map(curvature)
        // A tensor without d (a frozen layer without optimizer slots, a weight without gradient)
        // among tensors with one: d ≡ 1 would be on another scale, so it takes the others' mean d.
        let known = measured.compactMap { $0 }
        if !known.isEmpty, known.count < measured.count {
            let count = known.reduce(0) { $0 + $1.count }
            let mean = count == 0 ? 1 : Float(known.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) } } / Double(count))
            for index in measured.indices where measured[index] == nil {
                measured[index] = [Float](repeating: mean, count: weights[index].values.count)
            }
        }
        let curvatures = measured
        let perChannel = settings.perChannel
        let costed = Parallel.map(jobs.count) { job in
            let (index, method) = jobs[job]
            let weight = weights[index]
            let result = ModelQuantizer.quantize(weight, method: method, d: curvatures[index], perChannel: perChannel, gates: gates[index])
            let bytes = Encoding.codebook(result.layout).decodedLength(shape: weight.shape.map { UInt64($0) }, count: UInt64(weight.values.count)) ?? .max
            let (bits, overflow) = bytes.multipliedReportingOverflow(by: 8)
            return BitCandidate(method: method, storedBits: overflow ? .max : Int(clamping: bits), estimate: result.squaredError / 2)
        }
        var byTensor = [[BitCandidate]](repeating: [], count: weights.count)
        for (job, candidate) in zip(jobs, costed) { byTensor[job.0].append(candidate) }
        return weights.indices.map { index in
            let weight = weights[index]
            var candidates = byTensor[index]
            let fixed = settings.overrides[weight.layer] != nil
            if !fixed { candidates.append(BitCandidate(method: nil, storedBits: weight.values.count * floatBits, estimate: 0)) }
            candidates.sort { ($0.storedBits, $0.estimate) < ($1.storedBits, $1.estimate) }
            return TensorSensitivity(weight: weight.name, layer: weight.layer, elements: weight.values.count, candidates: candidates, fixed: fixed)
        }
    }

    /// The candidates worth choosing, fewest bits first: those that no other candidate beats in
    /// both bits and estimate.
    public static func frontier(_ candidates: [BitCandidate]) -> [BitCandidate] {
        var kept: [BitCandidate] = []
        for candidate in candidates.sorted(by: { ($0.storedBits, $0.estimate) < ($1.storedBits, $1.estimate) }) {
            if let last = kept.last, candidate.estimate >= last.estimate { continue }
            kept.append(candidate)
        }
        return kept
    }

    /// The plan with the smallest summed estimate whose stored bits stay within `targetBits` per
    /// weight on average: a multiple-choice knapsack, solved by dynamic programming over the
    /// budget cut into at most 2¹⁶ units (each candidate's bits rounded up to whole units, so the
    /// rounding never breaks the budget), then filled: while some tensor can move to a candidate
    /// with a smaller estimate within the bits left over (counted exactly), the move that saves
    /// the most is taken. Throws when even the fewest bits of every tensor exceed the budget.
    public static func plan(_ tensors: [TensorSensitivity], targetBits: Double) throws(QuantizeError) -> BitPlan {
        guard targetBits.isFinite, targetBits > 0 else { throw .invalidOption("--target-bits must be a positive number of bits per weight") }
        let options = tensors.map { frontier($0.candidates) }
        let elements = tensors.reduce(0) { saturatingSum($0, $1.elements) }
        guard elements > 0, options.allSatisfy({ !$0.isEmpty }) else { throw .invalidOption("--target-bits: the model has no weight to quantize") }
        let budget = Int(min((targetBits * Double(elements)).rounded(.down), Double(Int.max / 2)))
        let fewest = options.reduce(0) { saturatingSum($0, $1[0].storedBits) }
        guard fewest <= budget else {
            let labels = options.map { $0[0].label }
            let summary = Set(labels).count == 1 ? "every tensor \(labels[0])" : "every tensor at its fewest bits"
            // Rounded up, so that the number given is enough.
            let smallest = (Double(fewest) / Double(elements) * 1000).rounded(.up) / 1000
            throw .invalidOption(String(format: "--target-bits %g is below the smallest plan, %.3f bits per weight (%@, scales and tables included): give at least that",
                                        targetBits, smallest, summary))
        }
        var choice = knapsack(options, budget: budget) ?? [Int](repeating: 0, count: tensors.count)
        var used = zip(options, choice).reduce(0) { $0 + $1.0[$1.1].storedBits }
        while true {
            var best: (tensor: Int, option: Int, saving: Double)?
            for (index, candidates) in options.enumerated() {
                let current = candidates[choice[index]]
                // The chosen candidates fit the budget, so `budget - used + current` cannot overflow.
                for (option, candidate) in candidates.enumerated() where candidate.estimate < current.estimate
                    && candidate.storedBits <= budget - used + current.storedBits {
                    let saving = current.estimate - candidate.estimate
                    if best == nil || saving > best!.saving { best = (index, option, saving) }
                }
            }
            guard let best else { break }
            used += options[best.tensor][best.option].storedBits - options[best.tensor][choice[best.tensor]].storedBits
            choice[best.tensor] = best.option
        }
        return BitPlan(targetBits: targetBits, tensors: tensors, choices: tensors.indices.map { options[$0][choice[$0]] })
    }

    /// Each tensor's option index minimising Σ estimate with Σ ⌈bits / unit⌉ ≤ the budget's
    /// units; nil when the rounding leaves no feasible plan.
    static func knapsack(_ options: [[BitCandidate]], budget: Int) -> [Int]? {
        // Units: at most 2¹⁶, and at most 2²⁵ choices kept for the way back.
        let units = max(1, min(1 << 16, (1 << 25) / max(options.count, 1), budget))
        let unit = Double(budget) / Double(units)
        let costs = options.map { $0.map { Int(min(Double(units + 1), (Double($0.storedBits) / unit).rounded(.up))) } }
        // best[u]: the smallest Σ estimate of the tensors so far within u units.
        var best = [Double](repeating: 0, count: units + 1)
        var choices = [[UInt8]]()
        choices.reserveCapacity(options.count)
        for (index, candidates) in options.enumerated() {
            var next = [Double](repeating: .infinity, count: units + 1)
            var picked = [UInt8](repeating: 0, count: units + 1)
            for (option, candidate) in candidates.enumerated() {
                let cost = costs[index][option]
                guard cost <= units else { continue }
                for u in cost...units {
                    let value = best[u - cost] + candidate.estimate
                    if value < next[u] {
                        next[u] = value
                        picked[u] = UInt8(option)
                    }
                }
            }
            best = next
            choices.append(picked)
        }
        guard best[units].isFinite else { return nil }
        var remaining = units
        var result = [Int](repeating: 0, count: options.count)
        for index in options.indices.reversed() {
            let option = Int(choices[index][remaining])
            result[index] = option
            remaining -= costs[index][option]
        }
        return result
    }
}
