import CLAQKernels
import Foundation
import LAQFormat

/// Keras' activations, applied in place (softmax over the last axis).
public enum Activation: Sendable, Equatable {
    case linear, relu, sigmoid, tanh, softmax, elu, selu, gelu, swish, softplus, softsign, exponential
    /// min(max(x, 0), 6).
    case relu6
    /// Keras 3's hard_silu (alias hard_swish): x·relu6(x + 3)/6.
    case hardSwish
    /// Keras 3's leaky_relu activation: x, or 0.2·x below 0.
    case leakyReLU
    /// x·tanh(softplus(x)).
    case mish
    /// GELU's tanh approximation, Keras' `gelu(x, approximate=True)` (keras_hub registers it as
    /// the function `gelu_approximate`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case geluTanh
    /// Keras 3: relu6(x + 3) / 6; tf.keras 2.x: clip(0.2·x + 0.5, 0, 1).
    case hardSigmoid(keras3: Bool)

    /// Keras' names of the activations laq executes.
    public static let names: Set<String> = [
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "swish", "silu", "softplus",
        "softsign", "hard_sigmoid", "exponential", "relu6", "hard_silu", "hard_swish", "leaky_relu", "mish",
        "gelu_approximate",
    ]

    /// The activation named in a config value: a string, or a serialized function object of
    /// Keras' own or keras_hub's (`gelu_approximate`); a function of another module is a user's,
    /// however named: nil.
    public static func name(of value: JSONValue) -> String? {
        switch value {
        case let .string(name): return name
        case let .object(members):
            if case let .string(name)? = members["config"] {
                // Keras 3 writes a registered function by its registered name
                // (`keras_hub>gelu_approximate`); another package's is a user's.
                if let separator = name.firstIndex(of: ">") {
                    return ["keras_hub", "keras_nlp"].contains(String(name[..<separator])) ? String(name[name.index(after: separator)...]) : nil
                }
                guard let module = members["module"]?.stringValue else { return name }
                return ["keras", "tf_keras"].contains(where: { module == $0 || module.hasPrefix($0 + ".") }) ? name : nil
            }
            // An object config is a layer used as the activation (`ELU(alpha=0.5)`): its
            // parameters are laq's to apply, which it does not; the name alone would mislead.
            return nil
        default: return nil
        }
    }

    /// The activation Keras calls `name` (one of ``names``, which ``LayerOptions/activation(_:default:)``
    /// checked); `keras3` picks the hard_sigmoid definition of the Keras version that saved the model.
    init(name: String, keras3: Bool) {
        switch name {
        case "relu": self = .relu
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "softmax": self = .softmax
        case "elu": self = .elu
        case "selu": self = .selu
        case "gelu": self = .gelu
        case "swish", "silu": self = .swish
        case "softplus": self = .softplus
        case "softsign": self = .softsign
        case "exponential": self = .exponential
        case "hard_sigmoid": self = .hardSigmoid(keras3: keras3)
        case "relu6": self = .relu6
        case "hard_silu", "hard_swish": self = .hardSwish
        case "leaky_relu": self = .leakyReLU
        case "mish": self = .mish
        case "gelu_approximate": self = .geluTanh
        default: self = .linear
        }
    }

    static func selu(_ x: Float) -> Float {
        let scale: Float = 1.050_700_987_355_480_5
        let alpha: Float = 1.673_263_242_354_377_3
        return x > 0 ? scale * x : scale * alpha * expm1f(x)
    }

    /// Keras' exact GELU, 0.5·x·(1 + erf(x/√2)), with TensorFlow's float erf (`laq_geluf`: the
    /// bits of the array kernel ``apply(_:width:)`` runs, on every instruction set).
    static func gelu(_ x: Float) -> Float { laq_geluf(x) }

    /// √(2/π), the scale inside GELU's tanh approximation.
    static let geluTanhScale: Float = 0.797_884_560_802_865_4

    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    static func geluTanh(_ x: Float) -> Float {
        0.5 * x * (1 + tanhf(geluTanhScale * (x + 0.044_715 * x * x * x)))
    }

    /// Keras 3: relu6(x + 3)/6.
    static func hardSigmoid3(_ x: Float) -> Float {
        let y: Float = x / 6 + 0.5
        return min(max(y, 0), 1)
    }

    /// tf.keras 2.x: clip(0.2·x + 0.5, 0, 1).
    static func hardSigmoid2(_ x: Float) -> Float {
        let y: Float = 0.2 * x + 0.5
        return min(max(y, 0), 1)
    }

    /// σ(x) = 1/(1 + e^−x) from e = exp(−|x|) (`laq_sigmoidf`: the bits of the array kernels
    /// ``apply(_:width:)`` runs for sigmoid and swish, on every instruction set).
    static func sigmoid(_ x: Float) -> Float { laq_sigmoidf(x) }

    /// Applies the activation to `values` in place; `width` is the last dimension (for softmax).
    public func apply(_ values: inout [Float], width: Int) {
        switch self {
        case .linear: return
        case .softmax:
            Elementwise.softmaxRows(&values, width: width)
        case .relu:
            // Inline, so that it vectorises; large tensors split between threads.
            Elementwise.relu(&values)
        case .sigmoid:
            Elementwise.sigmoid(&values, swish: false)
        case .swish:
            Elementwise.sigmoid(&values, swish: true)
        case .gelu:
            Elementwise.gelu(&values)
        default:
            Elementwise.update(&values, scalar)
        }
    }

    /// The element-wise function (not for softmax).
    var scalar: @Sendable (Float) -> Float {
        switch self {
        case .linear, .softmax: return { $0 }
        case .relu: return { max($0, 0) }
        case .sigmoid: return Activation.sigmoid
        case .tanh: return { tanhf($0) }
        case .elu: return { $0 > 0 ? $0 : expm1f($0) }
        case .selu: return Activation.selu
        case .gelu: return Activation.gelu
        case .swish: return { x in x * Activation.sigmoid(x) }
        case .softplus: return { x in x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)) }
        case .softsign: return { x in x / (1 + abs(x)) }
        case .exponential: return { expf($0) }
        case .hardSigmoid(keras3: true): return Activation.hardSigmoid3
        case .hardSigmoid(keras3: false): return Activation.hardSigmoid2
        case .relu6: return { min(max($0, 0), 6) }
        case .hardSwish: return { x in x * Activation.hardSigmoid3(x) }
        case .leakyReLU: return { x in x > 0 ? x : 0.2 * x }
        case .mish: return { x in x * tanhf(x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))) }
        case .geluTanh: return Activation.geluTanh
        }
    }
}

