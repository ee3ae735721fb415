import CLAQKernels
import Foundation
import LAQFormat

/// Keras' `Conv1D` and `Conv2D` (channels last, `valid`/`same` padding, strides, dilation):
/// y = act(conv(x, K) + b), K is (kernel…, channels/groups, filters). With one group per input
/// channel (ConvNeXt's 7×7), filter f sees channel f/(filters/channels) alone: a depthwise
/// convolution with multiplier filters/channels and the same kernel bytes. Other group counts
/// are refused.
public struct ConvolutionLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let window: SlidingWindow
    let filters: Int
    let activation: String
    let useBias: Bool
    let groups: Int

    public init(_ options: LayerOptions) throws(ModelError) {
        let spatial = options.className.contains("1D") ? 1 : 2
        window = try SlidingWindow(convolution: options, spatial: spatial)
        filters = try options.int("filters", min: 1)
        activation = try options.activation()
        useBias = try options.bool("use_bias", default: true)
        groups = try options.int("groups", default: 1, min: 1)
        if groups != 1, spatial == 1 || filters % groups != 0 { throw options.unsupported("groups=\(groups)") }
        try options.expectDefault("lora_rank", .null, "LoRA (lora_rank)")
    }

    public var weights: [WeightSpec] {
        let axes = window.spatial == 1 ? ["w", "in", "out"] : ["h", "w", "in", "out"]
        return [WeightSpec("kernel", quantizable: true, axes: axes)] + (useBias ? [WeightSpec("bias")] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        if groups != 1, let channels = input.last ?? nil, channels != groups {
            throw .unsupportedOption(layer: layer, className: "Conv2D", option: "groups=\(groups) on \(channels) channels (only one group per channel)")
        }
        return try window.outputShape(input, channels: filters, layer: layer)
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes = ["bias": [filters]]
        if let last = inputs.first?.last ?? nil { shapes["kernel"] = window.kernel + [last / groups, filters] }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        if groups != 1 {
            return try DepthwiseOp(context, window: window, activation: context.activation(activation), multiplier: filters / groups)
        }
        return try ConvolutionOp(context, window: window, activation: context.activation(activation))
    }
}

/// A convolution's computation: read in place on panels (inference, where the kernel has or
/// decodes them), else im2col and a product (and always in training, whose backward pass
/// multiplies the im2col matrix it keeps).
struct ConvolutionOp: Op {
    let name: String
    let spatial: Int
    /// [kh, kw, c, f] flattened = [kh·kw·c, f] (the model's array, not a copy); empty when the
    /// kernel runs packed codes.
    let kernel: [Float]
    let kernelMatrix: KernelMatrix
    /// The kernel for Winograd's F(2×2, 3×3), which computes a 3×3 float32 kernel with unit
    /// strides and dilation in predictions where the CPU has panels (nil for any other, and in
    /// training, whose forward pass keeps its im2col matrix for the backward pass); then
    /// `kernelMatrix` holds the model's values alone.
    let winograd: WinogradPanels?
    let bias: [Float]?
    let kernelSize: [Int]
    let strides: [Int]
    let dilation: [Int]
    let same: Bool
    let filters: Int
    let activation: Activation
    /// Zeros around the input that a ZeroPadding2D before this layer added (inference, ``Fusion``).
    var padding = FoldedPadding()
    /// An inference BatchNormalization (and the ReLU after it) that this layer applies to its
    /// output (inference, ``Fusion``; the layer's own activation is then linear).
    var normalization: FusedNormalization?
    /// A residual connection's Add (and the ReLU after it) that this layer applies last, to the
    /// second tensor ``forward(_:workspace:)`` is given (inference, ``Fusion``).
    var residual: FusedResidual?

