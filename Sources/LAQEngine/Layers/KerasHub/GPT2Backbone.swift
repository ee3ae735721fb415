import LAQFormat

/// keras_hub's `GPT2Backbone`:
///
///     x = Dropout(token_embedding(token_ids) + position_embedding(…))
///     then num_layers pre-norm causal TransformerDecoder blocks (GELU, tanh approximation; ε = 1e-5)
///     output: LN(x), ε = 1e-5
///
/// Inputs `token_ids`, `padding_mask` (B, T), integers.
struct GPT2Backbone: KerasHubBackbone {
    let sizes: TransformerBackboneSizes

    init(_ options: LayerOptions) throws(ModelError) {
        sizes = try TransformerBackboneSizes(options, maxSequenceLength: 1024)
    }

    func build(_ graph: inout GraphBuilder) throws(ModelError) -> [(name: String, tensor: TensorRef)] {
        let tokenIds = graph.input("token_ids", shape: [nil], dtype: "int32")
        let tokens = graph.add("token_embedding", "ReversibleEmbedding",
                               ["input_dim": .int(Int64(sizes.vocabularySize)), "output_dim": .int(Int64(sizes.hidden))], inputs: [tokenIds])
        let positions = graph.add("position_embedding", "PositionEmbedding", module: KerasHub.positionEmbeddingModule, registeredName: "keras_hub>PositionEmbedding",
                                  ["sequence_length": .int(Int64(sizes.maxSequenceLength))], inputs: [tokens])
        var x = graph.add("embeddings_add", "Add", [:], inputs: [tokens, positions])
        x = graph.add("embeddings_dropout", "Dropout", ["rate": .double(sizes.dropout)], inputs: [x])
        let paddingMask = graph.input("padding_mask", shape: [nil], dtype: "int32")
        x = try sizes.stack(&graph, x, paddingMask: paddingMask, role: .decoder,
                            config: sizes.block(activation: "gelu_approximate", epsilon: 1e-5, normalizeFirst: true))
        let output = graph.add("layer_norm", "LayerNormalization", ["axis": -1, "epsilon": 1e-5], inputs: [x])
        return [("sequence_output", output)]
    }
}
