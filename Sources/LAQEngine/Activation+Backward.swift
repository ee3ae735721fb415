import Foundation

extension Activation {
    /// Whether the derivative is a function of the output alone, so that a training forward
    /// need not keep the value before the activation: ReLU's y > 0 exactly where z > 0 (and
    /// both give a zero derivative at 0), linear's is 1. Layers then pass the output as `z`.
    public var derivativeFromOutput: Bool { self == .relu || self == .linear }

    /// ∂L/∂z from ∂L/∂y, for y = act(z) (softmax over rows of `width`): `grad` itself for
    /// linear, else a new buffer (from `workspace` when given).
    public func backward(_ grad: [Float], preActivation z: [Float], output y: [Float], width: Int) -> [Float] {
        backward(grad, preActivation: z, output: y, width: width, workspace: nil)
    }

    func backward(_ grad: [Float], preActivation z: [Float], output y: [Float], width: Int, workspace: Workspace?) -> [Float] {
        if self == .linear { return grad }
        // Every element is written below (softmax rows cover the array: its count is a multiple of `width`).
        var result = Matrix.uninitialized(grad.count, workspace: workspace)
        switch self {
        case .softmax:
            for row in stride(from: 0, to: grad.count, by: max(width, 1)) {
                var dot: Float = 0
                for i in row..<(row + width) { dot += grad[i] * y[i] }
                for i in row..<(row + width) { result[i] = y[i] * (grad[i] - dot) }
            }
            return result
        default:
            // ReLU inline; large tensors on laq's threads.
            if self == .relu {
                Elementwise.reluGradient(grad, preActivation: z, into: &result)
            } else {
                Elementwise.map(grad, z, y, into: &result) { grad, z, y in grad * derivative(z, y) }
            }
            return result
        }
    }

    /// dy/dz at z (with y = act(z)), element-wise activations only.
    func derivative(_ z: Float, _ y: Float) -> Float {
        switch self {
        case .linear, .softmax: return 1
        case .relu: return z > 0 ? 1 : 0
        case .sigmoid: return y * (1 - y)
        case .tanh: return 1 - y * y
        case .elu: return z > 0 ? 1 : y + 1
        case .selu:
            let scale: Float = 1.050_700_987_355_480_5
            return z > 0 ? scale : y + scale * 1.673_263_242_354_377_3
        case .gelu:
            let inverseRoot2: Float = 0.707_106_781_186_547_5
            let density: Float = expf(-0.5 * z * z) * 0.398_942_280_401_432_7
            return 0.5 * (1 + erff(z * inverseRoot2)) + z * density
        case .swish:
            let s = Activation.sigmoid(z)
            return s + z * s * (1 - s)
        case .softplus: return Activation.sigmoid(z)
        case .softsign:
            let d = 1 + abs(z)
            return 1 / (d * d)
        case .exponential: return y
        case .hardSigmoid(keras3: true): return z > -3 && z < 3 ? 1.0 / 6 : 0
        case .hardSigmoid(keras3: false): return z > -2.5 && z < 2.5 ? 0.2 : 0
        case .relu6: return z > 0 && z < 6 ? 1 : 0
        case .hardSwish: return z < -3 ? 0 : z > 3 ? 1 : (2 * z + 3) / 6
        case .leakyReLU: return z > 0 ? 1 : 0.2
        case .mish:
            let softplus = z > 0 ? z + log1pf(expf(-z)) : log1pf(expf(z))
            let t = tanhf(softplus)
            return t + z * Activation.sigmoid(z) * (1 - t * t)
        case .geluTanh:
            // d/dz 0.5·z·(1 + tanh u), u = c·(z + a·z³): 0.5·(1 + t) + 0.5·z·(1 − t²)·c·(1 + 3a·z²).
            let t = tanhf(Activation.geluTanhScale * (z + 0.044_715 * z * z * z))
            return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * Activation.geluTanhScale * (1 + 3 * 0.044_715 * z * z)
        }
    }
}

/// The output of a layer's product `z` through its activation, and what the backward pass needs
/// of `z`: nothing when the derivative follows from the output (ReLU, linear: activated in place,
/// no copy), else `z` itself, the output then being a new buffer from `workspace`.
func activate(_ z: consuming Tensor, _ activation: Activation, width: Int, workspace: Workspace) -> (output: Tensor, preActivation: [Float]?) {
    if activation.derivativeFromOutput {
        var y = consume z  // activated in place: no copy
        activation.apply(&y.data, width: width)
        return (y, nil)
    }
    var y = Tensor(shape: z.shape, data: Matrix.copy(z.data, workspace: workspace))
    activation.apply(&y.data, width: width)
    return (y, z.data)
}

/// ∂L/∂z of a layer's product from ∂L/∂y through its activation, and whether it is a buffer of
/// its own (to recycle after use) rather than ∂L/∂y itself (linear).
func activationGradient(_ gradOutput: Tensor, _ record: ForwardRecord, _ activation: Activation, width: Int,
                                workspace: Workspace) -> (gradient: [Float], own: Bool) {
    let gz = activation.backward(gradOutput.data, preActivation: record.preActivation ?? record.output.data, output: record.output.data,
                                 width: width, workspace: workspace)
    return (gz, activation != .linear)
}
