import LAQFormat

/// Keras' `Add`, `Subtract` and `Multiply`, element by element over inputs of one shape.
public struct MergeLayer: LayerKind {
    let kind: MergeOp.Kind

    public init(_ options: LayerOptions) throws(ModelError) {
        switch options.className {
        case "Subtract": kind = .subtract
        case "Multiply": kind = .multiply
        default: kind = .add
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        guard inputs.count >= 2 else { throw .shapeMismatch(layer: layer, reason: "needs at least two inputs") }
        if kind == .subtract, inputs.count != 2 { throw .shapeMismatch(layer: layer, reason: "Subtract needs exactly two inputs") }
        let first = inputs[0]
        for other in inputs.dropFirst() where other.count != first.count || zip(other, first).contains(where: { $0 != nil && $1 != nil && $0 != $1 }) {
            throw .shapeMismatch(layer: layer, reason: "shapes \(first) and \(other) differ")
        }
        return first
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { MergeOp(name: context.layer.name, kind: kind) }
}

/// The merges' computation.
struct MergeOp: Op {
    enum Kind: Sendable { case add, subtract, multiply }
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
