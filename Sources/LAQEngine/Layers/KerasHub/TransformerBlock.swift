import LAQFormat

/// keras_hub's `TransformerEncoder` and `TransformerDecoder` (without cross-attention) as the
/// Keras layers they are made of, built into a graph (``GraphBuilder``) where a backbone calls
/// them. For an input x (B, T, D) with H heads:
///
///     m  = padding_mask[:, None, :]                         (B, 1, T): keys a query may attend to
///     a  = MultiHeadAttention(H, key_dim = D / H, dropout)(query = x′, value = x′, attention_mask = m)
///     post-norm (default):      x₁ = LN₁(x + Dropout(a)),   y = LN₂(x₁ + Dropout(FF(x₁)))
///     pre-norm (normalize_first): a on x′ = LN₁(x): x₁ = x + Dropout(a),   y = x₁ + Dropout(FF(LN₂(x₁)))
///     FF(z) = W₂·act(W₁·z + b₁) + b₂                        (D → intermediate_dim → D)
///
/// The decoder's self-attention is also causal (query t attends to keys s ≤ t), which Keras'
/// `use_causal_mask` combines with m as keras_hub's `minimum(m, causal)` does. The sub-layers
/// keep keras_hub's names and the attributes its files store them under
/// (`self_attention_layer` in `_self_attention_layer`, …), added in the order keras_hub builds
/// them, which is the order of Keras' `trainable_variables` (optimizer state is matched by it).
struct TransformerBlock {
    enum Role: Sendable { case encoder, decoder }

    let role: Role
    let intermediateDim: Int
    let heads: Int
    let dropout: Double
    let activation: String
    let epsilon: Double
    let normalizeFirst: Bool

    /// Parses a `TransformerEncoder` or `TransformerDecoder` config, with keras_hub's defaults.
    init(_ options: LayerOptions, role: Role) throws(ModelError) {
        self.role = role
        intermediateDim = try options.int("intermediate_dim", min: 1)
        heads = try options.int("num_heads", min: 1)
        dropout = try options.double("dropout", default: 0)
        guard dropout >= 0, dropout < 1 else { throw options.invalid("dropout", "a rate in [0, 1)") }
        activation = try options.activation(default: "relu")
        epsilon = try options.double("layer_norm_epsilon", default: 1e-5)
        guard epsilon > 0, epsilon.isFinite else { throw options.invalid("layer_norm_epsilon", "a positive number") }
        normalizeFirst = try options.bool("normalize_first", default: false)
    }

