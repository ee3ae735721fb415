import LAQFormat

/// Reads a Keras architecture config (`model_config` / `config.json`) into layers and connections,
/// for Sequential and Functional models written by tf.keras 2.x and Keras 3.
public enum KerasArchitecture {
    public struct Graph: Sendable {
        public var name: String
        public var layers: [Layer]
        public var inputs: [TensorRef]
        public var outputs: [TensorRef]
        /// The outputs' names: Keras' for a model whose outputs are a dict (keras_hub's BERT:
        /// `pooled_output`, `sequence_output`), else the layers'.
        public var outputNames: [String]

        public init(name: String, layers: [Layer], inputs: [TensorRef], outputs: [TensorRef], outputNames: [String]? = nil) {
            self.name = name
            self.layers = layers
            self.inputs = inputs
            self.outputs = outputs
            self.outputNames = outputNames ?? outputs.map(\.layer)
        }
    }

    /// Parses `config` (the object with `class_name` and `config`) and checks that every layer
    /// is one laq executes (all that are not are listed at once:
    /// ``ModelError/unsupportedLayers(_:)``) and every connection resolves.
    public static func parse(_ modelConfig: JSONValue) throws(ModelError) -> Graph {
        let graph = try graph(modelConfig, scope: [])
        let unsupported = LayerRegistry.unsupported(graph.layers)
        if unsupported.count == 1, unsupported[0].count == 1, let layer = graph.layers.first(where: { $0.name == unsupported[0].firstLayer }),
           let kind = layer.kind as? UnsupportedKind {
            // One layer: its own error.
            if let error = kind.error { throw error }
            if kind.reason == nil { throw .unsupportedLayer(layer: layer.name, className: layer.className) }
        }
        guard unsupported.isEmpty else { throw .unsupportedLayers(unsupported) }
        try checkConnections(graph)
        return graph
    }

    static let modelClasses: Set<String> = ["Sequential", "Functional", "Model"]

    /// The graph of one model config; nested models are flattened into it, their layers named
    /// `<nested model>/<layer>` (``Layer/scope``). A keras_hub backbone is rebuilt from its
    /// constructor's arguments (``KerasHubBackbone``).
    static func graph(_ modelConfig: JSONValue, scope: [String]) throws(ModelError) -> Graph {
        if let backbone = try KerasHub.graph(modelConfig) {
            guard scope.isEmpty else {
                throw .unsupportedOption(layer: qualified(backbone.name, scope), className: modelConfig["class_name"]?.stringValue ?? "", option: "a keras_hub backbone inside another model")
            }
            return backbone
        }
        guard let className = modelConfig["class_name"]?.stringValue, case .object? = modelConfig["config"] else {
            throw .invalidConfig(path: "$", reason: "expected an object with class_name and config")
        }
        let config = modelConfig["config"]!
        switch className {
        case "Sequential":
            return try sequential(config, scope: scope)
        case "Functional", "Model":
            return try functional(config, scope: scope)
        default:
            throw .unsupportedModel(className: className, module: modelConfig["module"]?.stringValue)
        }
    }

    /// A nested model's layers, renamed into the enclosing scope, with its inputs replaced by
    /// `inputs` (the tensors it is called on); returns them and the tensors its outputs become.
    static func splice(_ entry: JSONValue, name: String, scope: [String], inputs: [TensorRef]) throws(ModelError) -> ([Layer], [TensorRef]) {
        let inner = try graph(entry, scope: scope + [name])
        guard inner.inputs.count == inputs.count else {
            throw .invalidConfig(path: "$.config.layers", reason: "nested model '\(name)' takes \(inner.inputs.count) inputs, is called on \(inputs.count)")
        }
        var replacement: [String: TensorRef] = [:]
        for (ref, outer) in zip(inner.inputs, inputs) { replacement[ref.layer] = outer }
        var layers: [Layer] = []
        for var layer in inner.layers where replacement[layer.name] == nil {
            layer.inbound = layer.inbound.map { node in node.map { replacement[$0.layer] ?? $0 } }
            layers.append(layer)
        }
        return (layers, inner.outputs.map { replacement[$0.layer] ?? $0 })
    }

