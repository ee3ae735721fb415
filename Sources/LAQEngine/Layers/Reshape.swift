import LAQFormat

/// Flatten and Reshape: the same values, a new shape (batch kept).
struct ReshapeOp: Op {
    let name: String
    /// nil: flatten; otherwise the target shape, with one -1 resolved per input.
    let target: [Int]?

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let batch = x.shape.first ?? 1
        let per = batch == 0 ? 0 : x.count / batch
        guard var target else { return Tensor(shape: [batch, per], data: x.data) }
        if let unknown = target.firstIndex(of: -1) {
            let rest = target.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            guard rest > 0, per % rest == 0 else { throw .shape(layer: name, reason: "cannot reshape \(x.shape) to \(target)") }
            target[unknown] = per / rest
        }
        guard target.reduce(1, *) == per else { throw .shape(layer: name, reason: "cannot reshape \(x.shape) to \(target)") }
        return Tensor(shape: [batch] + target, data: x.data)
    }
}

extension ReshapeOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [Tensor(shape: record.inputs[0].shape, data: gradOutput.data)], weights: [:])
    }
}
