import LAQFormat

/// keras.applications ConvNeXt's `LayerScale`: y = x·γ, one trainable γ per channel of the last
/// axis (`projection_dim` of them). Keras names the variable `variable` (`variable_1`, … in
/// one model).
public struct LayerScaleLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let channels: Int

    public init(_ options: LayerOptions) throws(ModelError) {
        channels = try options.int("projection_dim", min: 1)
        options.ignore("init_values")  // γ's initial value
    }

    public var weights: [WeightSpec] { [WeightSpec("gamma", kerasName: "variable")] }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        if let last = input.last ?? nil, last != channels {
            throw .shapeMismatch(layer: layer, reason: "projection_dim \(channels) for \(last) channels")
        }
        return input
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { ["gamma": [channels]] }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        let gamma = try context.weight("gamma")
        guard gamma.values.count == channels else { throw .shape(layer: context.layer.name, reason: "gamma has \(gamma.values.count) values for \(channels) channels") }
        return LayerScaleOp(name: context.layer.name, gamma: gamma.values)
    }
}

/// LayerScale's computation.
struct LayerScaleOp: Op, TrainableOp {
    let name: String
    let gamma: [Float]

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        guard x.lastDimension == gamma.count else { throw .shape(layer: name, reason: "input has \(x.lastDimension) channels, gamma \(gamma.count)") }
        x.data = Matrix.copy(x.data, workspace: workspace)
        let (gamma, width) = (self.gamma, gamma.count)
        for i in x.data.indices { x.data[i] *= gamma[i % width] }
        return x
    }

    /// ∂L/∂x = ∂L/∂y·γ; ∂L/∂γ_c = Σ ∂L/∂y·x over every position of channel c.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0].data
        let width = gamma.count
        var dx = workspace.floats(x.count)
        var dGamma = workspace.zeros(width)
        for i in x.indices {
            let g = gradOutput.data[i]
            dx[i] = g * gamma[i % width]
            dGamma[i % width] += g * x[i]
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: ["gamma": dGamma])
    }
}
