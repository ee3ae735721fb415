import LAQFormat

/// Keras' `Flatten`: (batch, …) → (batch, product of the rest).
public struct FlattenLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    public init(_ options: LayerOptions) throws(ModelError) {
        // Flattening channels-last and channels-first orders differ only for inputs laq refuses.
        options.ignore("data_format")
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard let first = input.first else { throw .shapeMismatch(layer: layer, reason: "Flatten needs a batch dimension") }
        let rest = Array(input.dropFirst())
        if rest.contains(where: { $0 == nil }) { return [first, nil] }
        guard let product = ShapeRules.checkedProduct(rest.map { $0! }) else { throw .shapeMismatch(layer: layer, reason: "flattened size overflows") }
        return [first, product]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ReshapeOp(name: context.layer.name, target: nil) }
}

/// Keras' `Reshape`: the same values in `target_shape` (batch kept; one -1 is inferred).
public struct ReshapeLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let target: [Int]

    public init(_ options: LayerOptions) throws(ModelError) {
        guard case let .array(items)? = options.value("target_shape") else { throw options.unsupported("a Reshape without target_shape") }
        var target: [Int] = []
        for item in items {
            guard case let .int(value) = item, value >= -1, value <= LayerOptions.maxDimension else {
                throw .shapeMismatch(layer: options.layer, reason: "target_shape needs dimensions ≥ 0 and at most one -1")
            }
            target.append(Int(value))
        }
        guard target.filter({ $0 == -1 }).count <= 1 else {
            throw .shapeMismatch(layer: options.layer, reason: "target_shape needs dimensions ≥ 0 and at most one -1")
        }
        self.target = target
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard let first = input.first else { throw .shapeMismatch(layer: layer, reason: "Reshape needs a batch dimension") }
        var target: Shape = self.target.map { $0 }
        let rest = Array(input.dropFirst())
        let known = rest.allSatisfy { $0 != nil } ? ShapeRules.checkedProduct(rest.map { $0! }) : nil
        if let unknown = self.target.firstIndex(of: -1) {
            let others = self.target.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            target[unknown] = known.map { others > 0 ? $0 / others : 0 }
        }
        if let known, target.allSatisfy({ $0 != nil }), ShapeRules.checkedProduct(target.map { $0! }) != known {
            throw .shapeMismatch(layer: layer, reason: "cannot reshape \(rest) to \(target)")
        }
        return [first] + target
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ReshapeOp(name: context.layer.name, target: target) }
}

/// Flatten's and Reshape's computation: the same values, a new shape.
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
