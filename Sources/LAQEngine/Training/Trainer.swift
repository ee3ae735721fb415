import CLAQKernels
import Foundation

extension Loss {
    /// ∂(mean loss over the batch)/∂outputs for outputs (n, width). For probabilities the clip
    /// to [ε, 1 − ε] is not applied to the gradient (only a floor against division by zero), so
    /// that through a softmax or sigmoid output it becomes exactly p·Σy − y (σ − y), the gradient
    /// Keras takes from the logits: saturated, misclassified samples still train.
    public func gradient(outputs: [Float], labels rawLabels: [Float], width: Int) -> [Float] {
        gradient(outputs: outputs, labels: rawLabels, width: width, workspace: nil)
    }

    /// The same, with the result and scratch rows from `workspace` when given.
    func gradient(outputs: [Float], labels rawLabels: [Float], width: Int, workspace: Workspace?) -> [Float] {
        let n = width == 0 ? 0 : outputs.count / width
        let labels = hingeLabels(rawLabels)
        var grad = Matrix.zeros(outputs.count, workspace: workspace)
        let scale = 1 / Float(max(n, 1))
        // Scratch rows, reused by every sample (no array per sample).
        var target = Matrix.zeros(width, workspace: workspace), p = Matrix.zeros(width, workspace: workspace)
        var inner = Matrix.zeros(width, workspace: workspace)
        defer {
            workspace?.recycle(&target)
            workspace?.recycle(&p)
            workspace?.recycle(&inner)
        }
        for sample in 0..<n {
            let row = sample * width
            switch self {
            case let .sparseCategoricalCrossentropy(fromLogits), let .categoricalCrossentropy(fromLogits):
                if case .sparseCategoricalCrossentropy = self {
                    for j in 0..<width { target[j] = 0 }
                    target[Int(labels[sample])] = 1
                } else {
                    for j in 0..<width { target[j] = labels[row + j] }
                }
                if fromLogits {
                    for j in 0..<width { p[j] = outputs[row + j] }
                    Activation.softmax.apply(&p, width: width)
                    let mass = target.reduce(0, +)
                    for j in 0..<width { grad[row + j] = (p[j] * mass - target[j]) * scale }
                } else {
                    // L = −Σ y_j log(p_j / S), S = Σ p.
                    let rawSum = outputs[row..<(row + width)].reduce(0, +)
                    let sum = rawSum == 0 ? 1 : rawSum
                    for j in 0..<width { inner[j] = 0 }  // ∂L/∂q_j, q = p/S
                    for j in 0..<width where target[j] != 0 {
                        let q = outputs[row + j] / sum
                        inner[j] = -target[j] / max(q, Self.floor)
                    }
                    // ∂q_j/∂p_k = δ_jk/S − p_j/S².
                    var dot: Float = 0
                    for j in 0..<width { dot += inner[j] * outputs[row + j] }
                    for k in 0..<width { grad[row + k] = (inner[k] / sum - dot / (sum * sum)) * scale }
                }
            case let .binaryCrossentropy(fromLogits):
                for j in 0..<width {
                    let y = labels[row + j]
                    let o = outputs[row + j]
                    if fromLogits {
                        grad[row + j] = (Activation.sigmoid(o) - y) * scale / Float(width)
                    } else {
                        let p = min(max(o, Self.floor), Float(1).nextDown)
                        grad[row + j] = (-y / p + (1 - y) / (1 - p)) * scale / Float(width)
                    }
                }
            case .meanSquaredError:
                for j in 0..<width { grad[row + j] = 2 * (outputs[row + j] - labels[row + j]) * scale / Float(width) }
            case .squaredHinge:
                for j in 0..<width {
                    let y = labels[row + j]
                    grad[row + j] = -2 * y * max(1 - y * outputs[row + j], 0) * scale / Float(width)
                }
            }
        }
        return grad
    }
}

