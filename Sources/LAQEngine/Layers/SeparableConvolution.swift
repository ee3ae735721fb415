import LAQFormat

/// Keras' `SeparableConv2D`: a depthwise convolution (each input channel with its own
/// `depth_multiplier` kernels, no bias), then a pointwise 1×1 convolution with bias and the
/// activation: y = act(depthwise(x, D)·P + b), D (kh, kw, channels, multiplier),
/// P (1, 1, channels·multiplier, filters).
public struct SeparableConvolutionLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let window: SlidingWindow
    let filters: Int
    let multiplier: Int
    let activation: String
    let useBias: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        window = try SlidingWindow(convolution: options, spatial: 2)
        filters = try options.int("filters", min: 1)
        multiplier = try options.int("depth_multiplier", default: 1, min: 1)
        activation = try options.activation()
        useBias = try options.bool("use_bias", default: true)
    }

    public var weights: [WeightSpec] {
        [WeightSpec("depthwise_kernel", quantizable: true, axes: ["h", "w", "in", "multiplier"]),
         WeightSpec("pointwise_kernel", quantizable: true, axes: ["h", "w", "in", "out"])] + (useBias ? [WeightSpec("bias")] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        try window.outputShape(try single(inputs, layer: layer), channels: filters, layer: layer)
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes = ["bias": [filters]]
        if let last = inputs.first?.last ?? nil {
            shapes["depthwise_kernel"] = window.kernel + [last, multiplier]
            shapes["pointwise_kernel"] = [1, 1, last * multiplier, filters]
        }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        SeparableOp(depthwise: try DepthwiseOp(context, window: window, activation: .linear, kernel: "depthwise_kernel", bias: nil),
                    pointwise: try DenseOp(context, activation: context.activation(activation), kernel: "pointwise_kernel"))
    }
}

/// A separable convolution's computation: the depthwise op, then the pointwise product.
struct SeparableOp: Op, TrainableOp {
    let depthwise: DepthwiseOp
    let pointwise: DenseOp

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try pointwise.forward([try depthwise.linear(tensors[0], workspace: workspace)], workspace: workspace)
    }

    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let first = try depthwise.forwardTraining(inputs, random: &random, workspace: workspace)
        let second = try pointwise.forwardTraining([first.output], random: &random, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: second.output, parts: [first, second])
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let second = try pointwise.backward(gradOutput, record.parts[1], workspace: workspace)
        guard let intermediate = second.inputs[0] else { throw .unsupported(layer: pointwise.name, reason: "no gradient for the depthwise output") }
        let first = try depthwise.backward(intermediate, record.parts[0], workspace: workspace)
        var weights = ["depthwise_kernel": first.weights["kernel"]!, "pointwise_kernel": second.weights["kernel"]!]
        weights["bias"] = second.weights["bias"]
        return LayerGradients(inputs: record.inputsNeedGradients ? first.inputs : [nil], weights: weights)
    }
}
