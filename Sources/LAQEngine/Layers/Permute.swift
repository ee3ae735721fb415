import LAQFormat

/// Permute: reorders the non-batch axes (`dims` is 1-based, as in Keras).
public struct PermuteLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    /// 1-based, as in Keras.
    let order: [Int]

    public init(_ options: LayerOptions) throws(ModelError) {
        guard case let .array(items)? = options.value("dims") else { throw options.unsupported("a Permute without dims") }
        order = items.compactMap { if case let .int(v) = $0 { Int(v) } else { nil } }
        guard order.count == items.count, Set(order) == Set(1..<(order.count + 1)) else {
            throw .shapeMismatch(layer: options.layer, reason: "dims must be a permutation of 1…\(max(items.count, 1))")
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == order.count + 1 else {
            throw .shapeMismatch(layer: layer, reason: "dims must be a permutation of 1…\(max(input.count - 1, 1))")
        }
        return [input[0]] + order.map { input[$0] }
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { PermuteOp(name: context.layer.name, order: order) }
}

/// Permute's computation.
struct PermuteOp: Op {
    let name: String
    let order: [Int]

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let full = [0] + order
        guard full.count == x.rank else { throw .shape(layer: name, reason: "dims do not match rank \(x.rank)") }
        let outShape = full.map { x.shape[$0] }
        var inStrides = [Int](repeating: 1, count: x.rank)
        for axis in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[axis] = inStrides[axis + 1] * x.shape[axis + 1] }
        let permutedStrides = full.map { inStrides[$0] }
        var output = Matrix.uninitialized(x.count, workspace: workspace)  // every element written below
        var index = [Int](repeating: 0, count: x.rank)
        for out in 0..<x.count {
            var source = 0
            for axis in 0..<x.rank { source += index[axis] * permutedStrides[axis] }
            output[out] = x.data[source]
            var axis = x.rank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < outShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return Tensor(shape: outShape, data: output)
    }
}

extension PermuteOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        // The inverse permutation of the non-batch axes.
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, axis) in order.enumerated() { inverse[axis - 1] = position + 1 }
        let back = try PermuteOp(name: name, order: inverse).forward([gradOutput], workspace: workspace)
        return LayerGradients(inputs: [back], weights: [:])
    }
}
