import LAQFormat

/// Keras' `Embedding`: integer indices (given as float values) → rows of the table
/// (input_dim, output_dim). One Keras quantized (``KerasQuantization``) stores integer codes
/// and an `embeddings_scale` per row: a row is its codes / its scale; with int4 groups along
/// the row, each group of a row has a scale s and a zero point z: (k − z)·s.
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
        guard let quantization else { return [WeightSpec("embeddings", quantizable: true, axes: ["token", "out"])] }
        let grouped = quantization.grouped
        return [WeightSpec("embeddings", trainable: false, axes: ["token", quantization.mode == .int8 ? "out" : "out/2"], integerCodes: true),
                WeightSpec("embeddings_scale", trainable: false, axes: grouped ? ["token", "group"] : ["token"])]
            + (grouped ? [WeightSpec("embeddings_zero", trainable: false, axes: ["token", "group"]), WeightSpec("g_idx", trainable: false, axes: ["out"])] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) + [outputDim] }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard let quantization else { return ["embeddings": [inputDim, outputDim]] }
        guard quantization.grouped else { return ["embeddings": [inputDim, quantization.packed(outputDim)], "embeddings_scale": [inputDim]] }
        let groups = quantization.groups(outputDim)
        return ["embeddings": [inputDim, quantization.packed(outputDim)], "embeddings_scale": [inputDim, groups],
                "embeddings_zero": [inputDim, groups], "g_idx": [outputDim]]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try EmbeddingOp(context, quantization: quantization, width: outputDim) }

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

    /// With Keras' `quantization`, the table holds its codes (rows of `width`), dequantized
    /// here once, in float32 as Keras does for each lookup.
    init(_ context: OpContext, quantization: KerasQuantization? = nil, width: Int? = nil) throws(EngineError) {
        name = context.layer.name
        let embeddings = try context.weight("embeddings")
        guard embeddings.shape.count == 2 else { throw .shape(layer: name, reason: "embeddings must be 2-D") }
        rows = embeddings.shape[0]
        guard let quantization, let width else {
            table = embeddings.values
            self.width = embeddings.shape[1]
            return
        }
        self.width = width
        let codes = try quantization.codes(embeddings, rows: rows, columns: width, layer: name)
        let scale = try context.weight("embeddings_scale").values
        var table = [Float](repeating: 0, count: codes.count)
        if quantization.grouped {
            // Groups of columns: E[r, c] = (k − z[r, g])·s[r, g], g = g_idx[c].
            let groups = quantization.groups(width)
            let zero = try context.weight("embeddings_zero").values
            guard scale.count == rows * groups, zero.count == rows * groups else {
                throw .shape(layer: name, reason: "\(scale.count) scales and \(zero.count) zero points for \(rows) rows of \(groups) groups")
            }
            let assignment = try quantization.groupIndices(context.weight("g_idx").values, count: width, groups: groups, layer: name)
            for (column, group) in assignment.enumerated() {
                for row in 0..<rows {
                    table[row * width + column] = (Float(codes[row * width + column]) - zero[row * groups + group]) * scale[row * groups + group]
                }
            }
        } else {
            guard scale.count == rows else { throw .shape(layer: name, reason: "\(scale.count) scales for \(rows) rows") }
            for index in codes.indices { table[index] = Float(codes[index]) / scale[index / width] }
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
