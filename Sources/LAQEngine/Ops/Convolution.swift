import LAQModel

/// Input geometry of a 1-D or 2-D channels-last op: (batch, height, width, channels), with 1-D as height 1.
struct Geometry {
    let batch: Int, height: Int, width: Int, channels: Int

    init(_ x: Tensor, spatial: Int, layer: String) throws(EngineError) {
        guard x.rank == spatial + 2 else { throw .shape(layer: layer, reason: "expects a rank-\(spatial + 2) input, got \(x.shape)") }
        batch = x.shape[0]
        height = spatial == 2 ? x.shape[1] : 1
        width = x.shape[spatial]
        channels = x.shape[spatial + 1]
    }

    /// Visits every output position of a sliding window (batch, then rows, then columns) and each
    /// of its taps whose input lies inside the image (padding taps are skipped): `body(position,
    /// tap, input)` gets the output position's index, the tap's index th·kw + tw, and the offset
    /// of the input's channel run. The one traversal behind depthwise convolution and pooling.
    @inline(__always)
    func forEachWindowTap(_ rows: Window, _ cols: Window, _ body: (_ position: Int, _ tap: Int, _ input: Int) -> Void) {
        var position = 0
        for n in 0..<batch {
            for oh in 0..<rows.output {
                for ow in 0..<cols.output {
                    for th in 0..<rows.kernel {
                        let ih = rows.source(oh, th)
                        guard ih >= 0, ih < height else { continue }
                        for tw in 0..<cols.kernel {
                            let iw = cols.source(ow, tw)
                            guard iw >= 0, iw < width else { continue }
                            body(position, th * cols.kernel + tw, ((n * height + ih) * width + iw) * channels)
                        }
                    }
                    position += 1
                }
            }
        }
    }
}

/// Conv1D and Conv2D (channels last, valid/same padding, strides, dilation) as im2col + GEMM.
struct ConvolutionOp: Op {
    let name: String
    let spatial: Int
    let kernel: [Float]  // [kh, kw, c, f] flattened = [kh·kw·c, f]; empty when it runs packed
    let kernelMatrix: KernelMatrix
    let bias: [Float]?
    let kernelSize: [Int]
    let strides: [Int]
    let dilation: [Int]
    let same: Bool
    let filters: Int
    let activation: Activation

