import LAQFormat

/// Keras' `ReversibleEmbedding` (keras_hub's before Keras 3.13): an ``EmbeddingLayer`` whose
/// table can also project hidden states back to logits (`reverse=True`, for language-model
/// heads). With `tie_weights` false it has a second table, `reverse_embeddings`
/// (output_dim, input_dim), used only by that projection. laq executes the embedding call;
/// reverse calls are refused, so `reverse_dtype` and `logit_soft_cap` change nothing here.
public struct ReversibleEmbeddingLayer: LayerKind {
    let embedding: EmbeddingLayer
    let tied: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        embedding = try EmbeddingLayer(options)
        if embedding.quantization != nil { throw options.unsupported("Keras' quantization of ReversibleEmbedding (model.quantize)") }
        tied = try options.bool("tie_weights", default: true)
        options.ignore("reverse_dtype", "logit_soft_cap")
        switch options.callKeyword("reverse") {
        case nil, .bool(false)?: break
        case let other?: throw options.unsupported("reverse=\(LayerOptions.describe(other)) (the logits projection)")
        }
    }

    public var weights: [WeightSpec] {
        embedding.weights + (tied ? [] : [WeightSpec("reverse_embeddings", axes: ["out", "token"])])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        try embedding.outputShape(inputs, layer: layer)
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes = embedding.weightShapes(inputs)
        if !tied { shapes["reverse_embeddings"] = [embedding.outputDim, embedding.inputDim] }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try EmbeddingOp(context) }

    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool {
        try embedding.carriesMask(masked, layer: layer, keras3: keras3)
    }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? {
        try embedding.outputMask(inputs, masks: masks, keras3: keras3)
    }
}