/// Gradients of a model's loss on one batch: forward in training mode, then backward through
/// the graph, layer by layer in reverse order (gradients of tensors used twice are summed).
extension Loss {
    /// The smallest probability a gradient divides by.
    static let floor: Float = 1e-30
}

public struct Backpropagation {
    public struct Result: Sendable {
        /// Mean loss over the batch.
        public var loss: Double
        /// By weight name (`<layer>/<short name>`), for every trainable and non-trainable weight that got one.
        public var gradients: [String: [Float]]
        /// New values of non-trainable weights (moving statistics), by weight name.
        public var stateUpdates: [String: [Float]]
        public var outputs: Tensor
    }

    /// One batch: `inputs` per model input, `labels` as the loss expects them.
    ///
    /// `workspace`: the memory of the run's steps (``Workspace``): the result's outputs and
    /// gradients are then valid until the next step with the same workspace, whose buffers
    /// they become (a caller that keeps them costs a copy, never a changed value). Without
    /// one, every buffer is allocated anew.
    public static func run(
        model: Model, inputs: [Tensor], labels: [Float], loss: Loss, random: inout TrainingRandom, workspace: Workspace? = nil
    ) throws(EngineError) -> Result {
        let workspace = workspace ?? Workspace()
        workspace.beginStep(keeping: inputs)
        if let packed = model.weights.first(where: { $0.packed != nil }) {
            throw .invalidModel("weight '\(packed.name)' is packed: training needs float32 weights (read the file with Model(file:) without packed)")
        }
        let executor = try Executor(model: model)
        guard model.outputs.count == 1 else { throw .unsupported(layer: "(model)", reason: "training supports single-output models") }
        var values: [TensorRef: Tensor] = [:]
        var masks: [TensorRef: Tensor] = [:]
        var records: [LayerCall: ForwardRecord] = [:]
        let modelInputs = Set(model.inputs.map { TensorRef(layer: $0.layer) })
        for (ref, tensor) in zip(model.inputs, inputs) { values[TensorRef(layer: ref.layer)] = tensor }
        for call in executor.calls where !model.layers[call.layer].inbound.isEmpty {
            let layer = model.layers[call.layer]
            guard let op = executor.ops[layer.name] as? any TrainableOp else {
                throw .unsupported(layer: layer.name, reason: "training a \(layer.className) is not implemented yet")
            }
            var arguments: [Tensor] = []
            for ref in model.inputs(of: call) {
                guard let value = values[ref] else { throw .badInput(name: layer.name, reason: "its input '\(ref)' was not computed") }
                arguments.append(value)
            }
            let inputMasks = try executor.inputMasks(call, masks, values: values)
            var record = if let inputMasks {
                try op.forwardTraining(arguments, masks: inputMasks, random: &random, workspace: workspace)
            } else {
                try op.forwardTraining(arguments, random: &random, workspace: workspace)
            }
            record.inputsNeedGradients = !model.inputs(of: call).allSatisfy(modelInputs.contains)
            values[model.output(of: call)] = record.output
            try executor.recordMask(call, inputs: arguments, masks: inputMasks, into: &masks)
            records[call] = record
        }
        let outputRef = TensorRef(layer: model.outputs[0].layer, node: model.outputs[0].node)
        guard let output = values[outputRef] else { throw .badInput(name: "(model)", reason: "no output") }
        // The loss is the mean over every row of the last axis (samples, and time steps of
        // sequence outputs), as Keras reduces it.
        let width = output.lastDimension
        let rows = output.count / max(width, 1)
        let expectedLabels = loss.sparseLabels ? rows : output.count
        guard labels.count == expectedLabels else {
            throw .badInput(name: "labels", reason: "\(labels.count) values, the loss needs \(expectedLabels) for outputs of shape \(output.shape)")
        }
        if loss.sparseLabels, let bad = labels.firstIndex(where: { $0 < 0 || $0 >= Float(width) || $0 != $0.rounded() }) {
            throw .badInput(name: "labels", reason: "label \(labels[bad]) at sample \(bad) is not a class index in 0…\(width - 1)")
        }
        let lossValue = loss.meanLoss(outputs: output.data, labels: labels, width: width)
        var gradients: [TensorRef: Tensor] = [
            outputRef: Tensor(shape: output.shape, data: loss.gradient(outputs: output.data, labels: labels, width: width, workspace: workspace)),
        ]
        var weightGradients: [String: [Float]] = [:]
        var stateUpdates: [String: [Float]] = [:]
        // Backward in reverse call order. A shared layer's calls each add their weight gradients
        // (one set of weights, used several times); its state updates are those of its last call.
        for call in executor.calls.reversed() where !model.layers[call.layer].inbound.isEmpty {
            let layer = model.layers[call.layer]
            let record = records[call]!
            if call.node == layer.inbound.count - 1 {
                for (short, values) in record.stateUpdates { stateUpdates["\(layer.name)/\(short)"] = values }
            }
            guard let gradient = gradients[model.output(of: call)] else { continue }
            let op = executor.ops[layer.name] as! any TrainableOp
            let result = try op.backward(gradient, record, workspace: workspace)
            // Sums in place (a shared layer's weights, a tensor read by several layers).
            for (short, grad) in result.weights {
                let name = "\(layer.name)/\(short)"
                if weightGradients[name] != nil { add(grad, to: &weightGradients[name]!) } else { weightGradients[name] = grad }
            }
            for (ref, grad) in zip(model.inputs(of: call), result.inputs) {
                guard let grad else { continue }
                if gradients[ref] != nil { add(grad.data, to: &gradients[ref]!.data) } else { gradients[ref] = grad }
            }
        }
        // What the step produced goes back to the workspace at the next step's start: records
        // (outputs, pre-activations, im2col matrices, masks, max-pooling indices), tensor
        // gradients and weight gradients. Buffers lent twice (a reshape shares its input's) are
        // kept once.
        for record in records.values {
            workspace.lend(record.output.data)
            if let z = record.preActivation { workspace.lend(z) }
            workspace.lend(record.extra)
            workspace.lend(record.indices)
        }
        for gradient in gradients.values { workspace.lend(gradient.data) }
        for gradient in weightGradients.values { workspace.lend(gradient) }
        return Result(loss: lossValue, gradients: weightGradients, stateUpdates: stateUpdates, outputs: output)
    }

