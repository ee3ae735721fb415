import Foundation
import LAQEngine

/// Two models run on the same data (spec/EXPORT.md §5.3): how their outputs agree, how far each
/// layer's activations drift, and which layer's changed weights hurt the output most.
public struct OutputComparison: Sendable {
    /// Agreement of one model output over all samples.
    public struct Agreement: Sendable, Equatable {
        public var output: String
        /// Rows compared: samples × (time steps, for sequence outputs).
        public var rows: Int
        /// Share of rows whose top-1 class is the same (threshold 0.5 for a single column); nil
        /// when no rows were compared (no samples, or outputs of different shapes).
        public var top1Agreement: Double?
        /// Mean over rows of KL(A ‖ B) in nats, of the output distributions: the outputs when
        /// every row is a probability distribution (non-negative, sums to 1 ± 1e-3), otherwise
        /// their softmax (logits); a single column in [0, 1] is a Bernoulli probability. nil for
        /// a single column outside [0, 1].
        public var klDivergence: Double?
        /// "probabilities", "softmax of logits", "bernoulli" or "none".
        public var distribution: String
        public var maxAbsDifference: Double
        /// Why the output was not compared (its shapes differ between A and B), if so.
        public var note: String?
        /// Output values that are NaN or infinite, in A and in B. Rows holding one count as
        /// disagreeing and are left out of the KL divergence and max |Δ|.
        public var nonFiniteA = 0
        public var nonFiniteB = 0
        /// The first layer producing a non-finite value, on the first sample with one, in A and B.
        public var firstNonFiniteLayerA: String?
        public var firstNonFiniteLayerB: String?
    }

    /// One layer (architectures must match).
    public struct LayerError: Sendable, Equatable {
        public var layer: String
        /// ‖act_B − act_A‖₂ / ‖act_A‖₂ of the layer's output, both models run whole.
        public var activationError: Double
        /// For layers whose weights differ: the first output's mean KL(A ‖ A with only this
        /// layer's weights from B), and the relative L2 error of that output. The layer with the
        /// largest isolated KL (relative error where no KL is defined) hurts most.
        public var isolatedKL: Double?
        public var isolatedError: Double?
    }

    public var samples: Int
    public var outputs: [Agreement]
    public var layers: [LayerError]
    /// Why per-layer errors were not computed (architectures differ), if so.
    public var layerNote: String?

    public var mostHurtLayer: String? {
        layers.filter { $0.isolatedError != nil }
            .max { ($0.isolatedKL ?? 0, $0.isolatedError ?? 0) < ($1.isolatedKL ?? 0, $1.isolatedError ?? 0) }?.layer
    }

