import LAQFormat

/// Keras' `Embedding`: integer indices (given as float values) → rows of the table
/// (input_dim, output_dim). One Keras quantized to int8 (``KerasQuantization``) stores int8
/// codes and an `embeddings_scale` per row: a row is its codes / its scale.
public struct EmbeddingLayer: LayerKind {
    let inputDim: Int
    let outputDim: Int
    /// Index 0 is padding: the output carries a mask of the other positions (``Masking``).
    let maskZero: Bool
    let quantization: KerasQuantization?

    public init(_ options: LayerOptions) throws(ModelError) {
        inputDim = try options.int("input_dim", min: 1, max: LayerOptions.maxDimension)
        outputDim = try options.int("output_dim", min: 1)
        maskZero = try options.bool("mask_zero", default: false)
        try options.expectDefault("lora_rank", .null, "LoRA (lora_rank)")
        quantization = try options.kerasQuantization()
        options.ignore("input_length", "sparse")  // tf.keras: documentation only; sparse gradients
    }

    public var weights: [WeightSpec] {
        guard quantization != nil else { return [WeightSpec("embeddings", quantizable: true, axes: ["token", "out"])] }
        return [WeightSpec("embeddings", trainable: false, axes: ["token", "out"], integerCodes: true),
                WeightSpec("embeddings_scale", trainable: false, axes: ["token"])]
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) + [outputDim] }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { ["embeddings": [inputDim, outputDim], "embeddings_scale": [inputDim]] }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try EmbeddingOp(context, quantized: quantization != nil) }

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

    /// `quantized`: the table holds Keras' int8 codes, each row to be divided by its
    /// `embeddings_scale`, as Keras divides in float32 (the quotients are taken here, once).
    init(_ context: OpContext, quantized: Bool = false) throws(EngineError) {
        name = context.layer.name
        let embeddings = try context.weight("embeddings")
        guard embeddings.shape.count == 2 else { throw .shape(layer: name, reason: "embeddings must be 2-D") }
        var table = embeddings.values
        rows = embeddings.shape[0]
        width = embeddings.shape[1]
        if quantized {
            let scales = try context.weight("embeddings_scale").values
            guard scales.count == rows else { throw .shape(layer: name, reason: "\(scales.count) scales for \(rows) rows") }
            for index in table.indices {
                guard Int8(exactly: table[index]) != nil else { throw .shape(layer: name, reason: "value \(table[index]) at \(index) is not an int8 code") }
                table[index] /= scales[index / width]
            }
        }
        self.table = table
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