    /// total[i] += addend[i].
    private static func add(_ addend: [Float], to total: inout [Float]) {
        total.withUnsafeMutableBufferPointer { total in
            addend.withUnsafeBufferPointer { addend in
                for i in total.indices { total[i] += addend[i] }
            }
        }
    }
}

/// Adam exactly as Keras 3 computes it: m += (g − m)(1 − β1); v += (g² − v)(1 − β2);
/// w −= α_t·m/(√v + ε) with α_t = η·√(1 − β2^t)/(1 − β1^t), t counting from 1.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-7
    /// Steps taken (Keras' `iterations`).
    public private(set) var iterations: Int = 0
    /// Moments by weight name.
    public var m: [String: [Float]] = [:]
    public var v: [String: [Float]] = [:]
    /// Optional global gradient-norm clip (Keras `global_clipnorm`).
    public var globalClipNorm: Float?

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    /// Applies one step to `weights` (by name) from `gradients`; weights without a gradient are kept.
    public mutating func step(_ weights: inout [Weight], gradients: [String: [Float]]) {
        iterations += 1
        let t = Float(iterations)
        let alpha = learningRate * (1 - powf(beta2, t)).squareRoot() / (1 - powf(beta1, t))
        let scale = clipScale(gradients, globalClipNorm)
        for index in weights.indices where weights[index].trainable {
            let name = weights[index].name
            guard let g = gradients[name], !g.isEmpty else { continue }
            if m[name] == nil { m[name] = [Float](repeating: 0, count: g.count) }
            if v[name] == nil { v[name] = [Float](repeating: 0, count: g.count) }
            // Updated in place: no copies of the moments per step; large tensors split between threads.
            let (beta1, beta2, epsilon) = (self.beta1, self.beta2, self.epsilon)
            m[name]!.withUnsafeMutableBufferPointer { mm in
                v[name]!.withUnsafeMutableBufferPointer { vv in
                    weights[index].values.withUnsafeMutableBufferPointer { w in
                        g.withUnsafeBufferPointer { g in
                            let count = g.count
                            let (mm, vv, w, g) = (SharedPointer(mm.baseAddress!), SharedPointer(vv.baseAddress!), SharedPointer(w.baseAddress!), SharedPointer(g.baseAddress!))
                            Parallel.forEach(count, work: count) { range in
                                let start = range.lowerBound
                                laq_adam_update(w.base + start, mm.base + start, vv.base + start, g.base + start, range.count,
                                                scale, beta1, beta2, alpha, epsilon, CPU.isa)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The factor Keras' `global_clipnorm` scales every gradient by: clip / ‖g‖ over all gradients
/// together when that norm exceeds `clip`, else 1.
func clipScale(_ gradients: [String: [Float]], _ clip: Float?) -> Float {
    guard let clip else { return 1 }
    var sum: Double = 0
    for values in gradients.values { for value in values { sum += Double(value) * Double(value) } }
    let norm = Float(sum.squareRoot())
    return norm > clip ? clip / norm : 1
}

/// SGD as Keras 3 computes it. Without momentum: w −= η·g. With momentum μ: m ← μ·m − η·g,
/// then w += m, or with Nesterov w += μ·m − η·g (m starting at 0).
public struct SGD: Sendable {
    public var learningRate: Float
    public var momentum: Float
    public var nesterov: Bool
    /// Optional global gradient-norm clip (Keras `global_clipnorm`).
    public var globalClipNorm: Float?
    public private(set) var iterations: Int = 0
    /// Momentum buffers by weight name.
    public var velocity: [String: [Float]] = [:]

    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
    }

    /// Applies one step to `weights` (by name) from `gradients`; weights without a gradient are kept.
    public mutating func step(_ weights: inout [Weight], gradients: [String: [Float]]) {
        iterations += 1
        let scale = clipScale(gradients, globalClipNorm)
        let (rate, momentum, nesterov) = (learningRate, self.momentum, self.nesterov)
        for index in weights.indices where weights[index].trainable {
            let name = weights[index].name
            guard let g = gradients[name], !g.isEmpty else { continue }
            if velocity[name] == nil, momentum != 0 { velocity[name] = [Float](repeating: 0, count: g.count) }
            // Large tensors split between threads; without momentum the velocity is not used.
            var unused: [Float] = [0]
            func update(_ velocity: UnsafeMutablePointer<Float>) {
                weights[index].values.withUnsafeMutableBufferPointer { w in
                    g.withUnsafeBufferPointer { g in
                        let count = g.count
                        let (m, w, g) = (SharedPointer(velocity), SharedPointer(w.baseAddress!), SharedPointer(g.baseAddress!))
                        Parallel.forEach(count, work: count) { range in
                            let (m, w, g) = (m.base, w.base, g.base)
                            for i in range {
                                let grad = g[i] * scale
                                if momentum == 0 {
                                    w[i] -= rate * grad
                                } else {
                                    m[i] = momentum * m[i] - rate * grad
                                    w[i] += nesterov ? momentum * m[i] - rate * grad : m[i]
                                }
                            }
                        }
                    }
                }
            }
            if momentum == 0 {
                unused.withUnsafeMutableBufferPointer { update($0.baseAddress!) }
            } else {
                velocity[name]!.withUnsafeMutableBufferPointer { update($0.baseAddress!) }
            }
        }
    }
}
