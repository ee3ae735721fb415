import LAQFormat

/// A keras_hub backbone class. Its files store the constructor's arguments, not its layers
/// (`{"class_name": "BertBackbone", "config": {"num_layers": 12, …}}`): laq rebuilds the layer
/// graph from them as keras_hub's constructor does, from the layer kinds laq executes, with
/// keras_hub's layer names (its weights files find variables by them) in the order of Keras'
/// `model.layers`. One type per class, registered in ``LayerRegistry/backbones``.
protocol KerasHubBackbone: Sendable {
    /// Parses the constructor arguments, with keras_hub's defaults.
    init(_ options: LayerOptions) throws(ModelError)

    /// Adds the backbone's layers to `graph`; returns its outputs by the names Keras gives them
    /// (a dict's keys), in Keras' order (sorted keys).
    func build(_ graph: inout GraphBuilder) throws(ModelError) -> [(name: String, tensor: TensorRef)]
}

enum KerasHub {
    static let positionEmbeddingModule = "keras_hub.src.layers.modeling.position_embedding"

    /// The graph of a keras_hub backbone's config; nil when `modelConfig` is not one. Legacy
    /// `.h5` files write no module: a backbone's class name stands for keras_hub's class there.
    static func graph(_ modelConfig: JSONValue) throws(ModelError) -> KerasArchitecture.Graph? {
        let className = modelConfig["class_name"]?.stringValue ?? ""
        let module = modelConfig["module"]?.stringValue
        if let module {
            guard module.hasPrefix("keras_hub.") || module.hasPrefix("keras_nlp.") else { return nil }
        } else if LayerRegistry.backbones[className] == nil {
            return nil
        }
        guard let type = LayerRegistry.backbones[className], module == nil || module!.hasPrefix("keras_hub.src.models."),
              [nil, "keras_hub>\(className)"].contains(modelConfig["registered_name"]?.stringValue) else {
            throw .unsupportedModel(className: className, module: module)
        }
        let config = modelConfig["config"] ?? .null
        let name = config["name"]?.stringValue ?? ""
        let options = LayerOptions(layer: name, className: className, config: config)
        let backbone = try type.init(options)
        try options.finish()
        var builder = GraphBuilder()
        let outputs = try backbone.build(&builder)
        let inputs = builder.layers.filter { $0.inbound.isEmpty }.map { TensorRef(layer: $0.name) }.sorted { $0.layer < $1.layer }
        return KerasArchitecture.Graph(name: name, layers: builder.layers, inputs: inputs, outputs: outputs.map(\.tensor), outputNames: outputs.map(\.name))
    }
}

/// The constructor arguments BERT, DistilBERT and GPT-2 share.
struct TransformerBackboneSizes {
    let vocabularySize: Int
    let layers: Int
    let heads: Int
    let hidden: Int
    let intermediate: Int
    let dropout: Double
    let maxSequenceLength: Int

    init(_ options: LayerOptions, maxSequenceLength fallback: Int) throws(ModelError) {
        vocabularySize = try options.int("vocabulary_size", min: 1, max: LayerOptions.maxDimension)
        layers = try options.int("num_layers", min: 0, max: 4096)
        heads = try options.int("num_heads", min: 1)
        hidden = try options.int("hidden_dim", min: 1)
        intermediate = try options.int("intermediate_dim", min: 1)
        dropout = try options.double("dropout", default: 0.1)
        guard dropout >= 0, dropout < 1 else { throw options.invalid("dropout", "a rate in [0, 1)") }
        maxSequenceLength = try options.int("max_sequence_length", default: fallback, min: 1, max: LayerOptions.maxDimension)
        guard hidden >= heads else { throw options.invalid("hidden_dim", "at least num_heads (\(heads))") }
    }

    /// The config keras_hub passes each of the backbone's transformer blocks.
    func block(activation: String, epsilon: Double, normalizeFirst: Bool = false) -> JSONValue {
        ["intermediate_dim": .int(Int64(intermediate)), "num_heads": .int(Int64(heads)), "dropout": .double(dropout),
         "activation": .string(activation), "layer_norm_epsilon": .double(epsilon), "normalize_first": .bool(normalizeFirst)]
    }

    /// `count` transformer blocks `transformer_layer_0…` applied in turn to `input`.
    func stack(_ graph: inout GraphBuilder, _ input: TensorRef, paddingMask: TensorRef, role: TransformerBlock.Role, config: JSONValue) throws(ModelError) -> TensorRef {
        var x = input
        for index in 0..<layers {
            let name = "transformer_layer_\(index)"
            let block = try TransformerBlock(LayerOptions(layer: name, className: role == .encoder ? "TransformerEncoder" : "TransformerDecoder", config: config), role: role)
            x = try graph.block(name) { (graph: inout GraphBuilder) throws(ModelError) in
                try block.build(&graph, input: x, hidden: hidden, paddingMask: paddingMask)
            }
        }
        return x
    }
}
