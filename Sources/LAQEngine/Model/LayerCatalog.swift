import LAQFormat

/// What laq can execute: layer classes, activations, options, and each layer's weights.
public enum LayerCatalog {
    public static let supportedClasses: Set<String> = [
        "InputLayer", "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "MaxPooling1D", "MaxPooling2D",
        "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "BatchNormalization", "LayerNormalization", "Flatten",
        "Reshape", "Permute", "Dropout", "Activation", "ReLU", "LeakyReLU", "Softmax", "Add", "Subtract",
        "Multiply", "Concatenate", "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional",
    ]

    /// Keras' older spellings of the same classes.
    static let aliases: [String: String] = [
        "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "MaxPool1D": "MaxPooling1D", "MaxPool2D": "MaxPooling2D",
        "AvgPool1D": "AveragePooling1D", "AvgPool2D": "AveragePooling2D", "GlobalAvgPool1D": "GlobalAveragePooling1D",
        "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
    ]

    public static let activations: Set<String> = [
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "swish", "silu", "softplus",
        "softsign", "hard_sigmoid", "exponential",
    ]

    public static let recurrentClasses: Set<String> = ["SimpleRNN", "LSTM", "GRU"]

    /// Largest value of a size option (units, filters, kernel size, strides, …) laq accepts.
    public static let maxOption = 1 << 24
    /// Largest tensor dimension or element count per sample laq accepts.
    public static let maxDimension = 1 << 40

    /// The canonical class name (aliases resolved).
    public static func canonical(_ className: String) -> String { aliases[className] ?? className }

    /// The activation named in a config value: a string, or a serialized function object.
    public static func activationName(_ value: JSONValue?) -> String? {
        switch value {
        case let .string(name)?: return name
        case let .object(members)?:
            if case let .string(name)? = members["config"] { return name }
            if case let .object(config)? = members["config"], case let .string(name)? = config["name"] { return name }
            return members["class_name"]?.stringValue
        default: return nil
        }
    }

    /// Checks that laq can execute `layer` as Keras does; throws a ``ModelError`` naming the layer.
    public static func validate(_ layer: Layer) throws(ModelError) {
        let className = canonical(layer.className)
        guard supportedClasses.contains(className) else {
            throw .unsupportedLayer(layer: layer.name, className: layer.className)
        }
        let config = layer.config
        func option(_ text: String) -> ModelError { .unsupportedOption(layer: layer.name, className: className, option: text) }
        for key in ["activation", "recurrent_activation"] {
            if let name = activationName(config[key]), !activations.contains(name) {
                throw .unsupportedActivation(layer: layer.name, activation: name)
            }
        }
        if let format = config["data_format"]?.stringValue, format != "channels_last" {
            throw option("data_format \(format)")
        }
        if case let .int(groups)? = config["groups"], groups != 1 { throw option("groups=\(groups)") }
        if case .bool(true)? = config["mask_zero"] { throw option("mask_zero (masking)") }
        switch className {
        case "SimpleRNN", "LSTM", "GRU":
            if case .bool(true)? = config["stateful"] { throw option("stateful=True") }
            if case .bool(true)? = config["return_state"] { throw option("return_state=True") }
        case "Bidirectional":
            guard case let .object(inner)? = config["layer"], let innerClass = inner["class_name"]?.stringValue,
                recurrentClasses.contains(innerClass)
            else { throw option("a wrapped layer that is not SimpleRNN, LSTM or GRU") }
            let wrapped = Layer(name: layer.name, className: innerClass, config: inner["config"] ?? .null, inbound: [])
            try validate(wrapped)
            if let mode = config["merge_mode"]?.stringValue, !["concat", "sum", "mul", "ave"].contains(mode) {
                throw option("merge_mode \(mode)")
            }
            if config["merge_mode"] == .null { throw option("merge_mode None") }
            // Keras 3 always serialises the backward layer; accept it when it mirrors the forward one.
            if case let .object(backward)? = config["backward_layer"] {
                // Only what changes the computation (initializers carry per-object ids and differ).
                func core(_ value: JSONValue?) -> [JSONValue?] {
                    ["units", "activation", "recurrent_activation", "use_bias", "return_sequences", "reset_after"].map { value?[$0] }
                }
                guard backward["class_name"]?.stringValue == innerClass, core(backward["config"]) == core(inner["config"]) else {
                    throw option("a backward_layer that differs from the forward layer")
                }
            }
        case "Activation":
            guard activationName(config["activation"]) != nil else { throw option("an activation given as code") }
        case "LayerNormalization":
            if config["rms_scaling"] == .bool(true) { throw option("rms_scaling") }
        case "Softmax":
            if case let .int(axis)? = config["axis"], axis != -1 { throw option("softmax over axis \(axis)") }
        default:
            break
        }
        if let padding = config["padding"]?.stringValue, padding != "valid", padding != "same" {
            throw option("padding '\(padding)'")
        }
    }

