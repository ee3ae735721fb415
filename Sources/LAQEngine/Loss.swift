import Foundation
import LAQFormat

/// Keras' losses, computed per sample (the mean over samples is the reported loss).
///
/// Cross-entropies clip probabilities to [ε, 1 − ε] with Keras' ε = 1e-7 when the model outputs
/// probabilities; with `fromLogits` they use a stable log-softmax / log-sigmoid instead.
public enum Loss: Sendable, Equatable {
    case sparseCategoricalCrossentropy(fromLogits: Bool)
    case categoricalCrossentropy(fromLogits: Bool)
    case binaryCrossentropy(fromLogits: Bool)
    case meanSquaredError
    case squaredHinge

    static let epsilon: Float = 1e-7

    /// The loss named in a Keras training config (`"loss": "sparse_categorical_crossentropy"`, or a
    /// serialized loss object), or nil when it names none laq knows.
    public init?(_ value: JSONValue?) {
        var name: String?
        var fromLogits = false
        switch value {
        case let .string(text)?: name = text
        case let .object(members)?:
            name = members["class_name"]?.stringValue ?? members["config"]?["name"]?.stringValue
            if members["config"]?["from_logits"] == .bool(true) { fromLogits = true }
            if let fn = members["config"]?["fn"]?.stringValue { name = fn }
        default: return nil
        }
        switch name?.lowercased().replacingOccurrences(of: "_", with: "") {
        case "sparsecategoricalcrossentropy": self = .sparseCategoricalCrossentropy(fromLogits: fromLogits)
        case "categoricalcrossentropy": self = .categoricalCrossentropy(fromLogits: fromLogits)
        case "binarycrossentropy": self = .binaryCrossentropy(fromLogits: fromLogits)
        case "meansquarederror", "mse": self = .meanSquaredError
        case "squaredhinge": self = .squaredHinge
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .sparseCategoricalCrossentropy: "sparse_categorical_crossentropy"
        case .categoricalCrossentropy: "categorical_crossentropy"
        case .binaryCrossentropy: "binary_crossentropy"
        case .meanSquaredError: "mean_squared_error"
        case .squaredHinge: "squared_hinge"
        }
    }

    /// Whether labels are class indices (one per sample) rather than arrays shaped like the output.
    public var sparseLabels: Bool { if case .sparseCategoricalCrossentropy = self { true } else { false } }

    /// Squared hinge takes ±1 targets; like Keras, labels that are all 0 or 1 are read as 2y − 1.
    func hingeLabels(_ labels: [Float]) -> [Float] {
        guard case .squaredHinge = self, labels.allSatisfy({ $0 == 0 || $0 == 1 }) else { return labels }
        return labels.map { 2 * $0 - 1 }
    }

    /// Per-sample losses for outputs of shape (n, width) and labels (n) or (n, width); NaN for a
    /// sample whose class index is out of range (callers validate labels first).
    public func perSample(outputs: [Float], labels rawLabels: [Float], width: Int) -> [Float] {
        let n = width == 0 ? 0 : outputs.count / width
        let labels = hingeLabels(rawLabels)
        guard labels.count == (sparseLabels ? n : outputs.count) else { return [Float](repeating: .nan, count: n) }
        // No array per sample: rows are read in place.
        return (0..<n).map { sample in
            sampleLoss(outputs[(sample * width)..<((sample + 1) * width)], sample: sample, labels: labels, width: width)
        }
    }

    /// The mean of ``perSample(outputs:labels:width:)`` over the n rows, summed in order in
    /// Double (the same value), without the array of per-sample losses.
    func meanLoss(outputs: [Float], labels rawLabels: [Float], width: Int) -> Double {
        let n = width == 0 ? 0 : outputs.count / width
        let labels = hingeLabels(rawLabels)
        guard labels.count == (sparseLabels ? n : outputs.count) else { return n == 0 ? 0 : .nan }
        var total = 0.0
        for sample in 0..<n {
            total += Double(sampleLoss(outputs[(sample * width)..<((sample + 1) * width)], sample: sample, labels: labels, width: width))
        }
        return total / Double(max(n, 1))
    }

    /// The loss of sample `sample`, whose outputs are `outputs` (a row of `width` values).
    private func sampleLoss(_ outputs: ArraySlice<Float>, sample: Int, labels: [Float], width: Int) -> Float {
        let row = Row(values: outputs)
        switch self {
        case let .sparseCategoricalCrossentropy(fromLogits):
            guard let target = Int(exactly: labels[sample]), (0..<width).contains(target) else { return .nan }
            let normalizer = Self.normalizer(outputs, fromLogits: fromLogits)
            return -Self.logProbability(row[target], normalizer: normalizer, fromLogits: fromLogits)
        case let .categoricalCrossentropy(fromLogits):
            let normalizer = Self.normalizer(outputs, fromLogits: fromLogits)
            var total: Float = 0
            for j in 0..<width {
                total += labels[sample * width + j] * Self.logProbability(row[j], normalizer: normalizer, fromLogits: fromLogits)
            }
            return -total
        case let .binaryCrossentropy(fromLogits):
            var total: Float = 0
            for j in 0..<width {
                let (y, output) = (labels[sample * width + j], row[j])
                if fromLogits {
                    // max(x, 0) − x·y + log(1 + e^−|x|)
                    total += max(output, 0) - output * y + log1pf(expf(-abs(output)))
                } else {
                    let p = min(max(output, Self.epsilon), 1 - Self.epsilon)
                    total += -(y * logf(p) + (1 - y) * logf(1 - p))
                }
            }
            return total / Float(width)
        case .meanSquaredError:
            var total: Float = 0
            for j in 0..<width {
                let difference = row[j] - labels[sample * width + j]
                total += difference * difference
            }
            return total / Float(width)
        case .squaredHinge:
            var total: Float = 0
            for j in 0..<width {
                let margin = max(1 - labels[sample * width + j] * row[j], 0)
                total += margin * margin
            }
            return total / Float(width)
        }
    }

