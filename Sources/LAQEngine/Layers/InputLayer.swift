import LAQFormat

/// Identity in inference (Dropout, InputLayer).
struct IdentityOp: Op {
    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { tensors[0] }
}

extension IdentityOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [gradOutput], weights: [:])
    }
}