    init(_ context: OpContext, window: SlidingWindow, activation: Activation) throws(EngineError) {
        name = context.layer.name
        spatial = window.spatial
        let (kernel, matrix) = try context.matrix("kernel", panels: true)
        self.kernel = kernel.values
        filters = kernel.shape.last ?? 0
        bias = context.optionalWeight("bias")?.values
        if let bias, bias.count != filters { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(filters) filters") }
        kernelSize = window.kernel2
        strides = window.strides2
        dilation = window.dilation2
        same = window.same
        self.activation = activation
        if !context.training, case .panels = matrix, spatial == 2, kernelSize == [3, 3], strides == [1, 1], dilation == [1, 1],
           kernel.shape.count == 4, let transformed = WinogradPanels(kernel: kernel.values, channels: kernel.shape[2], filters: filters) {
            // Predictions of every input this layer takes (its channels) run the transformed
            // kernel, so the direct panels would only hold memory (ResNet50's 45 MB): the kernel
            // stays the model's array.
            winograd = transformed
            kernelMatrix = .dense(kernel.values)
        } else {
            winograd = nil
            kernelMatrix = matrix
        }
    }

    /// Inference only (training keeps the im2col matrix: ``forwardTraining``), so its buffers
    /// are always allocated.
    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        guard let residual else {
            var z = try linear(tensors[0])
            activation.apply(&z.data, width: filters)
            return z
        }
        guard tensors.count == 2 else { throw .badInput(name: name, reason: "a residual connection's other input was not given") }
        var other: ResidualInput? = ResidualInput(other: tensors[1], connection: residual, overwrite: false)
        return try linear(tensors[0], residual: &other)
    }

    /// The fused residual connection of `z` (this layer's output) and `other` by the `Add` and
    /// the activation ops themselves: where the convolution's epilogue cannot add it (the im2col
    /// path, or a tensor of another shape, which the `Add` broadcasts).
    private func connect(_ z: Tensor, _ other: Tensor, _ residual: FusedResidual) throws(EngineError) -> Tensor {
        var y = try MergeOp(name: residual.add, kind: .add).forward(residual.first ? [other, z] : [z, other])
        if let activation = residual.activation { ActivationOp(kind: activation).apply(&y) }
        return y
    }

    /// A residual connection's other tensor as ``linear(_:residual:)`` adds it; with `overwrite`,
    /// the output takes its values' buffer where the epilogue adds them (each value is read, then
    /// the output written in its place).
    struct ResidualInput {
        var other: Tensor
        let connection: FusedResidual
        let overwrite: Bool
    }

    /// The output's shape for an input geometry.
    func outputShape(_ g: Geometry) -> [Int] {
        let (rows, cols) = windows(g)
        return spatial == 2 ? [g.batch, rows.output, cols.output, filters] : [g.batch, cols.output, filters]
    }

    /// The windows along height and width for an input geometry.
    func windows(_ g: Geometry) -> (Window, Window) {
        (Window(input: g.height, kernel: kernelSize[0], stride: strides[0], dilation: dilation[0], same: same && spatial == 2, margins: padding.rows),
         Window(input: g.width, kernel: kernelSize[1], stride: strides[1], dilation: dilation[1], same: same, margins: padding.columns))
    }

    /// The convolution of an input geometry, for the window kernels.
    func convolution(_ g: Geometry) -> WindowKernels.Convolution {
        let (rows, cols) = windows(g)
        return WindowKernels.Convolution(input: g, rows: rows, cols: cols, kernelHeight: kernelSize[0], kernelWidth: kernelSize[1])
    }

    /// im2col: one row of kh·kw·c values per output position (zeros for padding taps); from
    /// `workspace` when given.
    func columns(_ x: Tensor, _ g: Geometry, workspace: Workspace?) -> [Float] {
        // A 1×1 kernel with unit strides reads each position's channels once, unpadded: the
        // input is its own im2col matrix (in inference; a training step keeps its own copy, which
        // its workspace recycles).
        if workspace == nil, kernelSize == [1, 1], strides == [1, 1], padding.isNone { return x.data }
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        let count = g.batch * rows.output * cols.output * patch
        // Without padding taps every element is copied from the input: no zeroing pass.
        var columns = rows.allTapsInside(g.height) && cols.allTapsInside(g.width)
            ? Matrix.uninitialized(count, workspace: workspace) : Matrix.zeros(count, workspace: workspace)
        guard !columns.isEmpty, !x.data.isEmpty else { return columns }
        WindowKernels.im2col(x.data, convolution(g), into: &columns)
        return columns
    }

    /// The convolution before the activation (then the fused normalization, when there is one):
    /// read in place on panels (a float32 kernel's, by Winograd's transforms where they apply, or
    /// decoded from a packed kernel's planes where that is how its product runs), else through
    /// im2col (with int8 activations, the epilogue applied as the dot-plane kernels store each
    /// output).
    func linear(_ x: Tensor) throws(EngineError) -> Tensor {
        var none: ResidualInput?
        return try linear(x, residual: &none)
    }