    /// What a row's log-probabilities are taken against: log Σ_j e^(x_j − max) + max for logits
    /// (log-softmax), Σ_j p_j for probabilities (Keras renormalises; 1 when the sum is 0).
    static func normalizer(_ row: ArraySlice<Float>, fromLogits: Bool) -> Float {
        if fromLogits {
            var top = row.first ?? 0
            for value in row where value > top { top = value }
            var sum: Float = 0
            for value in row { sum += expf(value - top) }
            return top + logf(sum)
        }
        var sum: Float = 0
        for value in row { sum += value }
        return sum == 0 ? 1 : sum
    }

    /// log p of one entry: x − normalizer for logits; for probabilities the renormalised value
    /// clipped to [ε, 1 − ε] as Keras does.
    static func logProbability(_ value: Float, normalizer: Float, fromLogits: Bool) -> Float {
        fromLogits ? value - normalizer : logf(min(max(value / normalizer, epsilon), 1 - epsilon))
    }
}

/// Classification metrics over a set of predictions.
public struct Evaluation: Sendable, Equatable {
    public var samples: Int
    public var loss: Double?
    public var accuracy: Double?
    public var topK: (k: Int, accuracy: Double)?
    /// Outputs that are NaN or infinite; a row holding one never counts as correct.
    public var nonFinite: Int = 0

    public static func == (a: Evaluation, b: Evaluation) -> Bool {
        a.samples == b.samples && a.loss == b.loss && a.accuracy == b.accuracy && a.topK?.k == b.topK?.k && a.topK?.accuracy == b.topK?.accuracy
            && a.nonFinite == b.nonFinite
    }

    /// Evaluates outputs (n, width) against labels: class indices when `sparse`, otherwise arrays
    /// shaped like the outputs (one-hot, or binary targets for width-1 / multi-label outputs).
    public static func evaluate(outputs: [Float], labels: [Float], width: Int, sparse: Bool, loss: Loss?, k: Int) -> Evaluation {
        let n = width == 0 ? 0 : outputs.count / width
        var correct = 0
        var topCorrect = 0
        let binary: Bool = if case .binaryCrossentropy? = loss { true } else { width == 1 }
        var binaryCorrect = 0
        for sample in 0..<n {
            let row = outputs[(sample * width)..<((sample + 1) * width)]
            // NaN compares false with everything: left alone it would rank first.
            guard row.allSatisfy(\.isFinite) else { continue }
            if binary, !sparse {
                // Keras' binary accuracy: every output thresholded at 0.5 (logits at 0 would differ;
                // laq reports the probability threshold, as Keras does for a sigmoid output).
                for j in 0..<width where (row[row.startIndex + j] >= 0.5) == (labels[sample * width + j] >= 0.5) { binaryCorrect += 1 }
                continue
            }
            if width == 1 {
                let target = labels[sample]
                if (row.first! >= 0.5 ? 1 : 0) == (target >= 0.5 ? 1 : 0) { correct += 1 }
                continue
            }
            guard let target = sparse ? Int(exactly: labels[sample]) : (0..<width).max(by: { labels[sample * width + $0] < labels[sample * width + $1] }),
                  (0..<width).contains(target) else { continue }
            let value = row[row.startIndex + target]
            let above = row.filter { $0 > value }.count
            if above == 0 { correct += 1 }
            if above < k { topCorrect += 1 }
        }
        let losses = loss.map { $0.perSample(outputs: outputs, labels: labels, width: width) }
        let accuracy: Double? = n == 0 ? nil : binary && !sparse ? Double(binaryCorrect) / Double(n * width) : Double(correct) / Double(n)
        return Evaluation(
            samples: n,
            loss: losses.map { $0.isEmpty ? 0 : $0.reduce(0.0) { $0 + Double($1) } / Double($0.count) },
            accuracy: accuracy,
            topK: !binary && width > k && k > 1 && n > 0 ? (k, Double(topCorrect) / Double(n)) : nil,
            nonFinite: outputs.filter { !$0.isFinite }.count)
    }
}

extension Evaluation {
    /// `laq eval --json`'s metrics: samples, the loss (named by `loss`), accuracy and top-k.
    public func json(loss function: Loss?) -> JSONValue {
        var object: [String: JSONValue] = [
            "samples": .int(Int64(samples)),
            "loss": loss.map { .double($0) } ?? .null, "loss_name": function.map { .string($0.name) } ?? .null,
            "accuracy": accuracy.map { .double($0) } ?? .null,
        ]
        if let topK { object["top_k"] = ["k": .int(Int64(topK.k)), "accuracy": .double(topK.accuracy)] }
        return .object(object)
    }
}

/// A row of a batch's outputs, indexed from 0.
private struct Row {
    let values: ArraySlice<Float>
    subscript(_ j: Int) -> Float { values[values.startIndex + j] }
}
