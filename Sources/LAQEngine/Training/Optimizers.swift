import Foundation

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
            OptimizerKernels.adam(weights: &weights[index].values, m: &m[name]!, v: &v[name]!, gradient: g, scale: scale,
                                  beta1: beta1, beta2: beta2, alpha: alpha, epsilon: epsilon)
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
            // Without momentum the velocity is not used.
            var unused: [Float] = []
            if momentum == 0 {
                OptimizerKernels.sgd(weights: &weights[index].values, velocity: &unused, gradient: g, scale: scale, rate: rate,
                                     momentum: momentum, nesterov: nesterov)
            } else {
                OptimizerKernels.sgd(weights: &weights[index].values, velocity: &velocity[name]!, gradient: g, scale: scale, rate: rate,
                                     momentum: momentum, nesterov: nesterov)
            }
        }
    }
}
