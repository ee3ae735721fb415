import LAQEngine
import LAQFormat
import Testing

/// The layer registry: what is executed, and what is refused, all at once and by name.
@Suite struct LayerRegistryTests {
    /// A Functional model: an input of `shape`, then each entry (class, config, extra entry
    /// members such as `module`) applied to the previous one.
    static func architecture(input shape: [JSONValue], _ layers: [(String, [String: JSONValue], [String: JSONValue])]) -> JSONValue {
        var entries: [JSONValue] = [["class_name": "InputLayer", "config": ["name": "in", "batch_shape": .array([nil] + shape)], "inbound_nodes": []]]
        var previous = "in"
        for (index, (className, config, extra)) in layers.enumerated() {
            let name = "l\(index)"
            var members = config
            members["name"] = .string(name)
            var entry: [String: JSONValue] = ["class_name": .string(className), "config": .object(members),
                                              "inbound_nodes": [[[.string(previous), 0, 0, [:]]]]]
            for (key, value) in extra { entry[key] = value }
            entries.append(.object(entry))
            previous = name
        }
        return ["class_name": "Functional", "config": [
            "name": "m", "layers": .array(entries), "input_layers": [["in", 0, 0]], "output_layers": [[.string(previous), 0, 0]],
        ]]
    }

    @Test("every unsupported layer is listed at once, grouped by class, module and reason, with its count and first layer")
    func everyUnsupportedLayerAtOnce() throws {
        let architecture = Self.architecture(input: [8, 8, 3], [
            ("Conv2DTranspose", ["filters": 2, "kernel_size": 3], [:]),
            ("Conv2D", ["filters": 2, "kernel_size": 1], ["module": "keras.layers"]),
            ("Conv2DTranspose", ["filters": 2, "kernel_size": 3], [:]),
            ("Conv2D", ["filters": 2, "kernel_size": 1], ["module": "my_package.layers", "registered_name": "Custom>Conv2D"]),
            ("Conv2D", ["filters": 2, "kernel_size": 1, "frobnicate": true], [:]),
        ])
        let error = try #require(throws: ModelError.self) { try KerasArchitecture.parse(architecture) }
        guard case let .unsupportedLayers(groups) = error else {
            Issue.record("expected the list of unsupported layers, got \(error)")
            return
        }
        #expect(groups.count == 3)
        let first = groups[0], second = groups[1], third = groups[2]
        #expect(first.className == "Conv2DTranspose" && first.module == nil && first.count == 2 && first.firstLayer == "l0")
        #expect(first.reason == "not a layer class laq executes")
        #expect(second.className == "Conv2D" && second.module == "my_package.layers" && second.count == 1 && second.firstLayer == "l3")
        #expect(second.reason.contains("not Keras' own Conv2D"))
        #expect(third.reason == "uses option 'frobnicate'" && third.firstLayer == "l4")
        #expect(error.description.hasPrefix("4 layers laq cannot execute:"))
        #expect(error.description.contains("Conv2DTranspose, 2 layers, the first 'l0'"))
    }

    @Test("a user's class registered under a Keras name is refused, not run as Keras' layer")
    func customClassWithKerasName() throws {
        let architecture = Self.architecture(input: [4], [("Dense", ["units": 2], ["module": "keras.layers", "registered_name": "MyPackage>Dense"])])
        let error = try #require(throws: ModelError.self) { try KerasArchitecture.parse(architecture) }
        guard case let .unsupportedLayers(groups) = error else {
            Issue.record("expected the list of unsupported layers, got \(error)")
            return
        }
        #expect(groups.count == 1 && groups[0].reason.contains("custom class registered as 'MyPackage>Dense'"))
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        let className: String
        let config: [String: JSONValue]
        let option: String
        var testDescription: String { "\(className): \(option)" }
    }