    static func qualified(_ name: String, _ scope: [String]) -> String {
        (scope + [name]).joined(separator: "/")
    }

    static func layerList(_ config: JSONValue) throws(ModelError) -> [JSONValue] {
        guard case let .array(layers)? = config["layers"] else {
            throw .invalidConfig(path: "$.config.layers", reason: "missing layer list")
        }
        return layers
    }

    static func nameAndClass(_ entry: JSONValue, index: Int) throws(ModelError) -> (String, String) {
        guard let className = entry["class_name"]?.stringValue else {
            throw .invalidConfig(path: "$.config.layers[\(index)]", reason: "missing class_name")
        }
        guard let name = entry["config"]?["name"]?.stringValue ?? entry["name"]?.stringValue else {
            throw .invalidConfig(path: "$.config.layers[\(index)]", reason: "missing name")
        }
        return (name, className)
    }

    static func sequential(_ config: JSONValue, scope: [String]) throws(ModelError) -> Graph {
        let entries = try layerList(config)
        var layers: [Layer] = []
        var previous: TensorRef?
        // The last entry's name: the output's, also where it is a nested model or a keras_hub block.
        var lastName: String?
        for (index, entry) in entries.enumerated() {
            let (local, className) = try nameAndClass(entry, index: index)
            let name = qualified(local, scope)
            lastName = name
            let layerConfig = entry["config"] ?? .null
            if modelClasses.contains(className) {
                guard let input = previous else {
                    throw .invalidConfig(path: "$.config.layers[0]", reason: "a Sequential model that starts with a nested model needs an InputLayer first")
                }
                let (inner, outputs) = try splice(entry, name: local, scope: scope, inputs: [input])
                guard outputs.count == 1 else { throw .invalidConfig(path: "$.config.layers[\(index)]", reason: "a nested model in a Sequential must have one output") }
                layers += inner
                previous = outputs[0]
                continue
            }
            if previous == nil, className != "InputLayer" {
                // Keras 2 Sequential: the first layer carries the input shape.
                guard let shape = layerConfig["batch_input_shape"] ?? layerConfig["batch_shape"] else {
                    throw .invalidConfig(path: "$.config.layers[0]", reason: "a Sequential model without an input shape cannot be imported; build the model first")
                }
                let inputName = qualified("\(local)_input", scope)
                let dtype = layerConfig["dtype"]?.stringValue ?? "float32"
                var input = Layer(name: inputName, className: "InputLayer", config: ["name": .string(inputName), "batch_shape": shape, "dtype": .string(dtype)], inbound: [])
                input.scope = scope
                layers.append(input)
                previous = TensorRef(layer: inputName)
            }
            let inbound: [[TensorRef]] = previous.map { [[$0]] } ?? []
            if let block = KerasHub.blockClass(entry) {
                let (inner, output) = KerasHub.expand(entry, className: block, name: name, scope: scope, inbound: inbound,
                                                      arguments: inbound.map { CallArguments(operands: Array(repeating: .tensor, count: $0.count)) })
                layers += inner
                previous = output
                continue
            }
            var layer = Layer(name: name, entry: entry, inbound: inbound)
            layer.scope = scope
            layers.append(layer)
            previous = TensorRef(layer: name)
        }
        guard let first = layers.first, let last = previous else {
            throw .invalidConfig(path: "$.config.layers", reason: "empty model")
        }
        return Graph(name: config["name"]?.stringValue ?? "", layers: layers, inputs: [TensorRef(layer: first.name)], outputs: [last],
                     outputNames: [lastName ?? last.layer])
    }

