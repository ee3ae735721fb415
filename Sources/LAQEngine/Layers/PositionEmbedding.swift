import LAQFormat

/// keras_hub's `PositionEmbedding`: a learned vector per position, `embeddings` of shape
/// (sequence_length, features). For an input (B, T, F) the output is (B, T, F) with
/// y[b, t] = embeddings[t]: it depends on the input's shape only (T ≤ sequence_length), so no
/// gradient flows to the input. Calls that pass `start_index` or `positions` (decoding with a
/// cache) are refused.
public struct PositionEmbeddingLayer: LayerKind {
    let sequenceLength: Int

    public init(_ options: LayerOptions) throws(ModelError) {
        sequenceLength = try options.int("sequence_length", min: 1, max: LayerOptions.maxDimension)
        options.ignore("initializer")
        switch options.callKeyword("start_index") {
        case nil, .int(0)?: break
        case let other?: throw options.unsupported("start_index=\(LayerOptions.describe(other))")
        }
        if options.callKeyword("positions") != nil { throw options.unsupported("positions=") }
    }

    public var weights: [WeightSpec] { [WeightSpec("embeddings", quantizable: true, axes: ["position", "out"])] }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count >= 3 else { throw .shapeMismatch(layer: layer, reason: "expects (batch, sequence, features) input, got rank \(input.count)") }
        if let length = input[input.count - 2], length > sequenceLength {
            throw .shapeMismatch(layer: layer, reason: "sequences of \(length) positions, sequence_length \(sequenceLength)")
        }
        return input
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard let features = inputs.first?.last ?? nil else { return [:] }
        return ["embeddings": [sequenceLength, features]]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        let embeddings = try context.weight("embeddings")
        guard embeddings.shape.count == 2 else { throw .shape(layer: context.layer.name, reason: "embeddings must be 2-D") }
        return PositionEmbeddingOp(name: context.layer.name, table: embeddings.values, positions: embeddings.shape[0], width: embeddings.shape[1])
    }
}

/// PositionEmbedding's computation.
struct PositionEmbeddingOp: Op, TrainableOp {
    let name: String
    let table: [Float]
    let positions: Int
    let width: Int

    /// The sequence length of an input (B, …, T, F) and the number of (T, F) blocks in it.
    func blocks(_ x: Tensor) throws(EngineError) -> (length: Int, count: Int) {
        guard x.shape.count >= 3, x.lastDimension == width else {
            throw .shape(layer: name, reason: "input \(x.shape) for position embeddings of width \(width)")
        }
        let length = x.shape[x.shape.count - 2]
        guard length <= positions else { throw .badInput(name: name, reason: "a sequence of \(length) positions, at most \(positions)") }
        return (length, length * width == 0 ? 0 : x.count / (length * width))
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let (length, count) = try blocks(x)
        let block = length * width
        var output = Matrix.uninitialized(x.count, workspace: workspace)  // every block written below
        for index in 0..<count { Matrix.copy(table, into: &output, at: index * block, count: block) }
        return Tensor(shape: x.shape, data: output)
    }

    /// ∂L/∂embeddings[t] = Σ over the batch of ∂L/∂y[b, t]; rows past the sequence get zero.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let (length, count) = try blocks(record.inputs[0])
        let block = length * width
        var dTable = workspace.zeros(table.count)
        for index in 0..<count {
            for i in 0..<block { dTable[i] += gradOutput.data[index * block + i] }
        }
        return LayerGradients(inputs: [nil], weights: ["embeddings": dTable])
    }
}
