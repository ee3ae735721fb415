import LAQFormat

/// Keras' `Embedding`: integer indices (given as float values) → rows of the table
/// (input_dim, output_dim).
public struct EmbeddingLayer: LayerKind {
    let inputDim: Int
    let outputDim: Int
    /// Index 0 is padding: the output carries a mask of the other positions (``Masking``).
    let maskZero: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        inputDim = try options.int("input_dim", min: 1, max: LayerOptions.maxDimension)
        outputDim = try options.int("output_dim", min: 1)
        maskZero = try options.bool("mask_zero", default: false)
        try options.expectDefault("lora_rank", .null, "LoRA (lora_rank)")
        try options.expectDefault("quantization_config", .null, "a Keras quantization config")
        options.ignore("input_length", "sparse")  // tf.keras: documentation only; sparse gradients
    }

    public var weights: [WeightSpec] { [WeightSpec("embeddings", quantizable: true, axes: ["token", "out"])] }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) + [outputDim] }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { ["embeddings": [inputDim, outputDim]] }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try EmbeddingOp(context) }

    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { maskZero }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? {
        guard maskZero else { return nil }
        return Tensor(shape: inputs[0].shape, data: inputs[0].data.map { $0 != 0 ? 1 : 0 })
    }
}

/// Embedding's computation.
struct EmbeddingOp: Op {
    let name: String
    let table: [Float]
    let rows: Int
    let width: Int

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        let embeddings = try context.weight("embeddings")
        guard embeddings.shape.count == 2 else { throw .shape(layer: name, reason: "embeddings must be 2-D") }
        table = embeddings.values
        rows = embeddings.shape[0]
        width = embeddings.shape[1]
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        var output = Matrix.uninitialized(x.count * width, workspace: workspace)  // every element written below (or thrown)
        for (i, value) in x.data.enumerated() {
            guard let index = Int(exactly: value), index >= 0, index < rows else {
                throw .badInput(name: name, reason: "index \(value) at position \(i) is not an integer in 0…\(rows - 1)")
            }
            for j in 0..<width { output[i * width + j] = table[index * width + j] }
        }
        return Tensor(shape: x.shape + [width], data: output)
    }
}

extension EmbeddingOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        var dTable = workspace.zeros(table.count)
        for (i, value) in record.inputs[0].data.enumerated() {
            let row = Int(value)
            for j in 0..<width { dTable[row * width + j] += gradOutput.data[i * width + j] }
        }
        return LayerGradients(inputs: [nil], weights: ["embeddings": dTable])
    }
}
