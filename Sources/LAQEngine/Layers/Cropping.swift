import LAQFormat

/// Keras' `Cropping1D` and `Cropping2D` (channels last): elements removed before and after each
/// spatial axis. `cropping` takes the forms of ``ZeroPaddingLayer``'s `padding`.
public struct CroppingLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let spatial: Int
    /// (before, after) per spatial axis.
    let amounts: [(before: Int, after: Int)]

    public init(_ options: LayerOptions) throws(ModelError) {
        spatial = options.className.hasSuffix("1D") ? 1 : 2
        amounts = try SpatialMargins.parse(options, key: "cropping", spatial: spatial, default: spatial == 1 ? 1 : 0)
        try options.channelsLast()
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == spatial + 2 else { throw .shapeMismatch(layer: layer, reason: "expects rank \(spatial + 2) input, got \(input.count)") }
        var output = input
        for axis in 0..<spatial {
            guard let size = input[axis + 1] else { continue }
            let kept = size - amounts[axis].before - amounts[axis].after
            guard kept >= 0 else { throw .shapeMismatch(layer: layer, reason: "crops \(amounts[axis].before + amounts[axis].after) of \(size) elements") }
            output[axis + 1] = kept
        }
        return output
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        SpatialShiftOp(name: context.layer.name, spatial: spatial,
                       offset: amounts.map { -$0.before }, extra: amounts.map { -($0.before + $0.after) })
    }
}
