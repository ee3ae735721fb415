import LAQFormat

/// keras.applications InceptionResNetV2's `CustomScaleLayer`: y = x₀ + x₁·scale (a residual
/// block's scaled branch added to its input).
public struct CustomScaleLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let scale: Double

    public init(_ options: LayerOptions) throws(ModelError) { scale = try options.double("scale", default: 1) }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        guard inputs.count == 2, inputs[0].count == inputs[1].count,
              zip(inputs[0], inputs[1]).allSatisfy({ $0 == nil || $1 == nil || $0 == $1 }) else {
            throw .shapeMismatch(layer: layer, reason: "expects two inputs of one shape")
        }
        return inputs[0]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { CustomScaleOp(name: context.layer.name, scale: Float(scale)) }
}

/// CustomScaleLayer's computation.
struct CustomScaleOp: Op, TrainableOp {
    let name: String
    let scale: Float

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        guard tensors.count == 2, tensors[0].shape == tensors[1].shape else { throw .shape(layer: name, reason: "expects two inputs of one shape") }
        var y = Matrix.uninitialized(tensors[0].count, workspace: workspace)
        let (a, b, scale) = (tensors[0].data, tensors[1].data, self.scale)
        for i in y.indices { y[i] = a[i] + b[i] * scale }
        return Tensor(shape: tensors[0].shape, data: y)
    }

    /// ∂L/∂x₀ = ∂L/∂y; ∂L/∂x₁ = ∂L/∂y·scale.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        var scaled = Matrix.copy(gradOutput.data, workspace: workspace)
        for i in scaled.indices { scaled[i] *= scale }
        return LayerGradients(inputs: [gradOutput, Tensor(shape: gradOutput.shape, data: scaled)], weights: [:])
    }
}
