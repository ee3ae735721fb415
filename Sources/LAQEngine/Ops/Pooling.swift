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

    func forward(_ tensors: [Tensor]) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let rows = Window(input: g.height, kernel: pool[0], stride: strides[0], dilation: 1, same: same && spatial == 2)
        let cols = Window(input: g.width, kernel: pool[1], stride: strides[1], dilation: 1, same: same)
        var output = [Float](repeating: 0, count: g.batch * rows.output * cols.output * g.channels)
        for n in 0..<g.batch {
            for oh in 0..<rows.output {
                for ow in 0..<cols.output {
                    let outBase = ((n * rows.output + oh) * cols.output + ow) * g.channels
                    for c in 0..<g.channels {
                        var accumulator: Float = average ? 0 : -.infinity
                        var count = 0
                        for th in 0..<pool[0] {
                            let ih = rows.source(oh, th)
                            guard ih >= 0, ih < g.height else { continue }
                            for tw in 0..<pool[1] {
                                let iw = cols.source(ow, tw)
                                guard iw >= 0, iw < g.width else { continue }
                                let value = x.data[((n * g.height + ih) * g.width + iw) * g.channels + c]
                                if average { accumulator += value } else { accumulator = max(accumulator, value) }
                                count += 1
                            }
                        }
                        output[outBase + c] = average ? accumulator / Float(max(count, 1)) : accumulator
                    }
                }
            }
        }
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
