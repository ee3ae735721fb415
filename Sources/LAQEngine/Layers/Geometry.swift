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