    static let refusals: [Refusal] = [
        Refusal(className: "LSTM", config: ["units": 2, "time_major": true], option: "time_major=True"),
        Refusal(className: "Dense", config: ["units": 2, "lora_rank": 4], option: "LoRA (lora_rank)"),
        Refusal(className: "Dense", config: ["units": 2, "dtype": ["class_name": "GPTQDTypePolicy", "config": ["mode": "gptq/4/128", "source_name": "float32"]],
                                             "quantization_config": ["class_name": "GPTQConfig", "config": [:]]],
                option: "Keras' GPTQConfig"),
        Refusal(className: "Dense", config: ["units": 2, "dtype": ["class_name": "Int4DTypePolicy", "config": ["mode": "int4/128", "source_name": "float32"]]],
                option: "Keras' int4 quantization from before Keras 3.13 (no quantization_config)"),
        Refusal(className: "Dense", config: ["units": 2, "dtype": ["class_name": "QuantizedFloat8DTypePolicy", "config": ["name": "float8_from_float32"]]],
                option: "Keras' 'float8' quantization (laq executes Keras' int8 and int4)"),
        Refusal(className: "Dense", config: ["units": 2, "dtype": ["class_name": "QuantizedDTypePolicy", "config": ["mode": "int8", "source_name": "float32"]],
                                             "quantization_config": ["class_name": "Int8QuantizationConfig", "config": [
            "activation_quantizer": ["class_name": "AbsMaxQuantizer", "config": ["value_range": [-100, 127]]]]]],
                option: "an input quantizer range [-100, 127] (laq takes symmetric int8 ranges)"),
        Refusal(className: "Conv2D", config: ["filters": 2, "kernel_size": 1, "dtype": ["class_name": "QuantizedDTypePolicy", "config": ["mode": "int8", "source_name": "float32"]]],
                option: "Keras' 'int8' quantization"),
        Refusal(className: "EinsumDense", config: ["equation": "abc,cd->abd", "output_shape": [6, 2],
                                                   "dtype": ["class_name": "QuantizedDTypePolicy", "config": ["name": "int8_from_float32"]]],
                option: "Keras' quantization of EinsumDense (model.quantize)"),
        Refusal(className: "Conv1D", config: ["filters": 2, "kernel_size": 2, "padding": "causal"], option: "padding 'causal'"),
        Refusal(className: "Conv1D", config: ["filters": 2, "kernel_size": 2, "groups": 2], option: "groups=2"),
        Refusal(className: "Conv2D", config: ["filters": 4, "kernel_size": 2, "groups": 3], option: "groups=3"),
        Refusal(className: "DepthwiseConv2D", config: ["kernel_size": 2, "groups": 2], option: "groups=2"),
        Refusal(className: "BatchNormalization", config: ["renorm": true], option: "batch renormalization (renorm)"),
        Refusal(className: "MultiHeadAttention", config: ["num_heads": 2, "key_dim": 2, "use_gate": true], option: "the gated attention (use_gate)"),
        Refusal(className: "MultiHeadAttention", config: ["num_heads": 2, "key_dim": 2, "attention_axes": [1, 2]],
                option: "attention_axes [1, 2] (laq attends over the sequence axis of (batch, time, features) inputs)"),
        Refusal(className: "EinsumDense", config: ["equation": "ab,bc->c", "output_shape": 4],
                option: "the einsum equation 'ab,bc->c' (laq runs products of the form 'abc,cd->abd')"),
        Refusal(className: "Dense", config: ["units": 2, "made_up_option": 1], option: "option 'made_up_option'"),
    ]

