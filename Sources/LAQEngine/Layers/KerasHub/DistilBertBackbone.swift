import LAQFormat

/// keras_hub's `DistilBertBackbone`:
///
///     x = Dropout(LN(TokenAndPositionEmbedding(token_ids))), ε = 1e-12
///     then num_layers post-norm TransformerEncoder blocks (exact GELU, ε = 1e-12); output x
///
/// Inputs `token_ids`, `padding_mask` (B, T), integers.
struct DistilBertBackbone: KerasHubBackbone {
    let sizes: TransformerBackboneSizes

    init(_ options: LayerOptions) throws(ModelError) {
        sizes = try TransformerBackboneSizes(options, maxSequenceLength: 512)
    }

    func build(_ graph: inout GraphBuilder) throws(ModelError) -> [(name: String, tensor: TensorRef)] {
        let tokenIds = graph.input("token_ids", shape: [nil], dtype: "int32")
        let embedding = try TokenAndPositionEmbeddingBlock(LayerOptions(layer: "token_and_position_embedding", className: "TokenAndPositionEmbedding", config: [
            "vocabulary_size": .int(Int64(sizes.vocabularySize)), "sequence_length": .int(Int64(sizes.maxSequenceLength)),
            "embedding_dim": .int(Int64(sizes.hidden)),
        ]))
        var x = try graph.block("token_and_position_embedding") { (graph: inout GraphBuilder) throws(ModelError) in embedding.build(&graph, input: tokenIds) }
        x = graph.add("embeddings_layer_norm", "LayerNormalization", ["axis": -1, "epsilon": 1e-12], inputs: [x])
        x = graph.add("embeddings_dropout", "Dropout", ["rate": .double(sizes.dropout)], inputs: [x])
        let paddingMask = graph.input("padding_mask", shape: [nil], dtype: "int32")
        x = try sizes.stack(&graph, x, paddingMask: paddingMask, role: .encoder, config: sizes.block(activation: "gelu", epsilon: 1e-12))
        return [("sequence_output", x)]
    }
}
