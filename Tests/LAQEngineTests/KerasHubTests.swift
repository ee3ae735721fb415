import LAQEngine
import LAQFormat
import Testing

/// keras_hub: backbones rebuilt from their constructor arguments (their numerics against Keras
/// are in KerasParityTests and GradientTests), its layers and Keras 3's `x[key]`, and what is
/// refused.
@Suite struct KerasHubTests {
    static func backbone(_ className: String, module: String, _ config: [String: JSONValue]) -> JSONValue {
        var members: [String: JSONValue] = ["name": "backbone", "trainable": true, "vocabulary_size": 10, "num_layers": 1, "num_heads": 2,
                                            "hidden_dim": 4, "intermediate_dim": 8]
        for (key, value) in config { members[key] = value }
        return ["module": .string(module), "class_name": .string(className), "config": .object(members),
                "registered_name": .string("keras_hub>\(className)")]
    }

    @Test("BERT, DistilBERT and GPT-2 rebuild from their arguments with Keras' inputs, outputs and layer names")
    func backboneGraphs() throws {
        let bert = try KerasArchitecture.parse(Self.backbone("BertBackbone", module: "keras_hub.src.models.bert.bert_backbone", [:]))
        #expect(bert.inputs.map(\.layer) == ["padding_mask", "segment_ids", "token_ids"])
        #expect(bert.outputNames == ["pooled_output", "sequence_output"])
        #expect(bert.layers.filter { !$0.weightNames.isEmpty }.map(\.name) == [
            "token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
            "transformer_layer_0/self_attention_layer", "transformer_layer_0/self_attention_layer_norm",
            "transformer_layer_0/feedforward_layer_norm", "transformer_layer_0/feedforward_intermediate_dense",
            "transformer_layer_0/feedforward_output_dense", "pooled_dense",
        ])
        let gpt2 = try KerasArchitecture.parse(Self.backbone("GPT2Backbone", module: "keras_hub.src.models.gpt2.gpt2_backbone", ["num_layers": 3]))
        #expect(gpt2.inputs.map(\.layer) == ["padding_mask", "token_ids"])
        #expect(gpt2.layers.filter { $0.className == "MultiHeadAttention" }.map(\.attribute) == Array(repeating: "_self_attention_layer", count: 3))
        let distil = try KerasArchitecture.parse(Self.backbone("DistilBertBackbone", module: "keras_hub.src.models.distil_bert.distil_bert_backbone", ["num_layers": 0]))
        #expect(distil.outputNames == ["sequence_output"])
        #expect(distil.layers.map(\.name).contains("token_and_position_embedding/token_embedding"))
    }

    @Test("other keras_hub models, keras_nlp's, and unknown or impossible arguments are refused by name")
    func backboneRefusals() throws {
        #expect(throws: ModelError.unsupportedModel(className: "GemmaBackbone", module: "keras_hub.src.models.gemma.gemma_backbone")) {
            try KerasArchitecture.parse(Self.backbone("GemmaBackbone", module: "keras_hub.src.models.gemma.gemma_backbone", [:]))
        }
        #expect(throws: ModelError.unsupportedModel(className: "BertBackbone", module: "keras_nlp.src.models.bert.bert_backbone")) {
            try KerasArchitecture.parse(Self.backbone("BertBackbone", module: "keras_nlp.src.models.bert.bert_backbone", [:]))
        }
        #expect(throws: ModelError.unsupportedOption(layer: "backbone", className: "BertBackbone", option: "option 'num_kv_heads'")) {
            try KerasArchitecture.parse(Self.backbone("BertBackbone", module: "keras_hub.src.models.bert.bert_backbone", ["num_kv_heads": 1]))
        }
        #expect(throws: ModelError.self) {
            try KerasArchitecture.parse(Self.backbone("GPT2Backbone", module: "keras_hub.src.models.gpt2.gpt2_backbone", ["num_heads": 8]))
        }
        let message = ModelError.unsupportedModel(className: "GemmaBackbone", module: nil).description
        #expect(message.contains("BertBackbone, DistilBertBackbone, GPT2Backbone"))
    }

    @Test("a sequence longer than max_sequence_length is an error naming the position embedding")
    func sequenceTooLong() throws {
        let graph = try KerasArchitecture.parse(Self.backbone("GPT2Backbone", module: "keras_hub.src.models.gpt2.gpt2_backbone", ["max_sequence_length": 4]))
        var model = Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs)
        for layer in graph.layers {
            let shapes = try model.outputShapes()
            let inputs = layer.inbound.first.map { $0.compactMap { shapes[$0.layer] } } ?? []
            for (short, shape) in layer.kind.weightShapes(inputs) {
                model.weights.append(Weight(layer: layer.name, shortName: short, shape: shape, values: Array(repeating: 0.1, count: shape.reduce(1, *)), trainable: true))
            }
        }
        // Inputs padding_mask, token_ids.
        let executor = try Executor(model: model)
        #expect(throws: EngineError.badInput(name: "position_embedding", reason: "a sequence of 5 positions, at most 4")) {
            try executor.predict([Tensor(shape: [1, 5], data: Array(repeating: 1, count: 5)), Tensor(shape: [1, 5], data: [1, 2, 3, 4, 5])])
        }
        let output = try executor.predict([Tensor(shape: [1, 4], data: Array(repeating: 1, count: 4)), Tensor(shape: [1, 4], data: [1, 2, 3, 4])])[0]
        #expect(output.shape == [1, 4, 4])
    }

    /// A Keras 3 functional model: token ids (B, 5) → Embedding (width 4, `mask_zero`) → `block`
    /// (a keras_hub layer entry, called on the embeddings and the `extra` keyword tensors).
    static func withBlock(_ block: [String: JSONValue], maskZero: Bool = false, keywords: [String: String] = [:]) -> JSONValue {
        func tensor(_ name: String) -> JSONValue { ["class_name": "__keras_tensor__", "config": ["shape": [nil, nil, 4], "keras_history": [.string(name), 0, 0]]] }
        var entry = block
        entry["name"] = "block"
        entry["inbound_nodes"] = [["args": [tensor("embedding")], "kwargs": .object(keywords.mapValues { tensor($0) })]]
        return ["class_name": "Functional", "config": [
            "name": "m", "input_layers": [["ids", 0, 0], ["mask", 0, 0]], "output_layers": [["block", 0, 0]],
            "layers": [
                ["class_name": "InputLayer", "module": "keras.layers", "name": "ids", "config": ["name": "ids", "batch_shape": [nil, 5]], "inbound_nodes": []],
                ["class_name": "InputLayer", "module": "keras.layers", "name": "mask", "config": ["name": "mask", "batch_shape": [nil, 5]], "inbound_nodes": []],
                ["class_name": "Embedding", "module": "keras.layers", "name": "embedding",
                 "config": ["name": "embedding", "input_dim": 10, "output_dim": 4, "mask_zero": .bool(maskZero)],
                 "inbound_nodes": [["args": [["class_name": "__keras_tensor__", "config": ["keras_history": ["ids", 0, 0]]]], "kwargs": [:]]]],
                .object(entry),
            ],
        ]]
    }

    static let encoder: [String: JSONValue] = [
        "module": "keras_hub.src.layers.modeling.transformer_encoder", "class_name": "TransformerEncoder", "registered_name": "keras_hub>TransformerEncoder",
        "config": ["name": "block", "intermediate_dim": 8, "num_heads": 2], "build_config": ["input_shape": [nil, nil, 4]],
    ]

    @Test("keras_hub's TransformerEncoder as a layer of a model: built from Keras layers; a Keras mask reaching it, cross-attention and unknown options are refused by name")
    func blocksInModels() throws {
        let graph = try KerasArchitecture.parse(Self.withBlock(Self.encoder, keywords: ["padding_mask": "mask"]))
        #expect(graph.outputs == [TensorRef(layer: "block/feedforward_layer_norm")])
        #expect(graph.outputNames == ["block"])
        #expect(graph.layers.contains { $0.name == "block/self_attention_layer" && $0.attribute == "_self_attention_layer" })
        let masked = try KerasArchitecture.parse(Self.withBlock(Self.encoder, maskZero: true))
        #expect(throws: ModelError.unsupportedOption(layer: "block", className: "TransformerEncoder", option: "an input that carries a Keras mask (pass the padding mask explicitly)")) {
            try Model(name: "m", layers: masked.layers, inputs: masked.inputs, outputs: masked.outputs).maskPlan()
        }
        var decoder = Self.encoder
        decoder["module"] = "keras_hub.src.layers.modeling.transformer_decoder"
        decoder["class_name"] = "TransformerDecoder"
        decoder["registered_name"] = "keras_hub>TransformerDecoder"
        #expect(throws: ModelError.unsupportedOption(layer: "block", className: "TransformerDecoder", option: "an encoder sequence (cross-attention)")) {
            try KerasArchitecture.parse(Self.withBlock(decoder, keywords: ["encoder_sequence": "embedding"]))
        }
        // A bare class name (no module, no `keras_hub>`) is a user's layer.
        var bare = Self.encoder
        bare["module"] = nil
        bare["registered_name"] = nil
        #expect(throws: ModelError.unsupportedLayer(layer: "block", className: "TransformerEncoder")) { try KerasArchitecture.parse(Self.withBlock(bare)) }
        var unknown = Self.encoder
        unknown["config"] = ["name": "block", "intermediate_dim": 8, "num_heads": 2, "rotary": true]
        #expect(throws: ModelError.unsupportedOption(layer: "block", className: "TransformerEncoder", option: "option 'rotary'")) {
            try KerasArchitecture.parse(Self.withBlock(unknown))
        }
    }

    /// A Keras 3 functional model: input (B, 3, 4) holding 0, 1, 2, …, then `x[key]`.
    static func getItem(_ key: JSONValue) -> JSONValue {
        let tensor: JSONValue = ["class_name": "__keras_tensor__", "config": ["keras_history": ["in", 0, 0]]]
        return ["class_name": "Functional", "config": [
            "name": "m", "input_layers": [["in", 0, 0]], "output_layers": [["get_item", 0, 0]],
            "layers": [
                ["class_name": "InputLayer", "module": "keras.layers", "name": "in", "config": ["name": "in", "batch_shape": [nil, 3, 4]], "inbound_nodes": []],
                ["class_name": "GetItem", "module": "keras.src.ops.numpy", "name": "get_item", "config": ["name": "get_item"],
                 "inbound_nodes": [["args": [tensor, key], "kwargs": [:]]]],
            ],
        ]]
    }

    static func slice(_ start: JSONValue = nil, _ stop: JSONValue = nil, _ step: JSONValue = nil) -> JSONValue {
        ["class_name": "__slice__", "config": ["start": start, "stop": stop, "step": step]]
    }

    @Test("x[key] selects as NumPy does: integers drop the axis, slices keep it, negative indices count from the end")
    func getItemValues() throws {
        let x = Tensor(shape: [2, 3, 4], data: (0..<24).map(Float.init))
        for (key, shape, values) in [
            (JSONValue.array([Self.slice(), 0, Self.slice()]), [2, 4], [0, 1, 2, 3, 12, 13, 14, 15]),
            (.array([Self.slice(), -1]), [2, 4], [8, 9, 10, 11, 20, 21, 22, 23]),
            (.array([Self.slice(), Self.slice(1, 3), Self.slice(nil, nil, 2)]), [2, 2, 2], [4, 6, 8, 10, 16, 18, 20, 22]),
            (.array([Self.slice(0), Self.slice(-2, 10), 1]), [2, 2], [5, 9, 17, 21]),
            (.array([Self.slice(), Self.slice(2, 1)]), [2, 0, 4], []),
        ] as [(JSONValue, [Int], [Float])] {
            let graph = try KerasArchitecture.parse(Self.getItem(key))
            let model = Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs)
            let output = try Executor(model: model).predict([x])[0]
            #expect(output.shape == shape, "\(key)")
            #expect(output.data == values, "\(key)")
        }
    }

    @Test("x[key] on the batch axis, with a negative step, Ellipsis or a new axis is refused by name")
    func getItemRefusals() throws {
        for key: JSONValue in [0, [1, Self.slice()], [Self.slice(), Self.slice(nil, nil, -1)], [Self.slice(), ["class_name": "__ellipsis__"]],
                               [Self.slice(), nil]] {
            #expect(throws: ModelError.self, "\(key)") { try KerasArchitecture.parse(Self.getItem(key)) }
        }
        // Out of range for an axis of 3: a shape error before anything runs.
        let graph = try KerasArchitecture.parse(Self.getItem([Self.slice(), 3]))
        #expect(throws: ModelError.self) { try Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs).outputShapes() }
    }
}
