import LAQFormat

/// Keras' `InputLayer`: a model input, of `batch_shape` (Keras 3) or `batch_input_shape`.
public struct InputLayerKind: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let shape: Shape

    public init(_ options: LayerOptions) throws(ModelError) {
        guard case let .array(items)? = options.value("batch_shape") ?? options.value("batch_input_shape"), !items.isEmpty else {
            throw .shapeMismatch(layer: options.layer, reason: "InputLayer needs a batch_shape of rank ≥ 1")
        }
        var shape: Shape = []
        for item in items {
            switch item {
            case .null: shape.append(nil)
            case let .int(value) where value >= 0 && value <= LayerOptions.maxDimension: shape.append(Int(value))
            default:
                throw .shapeMismatch(layer: options.layer, reason: "InputLayer needs a batch_shape of rank ≥ 1 with dimensions in 0…\(LayerOptions.maxDimension)")
            }
        }
        self.shape = shape
        try options.expectDefault("sparse", .bool(false), "sparse inputs")
        try options.expectDefault("ragged", .bool(false), "ragged inputs")
        options.ignore("optional", "input_tensor")
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { shape }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { IdentityOp() }
}

/// The identity.
struct IdentityOp: Op {
    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { tensors[0] }
}

extension IdentityOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [gradOutput], weights: [:])
    }
}