    static func functional(_ config: JSONValue, scope: [String]) throws(ModelError) -> Graph {
        let entries = try layerList(config)
        var layers: [Layer] = []
        // A nested model's name stands for its outputs.
        var aliases: [String: [TensorRef]] = [:]
        func resolve(_ ref: TensorRef) throws(ModelError) -> TensorRef {
            let name = qualified(ref.layer, scope)
            guard let outputs = aliases[name] else { return TensorRef(layer: name, node: ref.node, index: ref.index) }
            // A nested model is called once (checked where it is spliced), so every reference is
            // to that call, whatever its node index: Keras 3 writes 0, tf.keras 1 (its node 0 is
            // the nested model's own construction from an Input).
            guard ref.index < outputs.count else {
                throw .invalidConfig(path: "$.config.layers", reason: "output \(ref.index) of nested model '\(name)', which has \(outputs.count)")
            }
            return outputs[ref.index]
        }
        for (index, entry) in entries.enumerated() {
            let (local, className) = try nameAndClass(entry, index: index)
            let name = qualified(local, scope)
            var inbound: [[TensorRef]] = []
            var arguments: [CallArguments] = []
            if case let .array(nodes)? = entry["inbound_nodes"] {
                for (nodeIndex, node) in nodes.enumerated() {
                    var refs: [TensorRef] = []
                    let call = try call(inNode: node, layer: name, path: "$.config.layers[\(index)].inbound_nodes[\(nodeIndex)]")
                    for ref in call.tensors { refs.append(try resolve(ref)) }
                    inbound.append(refs)
                    arguments.append(call.arguments)
                }
            }
            if modelClasses.contains(className) {
                guard inbound.count == 1 else {
                    throw .unsupportedOption(layer: name, className: className, option: inbound.isEmpty ? "a nested model that is never called" : "a nested model called more than once")
                }
                let (inner, outputs) = try splice(entry, name: local, scope: scope, inputs: inbound[0])
                layers += inner
                aliases[name] = outputs
                continue
            }
            if let block = KerasHub.blockClass(entry) {
                let (inner, output) = KerasHub.expand(entry, className: block, name: name, scope: scope, inbound: inbound, arguments: arguments)
                layers += inner
                if inner.count > 1 || inner.first?.name != name { aliases[name] = [output] }
                continue
            }
            var layer = Layer(name: name, entry: entry, inbound: inbound, arguments: arguments)
            layer.scope = scope
            layers.append(layer)
        }
        var inputs: [TensorRef] = []
        for ref in try refs(config["input_layers"], path: "$.config.input_layers") { inputs.append(try resolve(ref)) }
        var outputs: [TensorRef] = []
        var outputNames: [String] = []
        for ref in try refs(config["output_layers"], path: "$.config.output_layers") {
            let resolved = try resolve(ref)
            outputs.append(resolved)
            // An output of a nested model or a keras_hub block keeps the name Keras gives it.
            let name = qualified(ref.layer, scope)
            outputNames.append(aliases[name] != nil && ref.node == 0 && ref.index == 0 ? name : resolved.layer)
        }
        return Graph(name: config["name"]?.stringValue ?? "", layers: layers, inputs: inputs, outputs: outputs, outputNames: outputNames)
    }

    /// The input tensors of one call: Keras 2 `[[name, node, index, kwargs], …]` or Keras 3
    /// `{"args": [...], "kwargs": {...}}` with `__keras_tensor__` objects (nested in lists for merges).
    static func tensors(inNode node: JSONValue, layer: String, path: String) throws(ModelError) -> [TensorRef] {
        try call(inNode: node, layer: layer, path: path).tensors
    }

