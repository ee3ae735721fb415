import LAQFormat

/// Add, Subtract, Multiply over inputs of one shape.
struct MergeOp: Op {
    enum Kind { case add, subtract, multiply }
    let name: String
    let kind: Kind

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var result = tensors[0]
        result.data = Matrix.copy(result.data, workspace: workspace)
        for other in tensors.dropFirst() {
            guard other.shape == result.shape else { throw .shape(layer: name, reason: "shapes \(result.shape) and \(other.shape) differ") }
            for i in result.data.indices {
                switch kind {
                case .add: result.data[i] += other.data[i]
                case .subtract: result.data[i] -= other.data[i]
                case .multiply: result.data[i] *= other.data[i]
                }
            }
        }
        return result
    }
}

extension MergeOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let inputs = record.inputs
        switch kind {
        case .add:
            return LayerGradients(inputs: inputs.map { _ in gradOutput }, weights: [:])
        case .subtract:
            var negative = Tensor(shape: gradOutput.shape, data: Matrix.copy(gradOutput.data, workspace: workspace))
            for i in negative.data.indices { negative.data[i] = -negative.data[i] }
            return LayerGradients(inputs: [gradOutput, negative], weights: [:])
        case .multiply:
            let grads = inputs.indices.map { index -> Tensor? in
                var grad = Tensor(shape: gradOutput.shape, data: Matrix.copy(gradOutput.data, workspace: workspace))
                for (other, tensor) in inputs.enumerated() where other != index {
                    for i in grad.data.indices { grad.data[i] *= tensor.data[i] }
                }
                return grad
            }
            return LayerGradients(inputs: grads, weights: [:])
        }
    }
}