    /// The same, then a fused residual connection (``Fusion``), when given: the `Add` of the
    /// other tensor and the ReLU after it, in the epilogue where the other tensor has the
    /// output's shape (its values then taken when it says to overwrite them).
    func linear(_ x: Tensor, residual: inout ResidualInput?) throws(EngineError) -> Tensor {
        let g = try Geometry(x, spatial: spatial, layer: name)
        let (rows, cols) = windows(g)
        let positions = g.batch * rows.output * cols.output
        // A residual of another shape (which the Add broadcasts) is added after the product, by `connect`.
        let inEpilogue = residual.map { $0.other.shape == outputShape(g) } ?? false
        let z: Tensor
        switch (kernelMatrix, winograd) {
        case let (_, winograd?):
            // (`convolved` checks the input's channels against the kernel's, and computes no
            // output position itself: the transform applies to every shape it passes on.)
            z = try convolved(x, g, residual: &residual, inEpilogue: inEpilogue) { x, shape, m, epilogue, c in
                winograd.convolve(x, shape: shape, m: m, epilogue: epilogue, into: c)
            }
        case let (.panels(panels), _):
            z = try convolved(x, g, residual: &residual, inEpilogue: inEpilogue) { x, shape, m, epilogue, c in
                panels.convolve(x, shape: shape, m: m, epilogue: epilogue, into: c)
            }
        case let (.packed(matrix), _) where matrix.planes?.prefersPanels(rows: positions) == true:
            let planes = matrix.planes!
            z = try convolved(x, g, residual: &residual, inEpilogue: inEpilogue) { x, shape, m, epilogue, c in
                planes.convolveDecodingPanels(x, shape: shape, m: m, epilogue: epilogue, into: c)
            }
        case let (.packed(matrix), _) where matrix.planes?.int8Activations == true && kernelMatrix.count > 0:
            // Int8 activations: the im2col rows quantized and multiplied on the dot planes, each
            // output through the epilogue as it is stored. (An empty kernel takes the general path.)
            let planes = matrix.planes!, filters = filters, patch = kernelSize[0] * kernelSize[1] * g.channels
            let columns = self.columns(x, g, workspace: nil)
            z = try convolved(x, g, residual: &residual, inEpilogue: inEpilogue) { _, _, m, epilogue, c in
                ProductCount.add(m * patch * filters)
                columns.withUnsafeBufferPointer { planes.multiplyInt8($0.baseAddress!, lda: patch, m: m, epilogue: epilogue, into: c, ldc: filters) }
            }
        default:
            var product = try linearKeepingColumns(x).output
            if let normalization { Elementwise.scaleShift(&product.data, scale: normalization.scale, shift: normalization.shift, then: normalization.relu) }
            if let residual { return try connect(product, residual.other, residual.connection) }
            return product
        }
        if let residual, !inEpilogue { return try connect(z, residual.other, residual.connection) }
        return z
    }

