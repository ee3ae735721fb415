import LAQFormat

/// Keras' `Rescaling`: y = x·scale + offset, each a number or one value per channel of the
/// last axis (Keras broadcasts them against the input).
public struct RescalingLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let scale: [Float]
    let offset: [Float]

    public init(_ options: LayerOptions) throws(ModelError) {
        func values(_ key: String, default fallback: Float) throws(ModelError) -> [Float] {
            switch options.value(key) {
            case nil: return [fallback]
            case let .double(v)?: return [Float(v)]
            case let .int(v)?: return [Float(v)]
            case let .array(items)?:
                var result: [Float] = []
                for item in items {
                    switch item {
                    case let .double(v): result.append(Float(v))
                    case let .int(v): result.append(Float(v))
                    default: throw options.unsupported("\(key) \(items)")
                    }
                }
                guard !result.isEmpty else { throw options.unsupported("an empty \(key)") }
                return result
            case let other?:
                throw options.unsupported("\(key) \(other)")
            }
        }
        scale = try values("scale", default: 1)
        offset = try values("offset", default: 0)
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        for values in [scale, offset] where values.count > 1 {
            guard let last = input.last, last == nil || last == values.count else {
                throw .shapeMismatch(layer: layer, reason: "\(values.count) values per channel for an input of shape \(ShapeRules.describe(input))")
            }
        }
        return input
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { RescalingOp(name: context.layer.name, scale: scale, offset: offset) }
}

/// Rescaling's computation: per element, its channel's (or the one) scale and offset.
struct RescalingOp: Op, TrainableOp {
    let name: String
    let scale: [Float]
    let offset: [Float]

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        let width = try channels(x)
        x.data = Matrix.copy(x.data, workspace: workspace)
        let (scale, offset) = (self.scale, self.offset)
        for i in x.data.indices {
            let c = width == 0 ? 0 : i % width
            x.data[i] = x.data[i] * scale[scale.count == 1 ? 0 : c] + offset[offset.count == 1 ? 0 : c]
        }
        return x
    }

    /// ∂L/∂x = ∂L/∂y · scale.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let width = try channels(gradOutput)
        var dx = Matrix.copy(gradOutput.data, workspace: workspace)
        let scale = self.scale
        for i in dx.indices { dx[i] *= scale[scale.count == 1 ? 0 : i % max(width, 1)] }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: [:])
    }

    /// The channel count per-channel values cycle over (the last axis).
    private func channels(_ x: Tensor) throws(EngineError) -> Int {
        let width = x.lastDimension
        for values in [scale, offset] where values.count > 1 && values.count != width {
            throw .shape(layer: name, reason: "\(values.count) values per channel for \(width) channels")
        }
        return width
    }
}
