import LAQFormat

/// Keras' `ZeroPadding1D` and `ZeroPadding2D` (channels last): zeros before and after each
/// spatial axis. `padding` is one integer for every side, one per axis (symmetric), or a
/// (before, after) pair per axis.
public struct ZeroPaddingLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let spatial: Int
    /// (before, after) per spatial axis.
    let amounts: [(before: Int, after: Int)]

    public init(_ options: LayerOptions) throws(ModelError) {
        spatial = options.className.hasSuffix("1D") ? 1 : 2
        amounts = try SpatialMargins.parse(options, key: "padding", spatial: spatial, default: 1)
        try options.channelsLast()
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == spatial + 2 else { throw .shapeMismatch(layer: layer, reason: "expects rank \(spatial + 2) input, got \(input.count)") }
        var output = input
        for axis in 0..<spatial { output[axis + 1] = input[axis + 1].map { $0 + amounts[axis].before + amounts[axis].after } }
        return output
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        SpatialShiftOp(name: context.layer.name, spatial: spatial,
                       offset: amounts.map(\.before), extra: amounts.map { $0.before + $0.after })
    }
}

/// The margins of padding and cropping layers: per spatial axis, (before, after).
enum SpatialMargins {
    /// Keras' forms: an integer (every side), one integer per axis (both sides of it), or one
    /// (before, after) pair per axis; a 1-D layer also takes one (before, after) pair.
    static func parse(_ options: LayerOptions, key: String, spatial: Int, default fallback: Int) throws(ModelError) -> [(before: Int, after: Int)] {
        func number(_ value: JSONValue) throws(ModelError) -> Int {
            guard case let .int(v) = value, v >= 0, v <= LayerOptions.maxOption else { throw options.unsupported("\(key) \(value)") }
            return Int(v)
        }
        switch options.value(key) {
        case nil:
            return Array(repeating: (fallback, fallback), count: spatial)
        case let .int(v)?:
            let n = try number(.int(v))
            return Array(repeating: (n, n), count: spatial)
        case let .array(items)?:
            if spatial == 1, items.count == 2, case .int = items[0] {
                return [(try number(items[0]), try number(items[1]))]
            }
            guard items.count == spatial else { throw options.unsupported("\(key) \(items)") }
            var margins: [(before: Int, after: Int)] = []
            for item in items {
                switch item {
                case .int: let n = try number(item); margins.append((n, n))
                case let .array(pair) where pair.count == 2: margins.append((try number(pair[0]), try number(pair[1])))
                default: throw options.unsupported("\(key) \(items)")
                }
            }
            return margins
        case let other?:
            throw options.unsupported("\(key) \(other)")
        }
    }
}

/// Copies a channels-last input into an output whose spatial axes differ by `extra` elements,
/// input position p landing at p + `offset` (elements that land outside are dropped, output
/// positions nothing lands on are zero): zero padding with offset ≥ 0 and extra ≥ 0, cropping
/// with both ≤ 0. Its gradient is the same copy with both negated.
struct SpatialShiftOp: Op, TrainableOp {
    let name: String
    let spatial: Int
    let offset: [Int]
    let extra: [Int]

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try shift(tensors[0], offset: offset, extra: extra, workspace: workspace)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let dx = try shift(gradOutput, offset: offset.map { -$0 }, extra: extra.map { -$0 }, workspace: workspace)
        return LayerGradients(inputs: [dx], weights: [:])
    }

    func shift(_ x: Tensor, offset: [Int], extra: [Int], workspace: Workspace?) throws(EngineError) -> Tensor {
        let g = try Geometry(x, spatial: spatial, layer: name)
        // 1-D inputs are one row high (Geometry), with their offsets along the width.
        let (offsetH, offsetW) = spatial == 2 ? (offset[0], offset[1]) : (0, offset[0])
        let (extraH, extraW) = spatial == 2 ? (extra[0], extra[1]) : (0, extra[0])
        let (height, width) = (g.height + extraH, g.width + extraW)
        guard height >= 0, width >= 0 else { throw .shape(layer: name, reason: "cropping more than the input's \(x.shape)") }
        let channels = g.channels
        var output = Matrix.zeros(g.batch * height * width * channels, workspace: workspace)
        let rows = max(0, offsetH)..<max(max(0, offsetH), min(height, g.height + offsetH))
        let cols = max(0, offsetW)..<max(max(0, offsetW), min(width, g.width + offsetW))
        if !rows.isEmpty, !cols.isEmpty, channels > 0 {
            let run = cols.count * channels
            for n in 0..<g.batch {
                for h in rows {
                    let target = ((n * height + h) * width + cols.lowerBound) * channels
                    let source = ((n * g.height + h - offsetH) * g.width + cols.lowerBound - offsetW) * channels
                    Matrix.copy(x.data, from: source, into: &output, at: target, count: run)
                }
            }
        }
        var shape = x.shape
        if spatial == 2 { shape[1] = height; shape[2] = width } else { shape[1] = width }
        return Tensor(shape: shape, data: output)
    }
}