    /// The short names of `layer`'s weights in Keras' stored order (trainable first), from its class
    /// and config: every importer maps stored variables onto these names.
    public static func weightNames(className rawClass: String, config: JSONValue) -> [String] {
        let className = canonical(rawClass)
        let useBias = config["use_bias"] != .bool(false)
        switch className {
        case "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D":
            return useBias ? ["kernel", "bias"] : ["kernel"]
        case "BatchNormalization":
            var names: [String] = []
            if config["scale"] != .bool(false) { names.append("gamma") }
            if config["center"] != .bool(false) { names.append("beta") }
            return names + ["moving_mean", "moving_variance"]
        case "LayerNormalization":
            var names: [String] = []
            if config["scale"] != .bool(false) { names.append("gamma") }
            if config["center"] != .bool(false) { names.append("beta") }
            return names
        case "Embedding":
            return ["embeddings"]
        case "SimpleRNN", "LSTM", "GRU":
            return useBias ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"]
        case "Bidirectional":
            guard case let .object(inner)? = config["layer"], let innerClass = inner["class_name"]?.stringValue else { return [] }
            let names = weightNames(className: innerClass, config: inner["config"] ?? .null)
            return names.map { "forward/\($0)" } + names.map { "backward/\($0)" }
        default:
            return []
        }
    }

    /// How many of a layer's weights are trainable (the rest, BatchNormalization's moving
    /// statistics, are not).
    public static func trainableCount(className: String, weightNames: [String]) -> Int {
        canonical(className) == "BatchNormalization" ? weightNames.count - 2 : weightNames.count
    }
}

extension LayerCatalog {
    /// The shape each weight of `layer` must have, from its config and its input's shape (batch
    /// first). Weights whose shape depends on an unknown input dimension are left out.
    public static func expectedWeightShapes(_ layer: Layer, input: Shape?) -> [String: [Int]]? {
        let className = canonical(layer.className)
        let config = layer.config
        func int(_ value: JSONValue?) -> Int? { if case let .int(v)? = value { return Int(v) } else { return nil } }
        let last = input?.last ?? nil
        var shapes: [String: [Int]] = [:]
        switch className {
        case "Dense":
            guard let units = int(config["units"]) else { return nil }
            shapes["bias"] = [units]
            if let last { shapes["kernel"] = [last, units] }
        case "Conv1D", "Conv2D", "DepthwiseConv2D":
            let spatial = className == "Conv1D" ? 1 : 2
            guard let kernel = ShapeRules.ints(config["kernel_size"], count: spatial) else { return nil }
            if className == "DepthwiseConv2D" {
                let multiplier = int(config["depth_multiplier"]) ?? 1
                if let last {
                    shapes["kernel"] = kernel + [last, multiplier]
                    shapes["bias"] = [last * multiplier]
                }
            } else {
                guard let filters = int(config["filters"]) else { return nil }
                shapes["bias"] = [filters]
                if let last { shapes["kernel"] = kernel + [last, filters] }
            }
        case "BatchNormalization", "LayerNormalization":
            if let last {
                for name in ["gamma", "beta", "moving_mean", "moving_variance"] { shapes[name] = [last] }
            }
        case "Embedding":
            guard let inputDim = int(config["input_dim"]), let outputDim = int(config["output_dim"]) else { return nil }
            shapes["embeddings"] = [inputDim, outputDim]
        case "SimpleRNN", "LSTM", "GRU":
            guard let units = int(config["units"]) else { return nil }
            let gates = className == "LSTM" ? 4 : className == "GRU" ? 3 : 1
            let resetAfter = className == "GRU" && config["reset_after"] != .bool(false)
            shapes["recurrent_kernel"] = [units, gates * units]
            shapes["bias"] = resetAfter ? [2, gates * units] : [gates * units]
            if let last { shapes["kernel"] = [last, gates * units] }
        case "Bidirectional":
            guard case let .object(inner)? = config["layer"], let innerClass = inner["class_name"]?.stringValue,
                let innerShapes = expectedWeightShapes(Layer(name: layer.name, className: innerClass, config: inner["config"] ?? .null, inbound: []), input: input)
            else { return nil }
            for (name, shape) in innerShapes {
                shapes["forward/\(name)"] = shape
                shapes["backward/\(name)"] = shape
            }
        default:
            break
        }
        return shapes
    }

