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
        // keras_hub builds every block from the same arguments: parsed once.
        let block = try TransformerBlock(LayerOptions(layer: "transformer_layer_0", className: role == .encoder ? "TransformerEncoder" : "TransformerDecoder", config: config), role: role)
        var x = input
        for index in 0..<layers {
            let name = "transformer_layer_\(index)"
            x = try graph.block(name) { (graph: inout GraphBuilder) throws(ModelError) in
                try block.build(&graph, input: x, hidden: hidden, paddingMask: paddingMask)
            }
        }
        return x
    }
}

extension KerasHub {
    /// keras_hub's layer classes that laq builds from Keras layers when a model uses them, with
    /// the module keras_hub writes for each.
    static let blocks: [String: String] = [
        "TransformerEncoder": "keras_hub.src.layers.modeling.transformer_encoder",
        "TransformerDecoder": "keras_hub.src.layers.modeling.transformer_decoder",
        "TokenAndPositionEmbedding": "keras_hub.src.layers.modeling.token_and_position_embedding",
    ]

    /// The keras_hub block class of an architecture entry, or nil: module keras_hub's, or, in a
    /// legacy `.h5` (no module), the class under its registered name (`keras_hub>TransformerEncoder`;
    /// a bare `TransformerEncoder` there is a user's class, as the keras.io tutorials define).
    static func blockClass(_ entry: JSONValue) -> String? {
        var className = entry["class_name"]?.stringValue ?? ""
        let module = entry["module"]?.stringValue
        if module == nil {
            guard className.hasPrefix("keras_hub>") else { return nil }
            className = String(className.dropFirst("keras_hub>".count))
        }
        guard let expected = blocks[className], module == nil || module == expected,
              [nil, "keras_hub>\(className)"].contains(entry["registered_name"]?.stringValue) else { return nil }
        return className
    }

    /// The layers of a keras_hub block (`className`, ``blockClass(_:)``) that a model calls once
    /// on `inputs`, named `name/…`, and its output. What cannot be built is one
    /// ``UnsupportedKind`` layer named `name`, so that it is listed with the model's others.
    static func expand(_ entry: JSONValue, className: String, name: String, scope: [String], inbound: [[TensorRef]],
                       arguments: [CallArguments]) -> (layers: [Layer], output: TensorRef) {
        do throws(ModelError) {
            guard inbound.count == 1 else {
                throw ModelError.unsupportedOption(layer: name, className: className, option: inbound.isEmpty ? "a layer that is never called" : "a keras_hub layer called more than once")
            }
            let options = LayerOptions(layer: name, className: className, config: entry["config"] ?? .null, call: arguments.first ?? CallArguments())
            if options.call.maskInput != nil { throw options.unsupported("a tensor passed as mask=") }
            var graph = GraphBuilder(scope: scope + [String(name.split(separator: "/").last ?? "")])
            graph.maskFreeBlock = MaskFreeBlock(name: name, className: className)
            let inputs = inbound[0]
            let output: TensorRef
            if className == "TokenAndPositionEmbedding" {
                let block = try TokenAndPositionEmbeddingBlock(options)
                try options.expectDefault("mask_zero", .bool(false), "mask_zero (the mask it passes on)")
                switch options.callKeyword("start_index") {
                case nil, .int(0)?: break
                case let other?: throw options.unsupported("start_index=\(LayerOptions.describe(other))")
                }
                if options.callKeyword("positions") != nil { throw options.unsupported("positions=") }
                let slots = try options.tensorArguments(["inputs"])
                try options.finish()
                guard let slot = slots["inputs"], slot < inputs.count else { throw options.unsupported("a call without its input") }
                output = block.build(&graph, input: inputs[slot])
            } else {
                let role: TransformerBlock.Role = className == "TransformerEncoder" ? .encoder : .decoder
                let block = try TransformerBlock(options, role: role)
                var causal: Bool?
                let names: [String]
                if role == .decoder {
                    options.ignore("decoder_sequence_shape")  // the build shape, which the graph gives
                    try options.expectDefault("encoder_sequence_shape", .null, "cross-attention (encoder_sequence_shape)")
                    names = ["decoder_sequence", "encoder_sequence", "decoder_padding_mask", "decoder_attention_mask"]
                    switch options.callKeyword("use_causal_mask") {
                    case nil, .bool(true)?: causal = true
                    case .bool(false)?: causal = false
                    case let other?: throw options.unsupported("use_causal_mask=\(LayerOptions.describe(other))")
                    }
                } else {
                    names = ["inputs", "padding_mask", "attention_mask"]
                }
                switch options.callKeyword("return_attention_scores") {
                case nil, .bool(false)?: break
                default: throw options.unsupported("return_attention_scores (laq's layers have one output)")
                }
                let slots = try options.tensorArguments(names)
                if slots[names[1]] != nil, role == .decoder { throw options.unsupported("an encoder sequence (cross-attention)") }
                try options.finish()
                guard let slot = slots[names[0]], slot < inputs.count else { throw options.unsupported("a call without its input sequence") }
                // The input's width: the shape Keras built the layer for, or (legacy `.h5`, which
                // writes no build config) the shape Keras 3 records with the input tensor.
                var hidden: Int?
                var recorded: JSONValue?
                if case let .array(nodes)? = entry["inbound_nodes"], case let .array(args)? = nodes.first?["args"] { recorded = args.first?["config"]?["shape"] }
                for candidate in [entry["build_config"]?["input_shape"], entry["config"]?["decoder_sequence_shape"], recorded] {
                    if case let .array(shape)? = candidate, case let .int(last)? = shape.last, last >= 1, last <= LayerOptions.maxOption {
                        hidden = Int(last)
                        break
                    }
                }
                guard let hidden else { throw options.unsupported("no recorded input shape (the width of its input)") }
                let mask = role == .encoder ? (padding: names[1], attention: names[2]) : (padding: names[2], attention: names[3])
                func tensor(_ name: String) -> TensorRef? { slots[name].flatMap { $0 < inputs.count ? inputs[$0] : nil } }
                output = try block.build(&graph, input: inputs[slot], hidden: hidden, paddingMask: tensor(mask.padding),
                                         attentionMask: tensor(mask.attention), causal: causal)
            }
            return (graph.layers, output)
        } catch {
            let kind = UnsupportedKind(className: className, module: entry["module"]?.stringValue, reason: nil, error: error)
            var layer = Layer(name: name, className: className, config: entry["config"] ?? .null, inbound: inbound)
            layer.kind = kind
            layer.scope = scope
            return ([layer], TensorRef(layer: name))
        }
    }
}