    /// Adds the block's layers to `graph` (inside the block's scope) for a call on `input` of
    /// width `hidden`, with keras_hub's `padding_mask` and `attention_mask` (the decoder's
    /// `decoder_…`) when given, merged as keras_hub does (min(m, attention_mask)); `causal`: the
    /// decoder's `use_causal_mask`. Returns the block's output.
    func build(_ graph: inout GraphBuilder, input: TensorRef, hidden: Int, paddingMask: TensorRef?, attentionMask: TensorRef? = nil,
               causal: Bool? = nil) throws(ModelError) -> TensorRef {
        let headSize = hidden / heads
        guard headSize > 0 else {
            throw .shapeMismatch(layer: graph.scope.joined(separator: "/"), reason: "hidden size \(hidden) for \(heads) heads: the key size would be 0")
        }
        let scope = graph.scope
        func ref(_ name: String) -> TensorRef { TensorRef(layer: (scope + [name]).joined(separator: "/")) }
        var mask = paddingMask.map {
            graph.operation("self_attention_padding_mask", "ExpandDims", module: "keras.src.ops.numpy", ["axis": 1], input: $0)
        }
        if let attentionMask {
            mask = mask.map { graph.operation("self_attention_mask", "Minimum", module: "keras.src.ops.numpy", [:], inputs: [$0, attentionMask]) } ?? attentionMask
        }
        let attention = role == .encoder ? "self_attention_layer" : "self_attention"
        let normalization: [String: JSONValue] = ["axis": -1, "epsilon": .double(epsilon)]
        // The attention's input, and the residual sum with its (post-norm: normalized) output.
        let attentionInput = normalizeFirst ? ref("self_attention_layer_norm") : input
        let attended = normalizeFirst ? ref("self_attention_residual") : ref("self_attention_layer_norm")
        let feedforwardInput = normalizeFirst ? ref("feedforward_layer_norm") : attended
        graph.add(attention, "MultiHeadAttention", ["num_heads": .int(Int64(heads)), "key_dim": .int(Int64(headSize)), "dropout": .double(dropout)],
                  inputs: [attentionInput, attentionInput] + (mask.map { [$0] } ?? []),
                  keywords: causal ?? (role == .decoder) ? ["use_causal_mask": true] : [:],
                  tensorKeywords: mask == nil ? [] : ["attention_mask"], attribute: "_self_attention_layer")
        graph.add("self_attention_layer_norm", "LayerNormalization", normalization,
                  inputs: [normalizeFirst ? input : ref("self_attention_residual")], attribute: "_self_attention_layer_norm")
        graph.add("self_attention_dropout", "Dropout", ["rate": .double(dropout)], inputs: [ref(attention)], attribute: "_self_attention_dropout")
        graph.add("self_attention_residual", "Add", [:], inputs: [ref("self_attention_dropout"), input])
        func feedforwardNorm(_ graph: inout GraphBuilder) {
            graph.add("feedforward_layer_norm", "LayerNormalization", normalization,
                      inputs: [normalizeFirst ? attended : ref("feedforward_residual")], attribute: "_feedforward_layer_norm")
        }
        if role == .encoder { feedforwardNorm(&graph) }
        graph.add("feedforward_intermediate_dense", "Dense", ["units": .int(Int64(intermediateDim)), "activation": .string(activation)],
                  inputs: [feedforwardInput], attribute: "_feedforward_intermediate_dense")
        graph.add("feedforward_output_dense", "Dense", ["units": .int(Int64(hidden))],
                  inputs: [ref("feedforward_intermediate_dense")], attribute: "_feedforward_output_dense")
        if role == .decoder { feedforwardNorm(&graph) }
        graph.add("feedforward_dropout", "Dropout", ["rate": .double(dropout)], inputs: [ref("feedforward_output_dense")], attribute: "_feedforward_dropout")
        let output = graph.add("feedforward_residual", "Add", [:], inputs: [ref("feedforward_dropout"), attended])
        return normalizeFirst ? output : ref("feedforward_layer_norm")
    }
}

/// keras_hub's `TokenAndPositionEmbedding`: y = token_embedding(ids) + position_embedding(…),
/// a ``ReversibleEmbeddingLayer`` (`token_embedding`) and a ``PositionEmbeddingLayer``
/// (`position_embedding`) in the block's group.
struct TokenAndPositionEmbeddingBlock {
    let vocabularySize: Int
    let sequenceLength: Int
    let embeddingDim: Int
    let tieWeights: Bool

    init(_ options: LayerOptions) throws(ModelError) {
        vocabularySize = try options.int("vocabulary_size", min: 1, max: LayerOptions.maxDimension)
        sequenceLength = try options.int("sequence_length", min: 1, max: LayerOptions.maxDimension)
        embeddingDim = try options.int("embedding_dim", min: 1)
        tieWeights = try options.bool("tie_weights", default: true)
    }

    func build(_ graph: inout GraphBuilder, input: TensorRef) -> TensorRef {
        let tokens = graph.add("token_embedding", "ReversibleEmbedding",
                               ["input_dim": .int(Int64(vocabularySize)), "output_dim": .int(Int64(embeddingDim)), "tie_weights": .bool(tieWeights)],
                               inputs: [input], attribute: "token_embedding")
        let positions = graph.add("position_embedding", "PositionEmbedding", module: KerasHub.positionEmbeddingModule,
                                  registeredName: "keras_hub>PositionEmbedding", ["sequence_length": .int(Int64(sequenceLength))],
                                  inputs: [tokens], attribute: "position_embedding")
        return graph.add("embeddings_sum", "Add", [:], inputs: [tokens, positions])
    }
}