    @Test("tf.keras' TFOpLambda: x + 3, x · (1/6) and x − y (one triple per node, y by keyword) compute; other functions are refused by name")
    func tfOpLambda() throws {
        func op(_ name: String, _ function: String, _ node: JSONValue) -> JSONValue {
            ["class_name": "TFOpLambda", "name": .string(name), "config": ["name": .string(name), "trainable": true, "dtype": "float32", "function": .string(function)],
             "inbound_nodes": [node]]
        }
        func model(_ last: String) -> JSONValue {
            ["class_name": "Functional", "config": ["name": "m", "input_layers": [["in", 0, 0]], "output_layers": [["sub", 0, 0]], "layers": [
                ["class_name": "InputLayer", "name": "in", "config": ["name": "in", "batch_input_shape": [nil, 3]], "inbound_nodes": []],
                op("add", "__operators__.add", ["in", 0, 0, ["y": 3.0, "name": nil]]),
                op("scale", "math.multiply", ["add", 0, 0, ["y": .double(1.0 / 6), "name": nil]]),
                op("sub", last, ["scale", 0, 0, ["y": ["in", 0, 0], "name": nil]]),
            ]]]
        }
        let graph = try KerasArchitecture.parse(model("math.subtract"))
        let output = try Executor(model: Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs))
            .predict([Tensor(shape: [1, 3], data: [0, 3, -3])])[0]
        // (x + 3)/6 − x for x = 0, 3, −3
        let expected: [Float] = [0.5, -2, 3]
        #expect(zip(output.data, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(output.data)")
        #expect(throws: ModelError.unsupportedOption(layer: "sub", className: "TFOpLambda", option: "the TensorFlow function 'math.reduce_mean'")) {
            try KerasArchitecture.parse(model("math.reduce_mean"))
        }
    }

    @Test("tf.keras' SlicingOpLambda x[:, -1, 1:3] selects as NumPy; Ellipsis and the batch axis are refused")
    func slicingOpLambda() throws {
        func model(_ spec: JSONValue) -> JSONValue {
            ["class_name": "Functional", "config": ["name": "m", "input_layers": [["in", 0, 0]], "output_layers": [["slice", 0, 0]], "layers": [
                ["class_name": "InputLayer", "name": "in", "config": ["name": "in", "batch_input_shape": [nil, 2, 4]], "inbound_nodes": []],
                ["class_name": "SlicingOpLambda", "name": "slice", "config": ["name": "slice", "trainable": true, "dtype": "float32", "function": "__operators__.getitem"],
                 "inbound_nodes": [["in", 0, 0, ["slice_spec": spec]]]],
            ]]]
        }
        let all: JSONValue = ["start": nil, "stop": nil, "step": nil]
        let graph = try KerasArchitecture.parse(model([all, -1, ["start": 1, "stop": 3, "step": nil]]))
        let output = try Executor(model: Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs))
            .predict([Tensor(shape: [1, 2, 4], data: (0..<8).map(Float.init))])[0]
        #expect(output.shape == [1, 2] && output.data == [5, 6])
        #expect(throws: ModelError.self) { try KerasArchitecture.parse(model([["class_name": "__ellipsis__"], 0])) }
        #expect(throws: ModelError.self) { try KerasArchitecture.parse(model([0, all])) }
    }

    @Test("legacy .h5 names a registered class by its registered name: keras_hub's own run, another package's is refused")
    func registeredNames() throws {
        let hub = Self.architecture(input: [5, 4], [("keras_hub>PositionEmbedding", ["sequence_length": 8], [:])])
        #expect(try KerasArchitecture.parse(hub).layers[1].kind is PositionEmbeddingLayer)
        let other = Self.architecture(input: [5, 4], [("my_package>PositionEmbedding", ["sequence_length": 8], [:])])
        #expect(throws: ModelError.self) { try KerasArchitecture.parse(other) }
    }

    @Test("hostile configs of Keras 3's tensor operations are refused, never trapped: an axis of Int64.min, a cast that rounds")
    func hostileOperations() throws {
        let ops: JSONValue = "keras.src.ops.numpy"
        for (className, config) in [("Any", ["axis": JSONValue.int(Int64.min)]), ("All", ["axis": .array([.int(Int64.min)])]),
                                    ("Cast", ["dtype": "float16"]), ("Cast", ["dtype": "uint8"]), ("ExpandDims", ["axis": .int(Int64.min)])] {
            let architecture = Self.architecture(input: [4, 3], [(className, config, ["module": ops])])
            #expect(throws: ModelError.self, "\(className) \(config)") { try KerasArchitecture.parse(architecture) }
        }
        // The same operations with sound configs run: a mask computed as Masking's.
        let architecture = Self.architecture(input: [4, 3], [("LogicalNot", [:], ["module": ops]), ("Any", ["axis": -1], ["module": ops]),
                                                             ("ExpandDims", ["axis": -1], ["module": ops]), ("Cast", ["dtype": "float32"], ["module": ops])])
        #expect(throws: Never.self) { try KerasArchitecture.parse(architecture) }
    }

    @Test("options laq does not execute are refused by name", arguments: refusals)
    func refusedOptions(_ refusal: Refusal) throws {
        let input: [JSONValue] = ["Embedding", "Dense"].contains(refusal.className) ? [3] : [6, 3]
        let architecture = Self.architecture(input: input, [(refusal.className, refusal.config, [:])])
        #expect(throws: ModelError.unsupportedOption(layer: "l0", className: refusal.className, option: refusal.option)) {
            try KerasArchitecture.parse(architecture)
        }
    }

    @Test("older class names and Keras' defaults parse to the same layer")
    func aliasesAndDefaults() throws {
        let spelled = try KerasArchitecture.parse(Self.architecture(input: [6, 6, 2], [("Convolution2D", ["filters": 3, "kernel_size": 3], [:])]))
        let explicit = try KerasArchitecture.parse(Self.architecture(input: [6, 6, 2], [
            ("Conv2D", ["filters": 3, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "dilation_rate": 1, "use_bias": true,
                        "activation": "linear", "data_format": "channels_last", "groups": 1], [:]),
        ]))
        #expect(spelled.layers[1].weightNames == ["kernel", "bias"])
        #expect(spelled.layers[1].weightNames == explicit.layers[1].weightNames)
        let shapes = [try spelled.layers[1].kind.outputShape([[nil, 6, 6, 2]], layer: "l0"), try explicit.layers[1].kind.outputShape([[nil, 6, 6, 2]], layer: "l0")]
        #expect(shapes[0] == [nil, 4, 4, 3] && shapes[1] == [nil, 4, 4, 3])
        // tf.keras writes a depthwise convolution's inherited `groups: 1`.
        let depthwise = try KerasArchitecture.parse(Self.architecture(input: [6, 6, 2], [("DepthwiseConv2D", ["kernel_size": 3, "groups": 1], [:])]))
        #expect(depthwise.layers[1].weightNames == ["kernel", "bias"])
    }

    @Test("Dropout's noise_shape shares one draw along its axes of size 1 in training, and is the identity in inference")
    func dropoutNoiseShape() throws {
        let architecture = Self.architecture(input: [5, 3], [("Dropout", ["rate": 0.5, "noise_shape": [nil, 1, 3], "seed": 7], [:])])
        let graph = try KerasArchitecture.parse(architecture)
        let model = Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, architecture: architecture)
        let x = Tensor(shape: [4, 5, 3], data: (0..<60).map { Float($0 + 1) })
        #expect(try Executor(model: model).predict([x])[0].data == x.data)
        var random = TrainingRandom(seed: 1)
        let y = try Backpropagation.run(model: model, inputs: [x], labels: [Float](repeating: 0, count: 60), loss: .meanSquaredError, random: &random).outputs
        var kept = 0
        for n in 0..<4 {
            for c in 0..<3 {
                let ratios = (0..<5).map { t in y.data[(n * 5 + t) * 3 + c] / x.data[(n * 5 + t) * 3 + c] }
                #expect(Set(ratios).count == 1 && (ratios[0] == 0 || ratios[0] == 2), "sample \(n), channel \(c): \(ratios)")
                if ratios[0] == 2 { kept += 1 }
            }
        }
        #expect(kept > 0 && kept < 12)
    }
}
