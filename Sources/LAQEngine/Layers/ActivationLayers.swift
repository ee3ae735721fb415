import Foundation
import LAQFormat

/// Keras' `Activation`: one of Keras' activations (``Activation/names``).
public struct ActivationLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let activation: String

    public init(_ options: LayerOptions) throws(ModelError) { activation = try options.activation() }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ActivationOp(kind: .function(context.activation(activation))) }
}

/// Keras' `ReLU`: min(x, max_value) for x ≥ threshold, negative_slope·(x − threshold) below.
public struct ReLULayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let maxValue: Double?
    let slope: Double
    let threshold: Double

    public init(_ options: LayerOptions) throws(ModelError) {
        maxValue = try options.optionalDouble("max_value")
        slope = try options.double("negative_slope", default: 0)
        threshold = try options.double("threshold", default: 0)
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        ActivationOp.relu(maxValue: maxValue.map(Float.init), slope: Float(slope), threshold: Float(threshold))
    }
}

/// Keras' `LeakyReLU`: x, or negative_slope·x below 0 (tf.keras calls the slope `alpha`;
/// both default to 0.3).
public struct LeakyReLULayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let slope: Double

    public init(_ options: LayerOptions) throws(ModelError) {
        slope = options.has("negative_slope") ? try options.double("negative_slope", default: 0.3) : try options.double("alpha", default: 0.3)
        options.ignore("negative_slope", "alpha")
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ActivationOp.relu(maxValue: nil, slope: Float(slope), threshold: 0) }
}

/// Keras' `Softmax` over the last axis.
public struct SoftmaxLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    public init(_ options: LayerOptions) throws(ModelError) {
        let axis = try options.int("axis", default: -1, min: -64, max: 64)
        guard axis == -1 else { throw options.unsupported("softmax over axis \(axis)") }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ActivationOp(kind: .function(.softmax)) }

    /// Keras' Softmax sets masked positions to −1e9 before normalizing: not computed here.
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool {
        guard masked.first != true else { throw .unsupportedOption(layer: layer, className: "Softmax", option: "an input with an implicit mask (mask_zero, Masking)") }
        return false
    }
}

/// The activation layers' computation.
struct ActivationOp: Op {
    enum Kind: Sendable {
        case function(Activation)
        /// y = min(x, max) for x ≥ threshold, slope·(x − threshold) below it.
        case relu(maxValue: Float?, slope: Float, threshold: Float)
    }

    let kind: Kind

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        switch kind {
        case let .function(activation) where activation == .relu:
            // max(x, 0) as Activation.apply computes it, in one pass from x into a new buffer.
            var y = Matrix.uninitialized(x.count, workspace: workspace)
            guard !y.isEmpty else { return Tensor(shape: x.shape, data: y) }
            Elementwise.relu(x.data, into: &y)
            return Tensor(shape: x.shape, data: y)
        case let .function(activation):
            var y = x
            y.data = Matrix.copy(x.data, workspace: workspace)
            activation.apply(&y.data, width: y.lastDimension)
            return y
        case let .relu(maxValue, slope, threshold):
            // One pass from x into a new buffer, large tensors split between threads; a NaN
            // stays NaN (no comparison holds).
            let ceiling = maxValue ?? .infinity
            var y = Matrix.uninitialized(x.count, workspace: workspace)
            guard !y.isEmpty else { return Tensor(shape: x.shape, data: y) }
            Elementwise.relu(x.data, into: &y, threshold: threshold, slope: slope, ceiling: ceiling)
            return Tensor(shape: x.shape, data: y)
        }
    }

    static func relu(maxValue: Float?, slope: Float, threshold: Float) -> ActivationOp {
        ActivationOp(kind: .relu(maxValue: maxValue, slope: slope, threshold: threshold))
    }
}

extension ActivationOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0].data
        var dz: [Float]
        switch kind {
        case let .function(activation):
            dz = activation.backward(gradOutput.data, preActivation: x, output: record.output.data, width: gradOutput.lastDimension,
                                     workspace: workspace)
        case let .relu(maxValue, slope, threshold):
            dz = workspace.floats(x.count)
            Elementwise.reluGradient(gradOutput.data, input: x, into: &dz, threshold: threshold, slope: slope, ceiling: maxValue)
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dz)], weights: [:])
    }
}