    /// Checks options of normalization layers that the shape rules assume (the last axis).
    public static func normalizationAxisIsLast(_ layer: Layer, rank: Int) -> Bool {
        switch layer.config["axis"] {
        case nil, .null?: return true
        case let .int(axis)?: return axis == -1 || Int(axis) == rank - 1
        case let .array(items)?:
            return items.count == 1 && (items[0] == .int(-1) || items[0] == .int(Int64(rank - 1)))
        default: return false
        }
    }
}

/// One group of Keras' legacy HDF5 weight layout (`model_weights/<name>` in a full-model file):
/// a top-level layer, or a whole nested model.
public struct KerasWeightGroup: Sendable, Equatable {
    /// The top-level layer's name (for a nested model, the first component of its layers' scope).
    public var name: String
    /// The group's weights in the order its `weight_names` lists them, as (flattened layer name,
    /// index into that layer's `weightNames`).
    public var weights: [Entry]

    public struct Entry: Sendable, Equatable {
        public var layer: String
        public var index: Int
    }
}

extension LayerCatalog {
    /// Keras' legacy HDF5 weight groups of a flattened graph, in layer order. A top-level layer
    /// lists its own weights in order. A nested model's group lists them as Keras'
    /// `trainable_weights + non_trainable_weights` of the nested model: every trainable weight of
    /// its layers in layer order, then every other one (BatchNormalization's moving statistics,
    /// frozen layers). Keras' loader reads a group's weights by position (their names can be
    /// ambiguous two levels down), and so do laq's importer and exporter.
    public static func kerasWeightGroups(_ layers: [Layer]) -> [KerasWeightGroup] {
        var groups: [KerasWeightGroup] = []
        var nested: [String: [Layer]] = [:]
        for layer in layers {
            let top = layer.scope.first ?? layer.name
            if layer.scope.first != nil {
                if nested[top] == nil { groups.append(KerasWeightGroup(name: top, weights: [])) }
                nested[top, default: []].append(layer)
            } else {
                groups.append(KerasWeightGroup(name: top, weights: layer.weightNames.indices.map { .init(layer: layer.name, index: $0) }))
            }
        }
        for index in groups.indices {
            guard let members = nested[groups[index].name] else { continue }
            for trainablePass in [true, false] {
                for layer in members {
                    let frozen = layer.config["trainable"] == .bool(false)
                    let trainable = frozen ? 0 : trainableCount(className: layer.className, weightNames: layer.weightNames)
                    for weight in layer.weightNames.indices where (weight < trainable) == trainablePass {
                        groups[index].weights.append(.init(layer: layer.name, index: weight))
                    }
                }
            }
        }
        return groups
    }
}
