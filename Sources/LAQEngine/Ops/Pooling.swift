import LAQModel

/// MaxPooling and AveragePooling, 1-D and 2-D. Average pooling with `same` padding divides by the
/// number of real (unpadded) elements in the window, as TensorFlow does.
struct PoolingOp: Op {
    let name: String
    let spatial: Int
    let average: Bool
    let pool: [Int]
    let strides: [Int]
    let same: Bool

    init(_ context: OpContext, spatial: Int, average: Bool) throws(EngineError) {
        name = context.layer.name
        self.spatial = spatial
        self.average = average
        let size = try context.ints("pool_size", count: spatial, 2)
        pool = spatial == 1 ? [1] + size : size
        let stride = (try? context.ints("strides", count: spatial)) ?? size
        strides = spatial == 1 ? [1] + stride : stride
        same = context.config["padding"]?.stringValue == "same"
    }

    /// Pools every window: the average over its taps inside the image, or their maximum (−∞ for
    /// a window with none). `counts`: taps per output position; with `keepMaximum`, `maximum`
    /// holds for each output value the input index of its first maximal tap (−1: none).
    func pool(_ x: Tensor, _ g: Geometry, _ rows: Window, _ cols: Window, keepMaximum: Bool)
        -> (output: [Float], counts: [Int], maximum: [Int]) {
        let average = self.average
        let positions = g.batch * rows.output * cols.output
        let channels = g.channels
        var output = [Float](repeating: average ? 0 : -.infinity, count: positions * channels)
        var counts = [Int](repeating: 0, count: positions)
        var maximum = keepMaximum ? [Int](repeating: -1, count: positions * channels) : []
        g.forEachWindowTap(rows, cols) { position, _, input in
            counts[position] += 1
            let base = position * channels
            for c in 0..<channels {
                let value = x.data[input + c]
                if average {
                    output[base + c] += value
                } else if value > output[base + c] || (keepMaximum && maximum[base + c] < 0) {
                    // Strictly greater: the first maximum in tap order is kept.
                    output[base + c] = value
                    if keepMaximum { maximum[base + c] = input + c }
                }
            }
        }
        if average {
            for position in 0..<positions where counts[position] > 0 {
                for c in 0..<channels { output[position * channels + c] /= Float(counts[position]) }
            }
        }
        return (output, counts, maximum)
    }

    func forward(_ tensors: [Tensor]) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let rows = Window(input: g.height, kernel: pool[0], stride: strides[0], dilation: 1, same: same && spatial == 2)
        let cols = Window(input: g.width, kernel: pool[1], stride: strides[1], dilation: 1, same: same)
        let output = pool(x, g, rows, cols, keepMaximum: false).output
        let shape = spatial == 2 ? [g.batch, rows.output, cols.output, g.channels] : [g.batch, cols.output, g.channels]
        return Tensor(shape: shape, data: output)
    }
}

/// GlobalAveragePooling and GlobalMaxPooling, 1-D and 2-D (keepdims supported).
struct GlobalPoolingOp: Op {
    let name: String
    let spatial: Int
    let average: Bool
    let keepDimensions: Bool

    /// Pools every window: the average over its taps inside the image, or their maximum (−∞ for
    /// a window with none). `counts`: taps per output position; with `keepMaximum`, `maximum`
    /// holds for each output value the input index of its first maximal tap (−1: none).
    func pool(_ x: Tensor, _ g: Geometry, _ rows: Window, _ cols: Window, keepMaximum: Bool)
        -> (output: [Float], counts: [Int], maximum: [Int]) {
        let average = self.average
        let positions = g.batch * rows.output * cols.output
        let channels = g.channels
        var output = [Float](repeating: average ? 0 : -.infinity, count: positions * channels)
        var counts = [Int](repeating: 0, count: positions)
        var maximum = keepMaximum ? [Int](repeating: -1, count: positions * channels) : []
        g.forEachWindowTap(rows, cols) { position, _, input in
            counts[position] += 1
            let base = position * channels
            for c in 0..<channels {
                let value = x.data[input + c]
                if average {
                    output[base + c] += value
                } else if value > output[base + c] || (keepMaximum && maximum[base + c] < 0) {
                    // Strictly greater: the first maximum in tap order is kept.
                    output[base + c] = value
                    if keepMaximum { maximum[base + c] = input + c }
                }
            }
        }
        if average {
            for position in 0..<positions where counts[position] > 0 {
                for c in 0..<channels { output[position * channels + c] /= Float(counts[position]) }
            }
        }
        return (output, counts, maximum)
    }

    func forward(_ tensors: [Tensor]) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let positions = g.height * g.width
        var output = [Float](repeating: average ? 0 : -.infinity, count: g.batch * g.channels)
        for n in 0..<g.batch {
            for p in 0..<positions {
                let base = (n * positions + p) * g.channels
                for c in 0..<g.channels {
                    let value = x.data[base + c]
                    if average { output[n * g.channels + c] += value } else { output[n * g.channels + c] = max(output[n * g.channels + c], value) }
                }
            }
        }
        if average { for i in output.indices { output[i] /= Float(max(positions, 1)) } }
        let shape = keepDimensions ? [g.batch] + Array(repeating: 1, count: spatial) + [g.channels] : [g.batch, g.channels]
        return Tensor(shape: shape, data: output)
    }
}
