import LAQFormat

/// Reads a Keras architecture config (`model_config` / `config.json`) into layers and connections,
/// for Sequential and Functional models written by tf.keras 2.x and Keras 3.
public enum KerasArchitecture {
    public struct Graph: Sendable {
        public var name: String
        public var layers: [Layer]
        public var inputs: [TensorRef]
        public var outputs: [TensorRef]
    }

    /// Parses `config` (the object with `class_name` and `config`) and checks that every layer
    /// is one laq executes and every connection resolves.
    public static func parse(_ modelConfig: JSONValue) throws(ModelError) -> Graph {
        guard let className = modelConfig["class_name"]?.stringValue, case .object? = modelConfig["config"] else {
            throw .invalidConfig(path: "$", reason: "expected an object with class_name and config")
        }
        let config = modelConfig["config"]!
        let graph: Graph
        switch className {
        case "Sequential":
            graph = try sequential(config)
        case "Functional", "Model":
            graph = try functional(config)
        default:
            throw .invalidConfig(path: "$.class_name", reason: "'\(className)' is not a Sequential or Functional model")
        }
        for layer in graph.layers { try LayerCatalog.validate(layer) }
        try checkConnections(graph)
        return graph
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
        if ["Sequential", "Functional", "Model"].contains(className) {
            throw .unsupportedOption(layer: name, className: className, option: "a nested model (flatten it before saving)")
        }
        return (name, className)
    }

    static func sequential(_ config: JSONValue) throws(ModelError) -> Graph {
        let entries = try layerList(config)
        var layers: [Layer] = []
        var previous: TensorRef?
        for (index, entry) in entries.enumerated() {
            let (name, className) = try nameAndClass(entry, index: index)
            let layerConfig = entry["config"] ?? .null
            if previous == nil, className != "InputLayer" {
                // Keras 2 Sequential: the first layer carries the input shape.
                guard let shape = layerConfig["batch_input_shape"] ?? layerConfig["batch_shape"] else {
                    throw .invalidConfig(path: "$.config.layers[0]", reason: "a Sequential model without an input shape cannot be imported; build the model first")
                }
                let inputName = "\(name)_input"
                let dtype = layerConfig["dtype"]?.stringValue ?? "float32"
                layers.append(Layer(name: inputName, className: "InputLayer", config: ["name": .string(inputName), "batch_shape": shape, "dtype": .string(dtype)], inbound: []))
                previous = TensorRef(layer: inputName)
            }
            let inbound: [[TensorRef]] = previous.map { [[$0]] } ?? []
            layers.append(Layer(name: name, className: className, config: layerConfig, inbound: inbound,
                                weightNames: LayerCatalog.weightNames(className: className, config: layerConfig)))
            previous = TensorRef(layer: name)
        }
        guard let first = layers.first, let last = previous else {
            throw .invalidConfig(path: "$.config.layers", reason: "empty model")
        }
        return Graph(name: config["name"]?.stringValue ?? "", layers: layers, inputs: [TensorRef(layer: first.name)], outputs: [last])
    }

    static func functional(_ config: JSONValue) throws(ModelError) -> Graph {
        let entries = try layerList(config)
        var layers: [Layer] = []
        for (index, entry) in entries.enumerated() {
            let (name, className) = try nameAndClass(entry, index: index)
            let layerConfig = entry["config"] ?? .null
            var inbound: [[TensorRef]] = []
            if case let .array(nodes)? = entry["inbound_nodes"] {
                for (nodeIndex, node) in nodes.enumerated() {
                    inbound.append(try tensors(inNode: node, layer: name, path: "$.config.layers[\(index)].inbound_nodes[\(nodeIndex)]"))
                }
            }
            layers.append(Layer(name: name, className: className, config: layerConfig, inbound: inbound,
                                weightNames: LayerCatalog.weightNames(className: className, config: layerConfig)))
        }
        return Graph(
            name: config["name"]?.stringValue ?? "", layers: layers,
            inputs: try refs(config["input_layers"], path: "$.config.input_layers"),
            outputs: try refs(config["output_layers"], path: "$.config.output_layers"))
    }

    /// The input tensors of one call: Keras 2 `[[name, node, index, kwargs], …]` or Keras 3
    /// `{"args": [...], "kwargs": {...}}` with `__keras_tensor__` objects (nested in lists for merges).
    static func tensors(inNode node: JSONValue, layer: String, path: String) throws(ModelError) -> [TensorRef] {
        switch node {
        case let .array(items):
            var result: [TensorRef] = []
            for (index, item) in items.enumerated() {
                guard let ref = ref(item) else { throw .invalidConfig(path: "\(path)[\(index)]", reason: "not a [layer, node, index] triple") }
                if case let .array(parts) = item, parts.count > 3, case let .object(kwargs) = parts[3], kwargs.values.contains(where: containsTensor) {
                    throw .unsupportedOption(layer: layer, className: "", option: "tensor keyword arguments in a call")
                }
                result.append(ref)
            }
            return result
        case let .object(members):
            var result: [TensorRef] = []
            collect(members["args"] ?? .null, into: &result)
            if case let .object(kwargs)? = members["kwargs"], kwargs.values.contains(where: containsTensor) {
                throw .unsupportedOption(layer: layer, className: "", option: "tensor keyword arguments in a call (\(kwargs.keys.sorted().joined(separator: ", ")))")
            }
            return result
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
        var defined = Set<String>()
        for layer in graph.layers {
            for node in layer.inbound {
                for input in node where !defined.contains(input.layer) {
                    throw .danglingInput(layer: layer.name, input: input.description)
                }
            }
            defined.insert(layer.name)
        }
        for ref in graph.inputs + graph.outputs where !names.contains(ref.layer) {
            throw .danglingInput(layer: "(model)", input: ref.description)
        }
        if let shared = graph.layers.first(where: { $0.inbound.count > 1 }) {
            throw .unsupportedOption(layer: shared.name, className: shared.className, option: "a layer called more than once (shared layers)")
        }
    }
}
