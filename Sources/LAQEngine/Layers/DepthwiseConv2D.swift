import Foundation
import LAQFormat

/// Keras' `DepthwiseConv2D`: each input channel c convolved with its own `depth_multiplier`
/// kernels; output channel c·m + j. The kernel is (kh, kw, channels, multiplier).
public struct DepthwiseConvolutionLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let window: SlidingWindow
    let multiplier: Int
    let activation: String
    let useBias: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        window = try SlidingWindow(convolution: options, spatial: 2)
        multiplier = try options.int("depth_multiplier", default: 1, min: 1)
        // tf.keras writes its convolutions' `groups` here too; only 1 means anything.
        let groups = try options.int("groups", default: 1, min: 1)
        if groups != 1 { throw options.unsupported("groups=\(groups)") }
        activation = try options.activation()
        useBias = try options.bool("use_bias", default: true)
    }

    public var weights: [WeightSpec] {
        [WeightSpec("kernel", quantizable: true, axes: ["h", "w", "in", "multiplier"])] + (useBias ? [WeightSpec("bias")] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        return try window.outputShape(input, channels: input.last.flatMap { $0.map { $0 * multiplier } }, layer: layer)
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard let last = inputs.first?.last ?? nil else { return [:] }
        return ["kernel": window.kernel + [last, multiplier], "bias": [last * multiplier]]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        try DepthwiseOp(context, window: window, activation: context.activation(activation))
    }
}

/// A depthwise convolution's computation.
struct DepthwiseOp: Op {
    let name: String
    let kernel: [Float]  // [kh, kw, c, m]
    let bias: [Float]?
    let kernelSize: [Int]
    let strides: [Int]
    let dilation: [Int]
    let same: Bool
    let multiplier: Int
    let activation: Activation
    /// Zeros around the input that a ZeroPadding2D before this layer added (inference, ``Fusion``).
    var padding = FoldedPadding()
    /// An inference BatchNormalization (and the ReLU after it) that this layer applies to its
    /// output (inference, ``Fusion``; the layer's own activation is then linear).
    var normalization: FusedNormalization?

    /// `kernel`, `bias`: the weights' short names (a separable convolution's depthwise kernel, no bias).
    /// `multiplier`: the kernels per input channel, when the kernel's shape does not say (a
    /// Conv2D with one group per input channel: (kh, kw, 1, filters)).
    init(_ context: OpContext, window: SlidingWindow, activation: Activation, kernel kernelName: String = "kernel",
         bias biasName: String? = "bias", multiplier: Int? = nil) throws(EngineError) {
        name = context.layer.name
        let kernel = try context.weight(kernelName)
        self.kernel = kernel.values
        self.multiplier = multiplier ?? kernel.shape.last ?? 1
        bias = biasName.flatMap { context.optionalWeight($0)?.values }
        kernelSize = window.kernel
        strides = window.strides
        dilation = window.dilation
        same = window.same
        self.activation = activation
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0], workspace: workspace)
        activation.apply(&z.data, width: z.lastDimension)
        return z
    }

    /// The windows along height and width for an input geometry.
    func windows(_ g: Geometry) -> (Window, Window) {
        (Window(input: g.height, kernel: kernelSize[0], stride: strides[0], dilation: dilation[0], same: same, margins: padding.rows),
         Window(input: g.width, kernel: kernelSize[1], stride: strides[1], dilation: dilation[1], same: same, margins: padding.columns))
    }

    /// The depthwise convolution before the activation (then the fused normalization, when there
    /// is one); the output from `workspace` when given.
    func linear(_ x: Tensor, workspace: Workspace? = nil) throws(EngineError) -> Tensor {
        let g = try Geometry(x, spatial: 2, layer: name)
        guard kernelSize[0] * kernelSize[1] * g.channels * multiplier == kernel.count else {
            throw .shape(layer: name, reason: "kernel does not match \(g.channels) input channels")
        }
        let (rows, cols) = windows(g)
        let outChannels = g.channels * multiplier
        if let bias, bias.count != outChannels { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(outChannels) channels") }
        let positions = g.batch * rows.output * cols.output
        ProductCount.add(positions * kernelSize[0] * kernelSize[1] * outChannels)
        var output = Matrix.uninitialized(positions * outChannels, workspace: workspace)
        guard !output.isEmpty else { return Tensor(shape: [g.batch, rows.output, cols.output, outChannels], data: output) }
        // Output rows are independent: split between threads (laq_depthwise_conv2d).
        if let normalization, normalization.scale.count != outChannels {
            throw .shape(layer: name, reason: "the fused normalization has \(normalization.scale.count) channels, expected \(outChannels)")
        }
        WindowKernels.depthwise(x.data, batch: g.batch, height: g.height, width: g.width, channels: g.channels, kernel: kernel, bias: bias,
                                normalization: normalization, kernelSize: (kernelSize[0], kernelSize[1]), multiplier: multiplier, strides: (strides[0], strides[1]),
                                dilation: (dilation[0], dilation[1]), rows: rows, cols: cols, into: &output)
        return Tensor(shape: [g.batch, rows.output, cols.output, outChannels], data: output)
    }
}

extension DepthwiseOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let z = try linear(inputs[0], workspace: workspace)
        let width = z.lastDimension
        let (y, preActivation) = activate(consume z, activation, width: width, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: preActivation)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let g = try Geometry(x, spatial: 2, layer: name)
        let (rows, cols) = windows(g)
        let outChannels = g.channels * multiplier
        var (gz, own) = activationGradient(gradOutput, record, activation, width: outChannels, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        var dKernel = workspace.zeros(kernel.count)
        var dx = workspace.zeros(x.count)
        var dBias = workspace.zeros(outChannels)
        for position in 0..<(g.batch * rows.output * cols.output) {
            for k in 0..<outChannels { dBias[k] += gz[position * outChannels + k] }
        }
        let (channels, multiplier) = (g.channels, self.multiplier)
        g.forEachWindowTap(rows, cols) { position, tap, input in
            let outBase = position * outChannels, kBase = tap * outChannels
            for c in 0..<channels {
                for j in 0..<multiplier {
                    let grad = gz[outBase + c * multiplier + j]
                    dKernel[kBase + c * multiplier + j] += grad * x.data[input + c]
                    dx[input + c] += grad * kernel[kBase + c * multiplier + j]
                }
            }
        }
        var weights = ["kernel": dKernel]
        if bias != nil { weights["bias"] = dBias } else { workspace.recycle(&dBias) }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}