    /// The convolution read in place by `convolve(x, shape, positions, epilogue, output)`, the
    /// bias and the fused normalization applied as each tile is stored (`laq_panels_convolve`):
    /// the bits of im2col, the panel product and the passes after it. With `inEpilogue`, the
    /// residual connection too (its other tensor has the output's shape), the output written
    /// over the other tensor's values where the connection says so (taking them).
    private func convolved(_ x: Tensor, _ g: Geometry, residual: inout ResidualInput?, inEpilogue: Bool,
                           _ convolve: (UnsafePointer<Float>, laq_conv_shape, Int, laq_epilogue, UnsafeMutablePointer<Float>) -> Void) throws(EngineError) -> Tensor {
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        guard patch * filters == kernelMatrix.count else { throw .shape(layer: name, reason: "kernel does not match \(g.channels) input channels") }
        let positions = g.batch * rows.output * cols.output
        let shape = outputShape(g)
        let connection = inEpilogue ? residual?.connection : nil
        let overwrite = connection != nil && residual?.overwrite == true
        var output: [Float] = []
        if overwrite { swap(&output, &residual!.other.data) } else { output = Matrix.uninitialized(positions * filters) }
        guard positions > 0, filters > 0 else { return Tensor(shape: shape, data: output) }
        let geometry = laq_conv_shape(height: g.height, width: g.width, channels: g.channels, out_height: rows.output, out_width: cols.output,
                                      kernel_h: kernelSize[0], kernel_w: kernelSize[1], stride_h: strides[0], stride_w: strides[1],
                                      dilation_h: dilation[0], dilation_w: dilation[1], pad_top: rows.padBefore, pad_left: cols.padBefore)
        let relu = (normalization?.relu ?? .none).parameters
        let after = (connection?.relu ?? .none).parameters
        Matrix.withPointer(bias) { bias in
            Matrix.withPointer(normalization?.scale) { scale in
                Matrix.withPointer(normalization?.shift) { shift in
                    Matrix.withPointer(connection == nil || overwrite ? nil : residual?.other.data) { other in
                        // An input with no positions (padded by a folded ZeroPadding2D) is never read:
                        // every tap is padding. The kernel still gets an address.
                        (x.data.isEmpty ? [0] : x.data).withUnsafeBufferPointer { input in
                            output.withUnsafeMutableBufferPointer { out in
                                // Overwriting: the kernel reads each value of the other tensor, then stores the output there.
                                let epilogue = laq_epilogue(bias: bias, scale: scale, shift: shift, relu: relu.mode, threshold: relu.threshold,
                                                            slope: relu.slope, ceiling: relu.ceiling, residual: overwrite ? UnsafePointer(out.baseAddress) : other,
                                                            residual_first: connection?.first == true ? 1 : 0, after_relu: after.mode,
                                                            after_threshold: after.threshold, after_slope: after.slope, after_ceiling: after.ceiling)
                                convolve(input.baseAddress!, geometry, positions, epilogue, out.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, data: output)
    }

    /// The convolution before the activation, and the im2col matrix it multiplied (kept by the
    /// training forward for the backward pass); both from `workspace` when given.
    func linearKeepingColumns(_ x: Tensor, workspace: Workspace? = nil) throws(EngineError) -> (output: Tensor, columns: [Float]) {
        let g = try Geometry(x, spatial: spatial, layer: name)
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        guard patch * filters == kernelMatrix.count else { throw .shape(layer: name, reason: "kernel does not match \(g.channels) input channels") }
        let positions = g.batch * rows.output * cols.output
        let columns = self.columns(x, g, workspace: workspace)
        var output = Matrix.startingWithBias(bias, rows: positions, width: filters, workspace: workspace)
        kernelMatrix.multiply(columns, m: positions, k: patch, n: filters, into: &output, accumulate: bias != nil)
        let shape = outputShape(g)
        return (Tensor(shape: shape, data: output), columns)
    }
}

extension ConvolutionOp: OverwritingOp {
    /// A residual connection's other tensor (``linear(_:residual:)`` writes over it where its
    /// epilogue adds it, which it does where it has the output's shape).
    var overwritableInput: Int? { residual == nil ? nil : 1 }

    func forward(overwriting inputs: inout [Tensor]) throws(EngineError) -> Tensor {
        guard let residual, inputs.count == 2 else { return try forward(inputs, workspace: nil) }
        var other: ResidualInput? = ResidualInput(other: inputs[1], connection: residual, overwrite: true)
        inputs[1].data = []  // `other` holds the values alone (when the caller let go of them)
        return try linear(inputs[0], residual: &other)
    }
}

extension ConvolutionOp: TrainableOp {
    /// Keeps the im2col matrix (in `extra`) for the kernel's gradient.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (z, columns) = try linearKeepingColumns(inputs[0], workspace: workspace)
        let (y, preActivation) = activate(consume z, activation, width: filters, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: preActivation, extra: columns)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        let positions = g.batch * rows.output * cols.output
        var (gz, own) = activationGradient(gradOutput, record, activation, width: filters, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        let columns = record.extra  // the im2col matrix of the training forward
        var weights = ["kernel": Matrix.multiply(columns, gz, m: patch, n: filters, k: positions, transposeA: true, workspace: workspace)]
        if bias != nil { weights["bias"] = Matrix.columnSums(gz, rows: positions, width: filters, workspace: workspace) }
        guard record.inputsNeedGradients else { return LayerGradients(inputs: [nil], weights: weights) }
        var dColumns = Matrix.multiply(gz, kernel, m: positions, n: patch, k: filters, transposeB: true, workspace: workspace)
        defer { workspace.recycle(&dColumns) }
        // col2im: scatter-add each patch row back onto the input positions it came from.
        var dx = workspace.zeros(x.count)
        WindowKernels.col2im(dColumns, convolution(g), into: &dx)
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}
