import LAQFormat

/// keras_hub's `BertBackbone`:
///
///     x = LN(token_embedding(token_ids) + position_embedding(…) + segment_embedding(segment_ids)), ε = 1e-12
///     x = Dropout(x), then num_layers post-norm TransformerEncoder blocks (GELU, tanh approximation; ε = 1e-12)
///     outputs: sequence_output = x,  pooled_output = tanh(Dense(x[:, 0, :]))
///
/// Inputs `token_ids`, `segment_ids`, `padding_mask` (B, T), integers.
struct BertBackbone: KerasHubBackbone {
    let sizes: TransformerBackboneSizes
    let segments: Int

    init(_ options: LayerOptions) throws(ModelError) {
        sizes = try TransformerBackboneSizes(options, maxSequenceLength: 512)
        segments = try options.int("num_segments", default: 2, min: 1, max: LayerOptions.maxDimension)
    }

    func build(_ graph: inout GraphBuilder) throws(ModelError) -> [(name: String, tensor: TensorRef)] {
        let hidden = JSONValue.int(Int64(sizes.hidden))
        let tokenIds = graph.input("token_ids", shape: [nil], dtype: "int32")
        let tokens = graph.add("token_embedding", "ReversibleEmbedding", ["input_dim": .int(Int64(sizes.vocabularySize)), "output_dim": hidden], inputs: [tokenIds])
        let segmentIds = graph.input("segment_ids", shape: [nil], dtype: "int32")
        let positions = graph.add("position_embedding", "PositionEmbedding", module: KerasHub.positionEmbeddingModule, registeredName: "keras_hub>PositionEmbedding",
                                  ["sequence_length": .int(Int64(sizes.maxSequenceLength))], inputs: [tokens])
        let segmentVectors = graph.add("segment_embedding", "Embedding", ["input_dim": .int(Int64(segments)), "output_dim": hidden], inputs: [segmentIds])
        var x = graph.add("embeddings_add", "Add", [:], inputs: [tokens, positions, segmentVectors])
        x = graph.add("embeddings_layer_norm", "LayerNormalization", ["axis": -1, "epsilon": 1e-12], inputs: [x])
        x = graph.add("embeddings_dropout", "Dropout", ["rate": .double(sizes.dropout)], inputs: [x])
        let paddingMask = graph.input("padding_mask", shape: [nil], dtype: "int32")
        x = try sizes.stack(&graph, x, paddingMask: paddingMask, role: .encoder, config: sizes.block(activation: "gelu_approximate", epsilon: 1e-12))
        let all: JSONValue = ["class_name": "__slice__", "config": ["start": .null, "stop": .null, "step": .null]]
        let first = graph.operation("get_item", "GetItem", module: "keras.src.ops.numpy", [:], input: x, constants: [[all, 0, all]])
        let pooled = graph.add("pooled_dense", "Dense", ["units": hidden, "activation": "tanh"], inputs: [first])
        return [("pooled_output", pooled), ("sequence_output", x)]
    }
}