    /// The input tensors of one call and what else it passes: Keras 3 writes an operator's
    /// constant operands among its positional `args` (`x + 3.0`), and keyword arguments
    /// (`training`, `mask`, …); tf.keras 2 writes keywords in each triple's fourth element.
    /// Tensors passed by keyword (an attention layer's `attention_mask=`) follow the positional
    /// ones, in the order of their names (``CallArguments/tensorKeywords``).
    static func call(inNode node: JSONValue, layer: String, path: String) throws(ModelError) -> (tensors: [TensorRef], arguments: CallArguments) {
        var arguments = CallArguments()
        switch node {
        case var .array(items):
            // tf.keras writes a TFOpLambda's node as one triple rather than a list of them.
            if ref(node) != nil { items = [node] }
            var result: [TensorRef] = []
            var keywordTensors: [String: TensorRef] = [:]
            for (index, item) in items.enumerated() {
                guard let ref = ref(item) else { throw .invalidConfig(path: "\(path)[\(index)]", reason: "not a [layer, node, index] triple") }
                if case let .array(parts) = item, parts.count > 3, case let .object(kwargs) = parts[3] {
                    // tf.keras 2 writes a tensor keyword argument as its [layer, node, index].
                    for (key, value) in kwargs {
                        if let tensor = Self.ref(value) { keywordTensors[key] = tensor } else if arguments.keywords[key] == nil { arguments.keywords[key] = value }
                    }
                }
                result.append(ref)
                arguments.operands.append(.tensor)
            }
            for key in keywordTensors.keys.sorted() {
                result.append(keywordTensors[key]!)
                arguments.tensorKeywords.append(key)
            }
            return (result, arguments)
        case let .object(members):
            var result: [TensorRef] = []
            if case let .array(args)? = members["args"] {
                for arg in args {
                    if containsTensor(arg) {
                        let before = result.count
                        collect(arg, into: &result)
                        arguments.operands += Array(repeating: .tensor, count: result.count - before)
                    } else {
                        arguments.operands.append(.constant(arg))
                    }
                }
            } else {
                collect(members["args"] ?? .null, into: &result)
                arguments.operands = Array(repeating: .tensor, count: result.count)
            }
            if case let .object(kwargs)? = members["kwargs"] {
                for key in kwargs.keys.sorted() {
                    let value = kwargs[key]!
                    guard containsTensor(value) else { arguments.keywords[key] = value; continue }
                    var tensors: [TensorRef] = []
                    collect(value, into: &tensors)
                    guard tensors.count == 1, value["class_name"]?.stringValue == "__keras_tensor__" else {
                        throw .unsupportedOption(layer: layer, className: "", option: "the keyword argument \(key) holding several tensors")
                    }
                    result.append(tensors[0])
                    arguments.tensorKeywords.append(key)
                }
            }
            return (result, arguments)
        default:
            throw .invalidConfig(path: path, reason: "unrecognised inbound node")
        }
    }

    static func collect(_ value: JSONValue, into result: inout [TensorRef]) {
        switch value {
        case let .array(items): for item in items { collect(item, into: &result) }
        case let .object(members):
            if members["class_name"]?.stringValue == "__keras_tensor__", let history = members["config"]?["keras_history"], let ref = ref(history) {
                result.append(ref)
            }
        default: break
        }
    }

    static func containsTensor(_ value: JSONValue) -> Bool {
        switch value {
        case let .array(items): return items.contains(where: containsTensor)
        case let .object(members): return members["class_name"]?.stringValue == "__keras_tensor__" || members.values.contains(where: containsTensor)
        default: return false
        }
    }

    static func ref(_ value: JSONValue) -> TensorRef? {
        guard case let .array(parts) = value, parts.count >= 3, case let .string(layer) = parts[0],
            case let .int(node) = parts[1], case let .int(index) = parts[2]
        else { return nil }
        return TensorRef(layer: layer, node: Int(node), index: Int(index))
    }

    /// `input_layers`/`output_layers`: a list of triples, or one triple.
    static func refs(_ value: JSONValue?, path: String) throws(ModelError) -> [TensorRef] {
        guard let value else { throw .invalidConfig(path: path, reason: "missing") }
        if let single = ref(value) { return [single] }
        guard case let .array(items) = value else { throw .invalidConfig(path: path, reason: "not a list of [layer, node, index]") }
        var result: [TensorRef] = []
        for (index, item) in items.enumerated() {
            guard let ref = ref(item) else { throw .invalidConfig(path: "\(path)[\(index)]", reason: "not a [layer, node, index] triple") }
            result.append(ref)
        }
        return result
    }

    static func checkConnections(_ graph: Graph) throws(ModelError) {
        var names = Set<String>()
        for layer in graph.layers {
            guard names.insert(layer.name).inserted else {
                throw .invalidConfig(path: "$.config.layers", reason: "two layers are named '\(layer.name)'")
            }
        }
        // Every input names a call that exists, and the calls can be ordered (no cycle).
        _ = try CallOrder.order(graph.layers)
        for ref in graph.inputs + graph.outputs {
            guard let layer = graph.layers.first(where: { $0.name == ref.layer }), ref.index == 0,
                  ref.node >= 0, ref.node < max(1, layer.inbound.count) else {
                throw .danglingInput(layer: "(model)", input: ref.description)
            }
        }
    }
}