    init(_ context: OpContext, spatial: Int) throws(EngineError) {
        name = context.layer.name
        self.spatial = spatial
        let (kernel, matrix) = try context.matrix("kernel")
        self.kernel = kernel.values
        kernelMatrix = matrix
        filters = kernel.shape.last ?? 0
        bias = context.optionalWeight("bias")?.values
        if let bias, bias.count != filters { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(filters) filters") }
        let size = try context.ints("kernel_size", count: spatial)
        kernelSize = spatial == 1 ? [1] + size : size
        let stride = try context.ints("strides", count: spatial, 1)
        strides = spatial == 1 ? [1] + stride : stride
        let rate = try context.ints("dilation_rate", count: spatial, 1)
        dilation = spatial == 1 ? [1] + rate : rate
        same = context.config["padding"]?.stringValue == "same"
        activation = try context.activation()
    }

    /// Inference only (training keeps the im2col matrix: ``forwardTraining``), so its buffers
    /// are always allocated.
    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0])
        activation.apply(&z.data, width: filters)
        return z
    }

    /// The windows along height and width for an input geometry.
    func windows(_ g: Geometry) -> (Window, Window) {
        (Window(input: g.height, kernel: kernelSize[0], stride: strides[0], dilation: dilation[0], same: same && spatial == 2),
         Window(input: g.width, kernel: kernelSize[1], stride: strides[1], dilation: dilation[1], same: same))
    }

    /// Visits every (output position, kernel tap) pair whose input lies inside the image (the
    /// padding taps are skipped), as runs: `body(column, input, count)` gets the offsets of `count`
    /// floats that are contiguous both in the im2col matrix and in the input. With unit dilation
    /// along the width, a kernel row inside the image is one run of kw·c floats; otherwise each
    /// tap's c channels are. The one traversal behind im2col and col2im.
    /// `images`: the samples to visit (all by default); runs of different samples never overlap,
    /// in the matrix or in the input, so threads may take disjoint ranges.
    @inline(__always)
    func forEachRun(_ g: Geometry, images: Range<Int>? = nil, _ body: (_ column: Int, _ input: Int, _ count: Int) -> Void) {
        let (rows, cols) = windows(g)
        let (kh, kw, channels) = (kernelSize[0], kernelSize[1], g.channels)
        let patch = kh * kw * channels
        let wholeRows = cols.dilation == 1
        let images = images ?? 0..<g.batch
        var p = images.lowerBound * rows.output * cols.output
        for n in images {
            for oh in 0..<rows.output {
                for ow in 0..<cols.output {
                    var q = p * patch
                    let first = cols.source(ow, 0)
                    for th in 0..<kh {
                        let ih = rows.source(oh, th)
                        guard ih >= 0, ih < g.height else {
                            q += kw * channels
                            continue
                        }
                        let row = (n * g.height + ih) * g.width
                        if wholeRows, first >= 0, first + kw <= g.width {
                            body(q, (row + first) * channels, kw * channels)
                            q += kw * channels
                            continue
                        }
                        for tw in 0..<kw {
                            let iw = cols.source(ow, tw)
                            if iw >= 0, iw < g.width { body(q, (row + iw) * channels, channels) }
                            q += channels
                        }
                    }
                    p += 1
                }
            }
        }
    }

    /// im2col: one row of kh·kw·c values per output position (zeros for padding taps); from
    /// `workspace` when given.
    func columns(_ x: Tensor, _ g: Geometry, workspace: Workspace?) -> [Float] {
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        let count = g.batch * rows.output * cols.output * patch
        // Without padding taps every element is copied from the input: no zeroing pass.
        var columns = rows.allTapsInside(g.height) && cols.allTapsInside(g.width)
            ? Matrix.uninitialized(count, workspace: workspace) : Matrix.zeros(count, workspace: workspace)
        guard !columns.isEmpty, !x.data.isEmpty else { return columns }
        // Samples are independent: two threads for a large batch.
        x.data.withUnsafeBufferPointer { input in
            columns.withUnsafeMutableBufferPointer { out in
                let (input, out) = (SharedPointer(input.baseAddress!), SharedPointer(out.baseAddress!))
                Parallel.halves(g.batch, large: count >= Parallel.elementwiseCount) { images in
                    forEachRun(g, images: images) { column, source, count in (out.base + column).update(from: input.base + source, count: count) }
                }
            }
        }
        return columns
    }

    /// The convolution before the activation.
    func linear(_ x: Tensor) throws(EngineError) -> Tensor { try linearKeepingColumns(x).output }

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
        columns.withUnsafeBufferPointer { a in
            output.withUnsafeMutableBufferPointer { c in
                kernelMatrix.multiply(a.baseAddress!, m: positions, k: patch, n: filters, into: c.baseAddress!, accumulate: bias != nil)
            }
        }
        let shape = spatial == 2 ? [g.batch, rows.output, cols.output, filters] : [g.batch, cols.output, filters]
        return (Tensor(shape: shape, data: output), columns)
    }
}

/// DepthwiseConv2D: each input channel c convolved with its own `depth_multiplier` kernels;
/// output channel c·m + j.
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

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        let kernel = try context.weight("kernel")
        self.kernel = kernel.values
        multiplier = kernel.shape.last ?? 1
        bias = context.optionalWeight("bias")?.values
        kernelSize = try context.ints("kernel_size", count: 2)
        strides = try context.ints("strides", count: 2, 1)
        dilation = try context.ints("dilation_rate", count: 2, 1)
        same = context.config["padding"]?.stringValue == "same"
        activation = try context.activation()
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0], workspace: workspace)
        activation.apply(&z.data, width: z.lastDimension)
        return z
    }

    /// The depthwise convolution before the activation; the output from `workspace` when given.
    func linear(_ x: Tensor, workspace: Workspace? = nil) throws(EngineError) -> Tensor {
        let g = try Geometry(x, spatial: 2, layer: name)
        guard kernelSize[0] * kernelSize[1] * g.channels * multiplier == kernel.count else {
            throw .shape(layer: name, reason: "kernel does not match \(g.channels) input channels")
        }
        let rows = Window(input: g.height, kernel: kernelSize[0], stride: strides[0], dilation: dilation[0], same: same)
        let cols = Window(input: g.width, kernel: kernelSize[1], stride: strides[1], dilation: dilation[1], same: same)
        let outChannels = g.channels * multiplier
        if let bias, bias.count != outChannels { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(outChannels) channels") }
        let positions = g.batch * rows.output * cols.output
        var output = Matrix.zeros(positions * outChannels, workspace: workspace)
        let (channels, multiplier) = (g.channels, self.multiplier)
        g.forEachWindowTap(rows, cols) { position, tap, input in
            let outBase = position * outChannels, kBase = tap * outChannels
            for c in 0..<channels {
                let value = x.data[input + c]
                for j in 0..<multiplier { output[outBase + c * multiplier + j] += value * kernel[kBase + c * multiplier + j] }
            }
        }
        if let bias {
            for position in 0..<positions { for k in 0..<outChannels { output[position * outChannels + k] += bias[k] } }
        }
        return Tensor(shape: [g.batch, rows.output, cols.output, outChannels], data: output)
    }
}
