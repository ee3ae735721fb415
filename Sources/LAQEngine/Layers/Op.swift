import LAQFormat

/// One layer, ready to run: weights resolved, options parsed.
public protocol Op: Sendable {
    /// The output for `inputs` (one tensor per input of the layer's call), in inference mode.
    /// A new output buffer comes from `workspace` when given (a training step: ``Workspace``),
    /// else it is allocated.
    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor

    /// The same, for a call whose inputs carry Keras' implicit masks (``Masking``; nil: none).
    /// Default: the masks do not change the output (Keras' layers whose call takes no mask).
    func forward(_ inputs: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor
}

extension Op {
    public func forward(_ inputs: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor {
        try forward(inputs, workspace: workspace)
    }

    /// The output for `inputs`, in inference mode, in newly allocated memory.
    func forward(_ inputs: [Tensor]) throws(EngineError) -> Tensor { try forward(inputs, workspace: nil) }
}

/// An op that may write its output over the values of one of its inputs, where nothing reads
/// that input after it (``ExecutionPlan/Step/overwrites``): a memory-bound layer then reads and
/// writes the same lines rather than reading one tensor and writing another it first has to
/// fetch (a fused residual connection, over its other tensor).
protocol OverwritingOp: Op {
    /// The input whose values the output may take; nil when none may.
    var overwritableInput: Int? { get }
    /// ``forward(_:workspace:)``'s output, perhaps written over `inputs[overwritableInput]`'s
    /// values, which it may take (leaving that tensor of `inputs` empty: the caller reads it no
    /// more): in place when the caller let go of every other reference to them, else in a copy
    /// (an array's copy on write).
    func forward(overwriting inputs: inout [Tensor]) throws(EngineError) -> Tensor
}

/// What an op needs at build time.
public struct OpContext {
    let layer: Layer
    let weights: [String: Weight]
    /// Keras ≥ 3 saved the model (hard_sigmoid differs).
    let keras3: Bool
    /// The Keras version that saved the model, as (major, minor), when the file says.
    var kerasVersion: (major: Int, minor: Int)? = nil
    /// The precision of the activations packed plane kernels multiply.
    var activations: ActivationPrecision = .float32
    /// The ops run training steps (``Backpropagation``): no kernel only predictions use is built
    /// (a convolution's Winograd transform).
    var training = false

    /// A weight as float32 values (a packed weight is dequantized: ops without packed kernels).
    func weight(_ short: String) throws(EngineError) -> Weight {
        guard let weight = weights["\(layer.name)/\(short)"] else { throw .missingWeight(layer: layer.name, weight: short) }
        return Self.float(weight)
    }

    func optionalWeight(_ short: String) -> Weight? { weights["\(layer.name)/\(short)"].map(Self.float) }

    /// A kernel for products: packed codes stay packed (``PackedMatrix``), anything else is float32,
    /// in panels for laq's product kernel when `panels` (``FloatPanels``, where the CPU has AVX2
    /// or AVX-512) and the weight is `rows`×(its last dimension). The weight's `values` are
    /// empty when it stays packed.
    func matrix(_ short: String, panels: Bool = false) throws(EngineError) -> (weight: Weight, matrix: KernelMatrix) {
        guard let weight = weights["\(layer.name)/\(short)"] else { throw .missingWeight(layer: layer.name, weight: short) }
        if let codebook = weight.packed, let matrix = PackedMatrix(codebook, activations: activations) { return (weight, .packed(matrix)) }
        let float = Self.float(weight)
        if panels, let columns = float.shape.last, columns > 0, float.values.count % columns == 0,
           let matrix = FloatPanels(float.values, rows: float.values.count / columns, columns: columns) {
            return (float, .panels(matrix))
        }
        return (float, .dense(float.values))
    }

    private static func float(_ weight: Weight) -> Weight {
        guard weight.packed != nil else { return weight }
        var float = weight
        float.values = weight.dequantizedValues
        float.packed = nil
        return float
    }

    /// The activation Keras calls `name`, as the Keras version that saved the model defines it.
    func activation(_ name: String) -> Activation { Activation(name: name, keras3: keras3) }
}