    /// Runs both models on `inputs` in batches of `batchSize`. `changedLayers` are the layers
    /// whose weights differ (from the tensor comparison); each is also run in isolation.
    public static func compare(
        _ a: Model, _ b: Model, inputs: [Tensor], changedLayers: [String], batchSize: Int = 256,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> OutputComparison {
        let executorA = try Executor(model: a), executorB = try Executor(model: b)
        let sameGraph = a.layers.map(\.name) == b.layers.map(\.name) && a.layers.map(\.className) == b.layers.map(\.className)
        let isolated: [(layer: String, executor: Executor)] = try (sameGraph ? changedLayers : []).map { layer in
            var model = a
            for index in model.weights.indices where model.weights[index].layer == layer {
                if let replacement = b.weight(named: model.weights[index].name), replacement.shape == model.weights[index].shape {
                    model.weights[index].values = replacement.values
                }
            }
            return (layer, try Executor(model: model))
        }
        let samples = inputs.first?.shape.first ?? 0
        var agreement = a.outputNames.map { Accumulator(name: $0) }
        var isolatedAccumulators = isolated.map { Accumulator(name: $0.layer) }
        var activationSums: [String: (difference: Double, reference: Double)] = [:]
        var done = 0
        for start in stride(from: 0, to: samples, by: max(batchSize, 1)) {
            let range = start..<min(start + batchSize, samples)
            let batch = inputs.map { $0.rows(range) }
            let valuesA = try executorA.activations(batch)
            let outputsA = a.outputs.map { valuesA[$0.layer]! }
            if sameGraph {
                let valuesB = try executorB.activations(batch)
                for layer in a.layers {
                    guard let x = valuesA[layer.name], let y = valuesB[layer.name], x.count == y.count else { continue }
                    var sums = activationSums[layer.name] ?? (0, 0)
                    for index in 0..<x.count {
                        let difference = Double(y.data[index]) - Double(x.data[index])
                        sums.difference += difference * difference
                        sums.reference += Double(x.data[index]) * Double(x.data[index])
                    }
                    activationSums[layer.name] = sums
                }
                for (index, ref) in b.outputs.enumerated() where index < agreement.count {
                    agreement[index].add(outputsA[index], valuesB[ref.layer]!)
                }
            } else {
                let outputsB = try executorB.predict(batch)
                for index in agreement.indices where index < outputsB.count { agreement[index].add(outputsA[index], outputsB[index]) }
            }
            for (index, entry) in isolated.enumerated() {
                isolatedAccumulators[index].add(outputsA[0], try entry.executor.predict(batch)[0])
            }
            for index in agreement.indices {
                agreement[index].locate(firstSample: range.lowerBound, samples: range.count)
            }
            done = range.upperBound
            progress?(done, samples)
        }
        let layers: [OutputComparison.LayerError] = sameGraph ? a.layers.compactMap { layer in
            guard !layer.inbound.isEmpty, let sums = activationSums[layer.name] else { return nil }
            let isolatedResult = isolatedAccumulators.first { $0.name == layer.name }?.result
            return LayerError(layer: layer.name, activationError: relative(sums.difference, sums.reference),
                              isolatedKL: isolatedResult?.klDivergence, isolatedError: isolatedResult.map { relative($0.squaredDifference, $0.squaredReference) })
        } : []
        var outputs = agreement.map(\.result.agreement)
        for (index, accumulator) in agreement.enumerated() {
            if let sample = accumulator.firstNonFiniteSampleA {
                outputs[index].firstNonFiniteLayerA = try executorA.firstNonFiniteLayer(inputs.map { $0.rows(sample..<(sample + 1)) })
            }
            if let sample = accumulator.firstNonFiniteSampleB {
                outputs[index].firstNonFiniteLayerB = try executorB.firstNonFiniteLayer(inputs.map { $0.rows(sample..<(sample + 1)) })
            }
        }
        return OutputComparison(samples: samples, outputs: outputs, layers: layers,
                                layerNote: sameGraph ? nil : "the architectures differ: no per-layer comparison")
    }

    static func relative(_ difference: Double, _ reference: Double) -> Double {
        reference > 0 ? (difference / reference).squareRoot() : (difference == 0 ? 0 : .infinity)
    }

    /// Running sums for one output over batches.
    struct Accumulator {
        var name: String
        var rows = 0
        var agreeing = 0
        var kl = 0.0
        var klDefined = true
        var kind = "none"
        var maxAbs = 0.0
        var squaredDifference = 0.0
        var squaredReference = 0.0
        var mismatch: String?
        var nonFiniteA = 0
        var nonFiniteB = 0
        /// Rows without NaN or infinity in either output: those the KL divergence and max |Δ| are over.
        var finiteRows = 0
        /// Rows of the last batch holding a non-finite value (first in A, first in B), and the
        /// samples they belong to, once located.
        var batchRowA: (row: Int, rows: Int)?
        var batchRowB: (row: Int, rows: Int)?
        var firstNonFiniteSampleA: Int?
        var firstNonFiniteSampleB: Int?

        init(name: String) { self.name = name }

        /// Turns the rows of the batch just added into sample indices (a sample may have several
        /// rows: time steps).
        mutating func locate(firstSample: Int, samples: Int) {
            if firstNonFiniteSampleA == nil, let (row, rows) = batchRowA { firstNonFiniteSampleA = firstSample + row * samples / max(rows, 1) }
            if firstNonFiniteSampleB == nil, let (row, rows) = batchRowB { firstNonFiniteSampleB = firstSample + row * samples / max(rows, 1) }
            batchRowA = nil
            batchRowB = nil
        }

        mutating func add(_ x: Tensor, _ y: Tensor) {
            let width = max(x.lastDimension, 1)
            guard x.shape == y.shape else {
                mismatch = "shapes differ: A \(x.shape), B \(y.shape)"
                return
            }
            let count = x.count / width
            let p = x.data, q = y.data
            // The distribution kind is decided on the first batch and kept.
            if rows == 0 { kind = Self.kind(p, width: width) }
            for row in 0..<count {
                let base = row * width
                let badA = p[base..<(base + width)].reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                let badB = q[base..<(base + width)].reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                if badA + badB > 0 {
                    // No agreement and no distance can be computed with NaN or infinity.
                    nonFiniteA += badA
                    nonFiniteB += badB
                    if badA > 0, batchRowA == nil { batchRowA = (row, count) }
                    if badB > 0, batchRowB == nil { batchRowB = (row, count) }
                    continue
                }
                finiteRows += 1
                for column in 0..<width {
                    let difference = Double(q[base + column]) - Double(p[base + column])
                    maxAbs = max(maxAbs, abs(difference))
                    squaredDifference += difference * difference
                    squaredReference += Double(p[base + column]) * Double(p[base + column])
                }
                if width == 1 {
                    if (p[base] > 0.5) == (q[base] > 0.5) { agreeing += 1 }
                } else {
                    var bestP = 0, bestQ = 0
                    for column in 1..<width {
                        if p[base + column] > p[base + bestP] { bestP = column }
                        if q[base + column] > q[base + bestQ] { bestQ = column }
                    }
                    if bestP == bestQ { agreeing += 1 }
                }
                switch kind {
                case "probabilities": kl += Self.kl(p[base..<(base + width)].map(Double.init), q[base..<(base + width)].map(Double.init))
                case "softmax of logits": kl += Self.kl(Self.softmax(p[base..<(base + width)]), Self.softmax(q[base..<(base + width)]))
                case "bernoulli":
                    let a = min(max(Double(p[base]), 0), 1), b = min(max(Double(q[base]), 0), 1)
                    kl += Self.kl([a, 1 - a], [b, 1 - b])
                default: klDefined = false
                }
            }
            rows += count
        }

        var result: (agreement: Agreement, klDivergence: Double?, squaredDifference: Double, squaredReference: Double) {
            let divergence = klDefined && finiteRows > 0 ? kl / Double(finiteRows) : nil
            // NaN (JSON null, "–") when no row could be compared.
            var agreement = Agreement(output: name, rows: rows, top1Agreement: rows > 0 ? Double(agreeing) / Double(rows) : nil,
                                      klDivergence: divergence, distribution: kind, maxAbsDifference: finiteRows > 0 || rows == 0 ? maxAbs : .nan,
                                      note: mismatch)
            agreement.nonFiniteA = nonFiniteA
            agreement.nonFiniteB = nonFiniteB
            return (agreement,
                    divergence, squaredDifference, squaredReference)
        }

        static func kind(_ values: [Float], width: Int) -> String {
            if width == 1 { return values.allSatisfy { $0 >= 0 && $0 <= 1 } ? "bernoulli" : "none" }
            let rows = values.count / width
            let distributions = (0..<rows).allSatisfy { row in
                let slice = values[(row * width)..<((row + 1) * width)]
                return slice.allSatisfy { $0 >= 0 } && abs(slice.reduce(0, +) - 1) <= 1e-3
            }
            return distributions ? "probabilities" : "softmax of logits"
        }

        static func softmax(_ logits: ArraySlice<Float>) -> [Double] {
            let top = Double(logits.max() ?? 0)
            let exponentials = logits.map { Foundation.exp(Double($0) - top) }
            let total = exponentials.reduce(0, +)
            return exponentials.map { $0 / total }
        }

        /// KL(p ‖ q) in nats; probabilities below 1e-12 are clamped so a zero in q stays finite.
        static func kl(_ p: [Double], _ q: [Double]) -> Double {
            var sum = 0.0
            for (a, b) in zip(p, q) where a > 0 {
                sum += a * (Foundation.log(a) - Foundation.log(max(b, 1e-12)))
            }
            return max(sum, 0)
        }
    }
}
