import LAQFormat

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

/// The sliding-window options of convolutions and pooling (1-D or 2-D, channels last), parsed
/// once, with Keras' defaults: strides 1 (pooling: the pool size), dilation 1, `valid` padding.
struct SlidingWindow: Sendable {
    let spatial: Int
    /// Per spatial axis.
    let kernel: [Int]
    let strides: [Int]
    let dilation: [Int]
    let same: Bool

    /// A convolution's window (`kernel_size`, `strides`, `dilation_rate`, `padding`, `data_format`).
    init(convolution options: LayerOptions, spatial: Int) throws(ModelError) {
        self.spatial = spatial
        kernel = try options.ints("kernel_size", count: spatial)
        strides = try options.ints("strides", count: spatial, default: 1)
        dilation = try options.ints("dilation_rate", count: spatial, default: 1)
        if strides.contains(where: { $0 > 1 }), dilation.contains(where: { $0 > 1 }) {
            throw options.unsupported("strides > 1 together with dilation_rate > 1")
        }
        same = try options.padding()
        try options.channelsLast()
    }

    /// A pooling window (`pool_size`, default 2; `strides`, default the pool size; `padding`).
    init(pooling options: LayerOptions, spatial: Int) throws(ModelError) {
        self.spatial = spatial
        let pool = try options.ints("pool_size", count: spatial, default: 2)
        kernel = pool
        strides = options.has("strides") ? try options.ints("strides", count: spatial) : pool
        options.ignore("strides")  // null: the pool size
        dilation = Array(repeating: 1, count: spatial)
        same = try options.padding()
        try options.channelsLast()
    }

    /// The values as the engine's 2-D loops take them: a 1-D window is one row high.
    var kernel2: [Int] { spatial == 1 ? [1] + kernel : kernel }
    var strides2: [Int] { spatial == 1 ? [1] + strides : strides }
    var dilation2: [Int] { spatial == 1 ? [1] + dilation : dilation }

    /// (batch, spatial…, channels) → (batch, windows…, `channels`).
    func outputShape(_ input: Shape, channels: Int?, layer: String) throws(ModelError) -> Shape {
        guard input.count == spatial + 2 else {
            throw .shapeMismatch(layer: layer, reason: "expects rank \(spatial + 2) input, got \(input.count)")
        }
        var output: Shape = [input[0]]
        for axis in 0..<spatial {
            output.append(input[axis + 1].map {
                Window(input: $0, kernel: kernel[axis], stride: strides[axis], dilation: dilation[axis], same: same).output
            })
        }
        return output + [channels]
    }
}
