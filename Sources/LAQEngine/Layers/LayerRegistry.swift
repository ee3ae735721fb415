import LAQFormat

/// The layer classes laq executes: Keras' class name → its ``LayerKind``.
public enum LayerRegistry {
    /// Every kind, under Keras' class name.
    static let kinds: [String: any LayerKind.Type] = [
        "InputLayer": InputLayerKind.self,
        "Dense": DenseLayer.self,
        "Conv1D": ConvolutionLayer.self, "Conv2D": ConvolutionLayer.self,
        "DepthwiseConv2D": DepthwiseConvolutionLayer.self,
        "SeparableConv2D": SeparableConvolutionLayer.self,
        "MaxPooling1D": PoolingLayer.self, "MaxPooling2D": PoolingLayer.self,
        "AveragePooling1D": PoolingLayer.self, "AveragePooling2D": PoolingLayer.self,
        "GlobalAveragePooling1D": GlobalPoolingLayer.self, "GlobalAveragePooling2D": GlobalPoolingLayer.self,
        "GlobalMaxPooling1D": GlobalPoolingLayer.self, "GlobalMaxPooling2D": GlobalPoolingLayer.self,
        "BatchNormalization": BatchNormalizationLayer.self,
        "LayerNormalization": LayerNormalizationLayer.self,
        "Flatten": FlattenLayer.self,
        "Reshape": ReshapeLayer.self,
        "Permute": PermuteLayer.self,
        "Dropout": DropoutLayer.self,
        "Activation": ActivationLayer.self,
        "ReLU": ReLULayer.self,
        "LeakyReLU": LeakyReLULayer.self,
        "Softmax": SoftmaxLayer.self,
        "Add": MergeLayer.self, "Subtract": MergeLayer.self, "Multiply": MergeLayer.self,
        "Average": MergeLayer.self, "Maximum": MergeLayer.self, "Minimum": MergeLayer.self,
        "Concatenate": ConcatenateLayer.self,
        "Embedding": EmbeddingLayer.self,
        "SimpleRNN": RecurrentLayer.self, "LSTM": RecurrentLayer.self, "GRU": RecurrentLayer.self,
        "Bidirectional": BidirectionalLayer.self,
        "ZeroPadding1D": ZeroPaddingLayer.self, "ZeroPadding2D": ZeroPaddingLayer.self,
        "Cropping1D": CroppingLayer.self, "Cropping2D": CroppingLayer.self,
        "Rescaling": RescalingLayer.self,
        "Normalization": NormalizationLayer.self,
    ]

    /// Layer classes that keras.applications models define in their own modules, by class name:
    /// the module Keras 3 writes for them (legacy `.h5` files write none) and the kind.
    static let applicationKinds: [String: (module: String, kind: any LayerKind.Type)] = [
        "LayerScale": ("keras.src.applications.convnext", LayerScaleLayer.self),
        "CustomScaleLayer": ("keras.src.applications.inception_resnet_v2", CustomScaleLayer.self),
    ]

    /// Keras' older spellings of the same classes.
    static let aliases: [String: String] = [
        "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "SeparableConvolution2D": "SeparableConv2D", "MaxPool1D": "MaxPooling1D", "MaxPool2D": "MaxPooling2D",
        "AvgPool1D": "AveragePooling1D", "AvgPool2D": "AveragePooling2D", "GlobalAvgPool1D": "GlobalAveragePooling1D",
        "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
    ]

    /// The class names laq executes, sorted.
    public static var supportedClasses: [String] { kinds.keys.sorted() }

    /// The modules Keras' own layers are serialized with (Keras 3 writes `keras.layers`; files
    /// written by tf.keras 2 have no module).
    static func isKerasModule(_ module: String) -> Bool {
        module == "keras.layers" || module.hasPrefix("keras.src.layers") || module.hasPrefix("keras.layers.")
            || module == "tf_keras.layers" || module.hasPrefix("tf_keras.src.layers")
    }

    /// Whether an entry is one of Keras 3's operators applied to symbolic tensors (`x + 3.0`,
    /// `inputs + x`): module `keras.src.ops.…`, or, in a legacy `.h5` that drops the module, an
    /// operator's class whose config holds nothing but its name (Keras' layers of the same
    /// names always write `trainable` and `dtype`) and whose call has a constant operand.
    static func isOperator(className: String, module: String?, config: JSONValue?, call: CallArguments?) -> Bool {
        guard OperatorKind.operations[className] != nil else { return false }
        if let module { return module.hasPrefix("keras.src.ops.") }
        // Without a module, an operator on tensors alone computes what the merge layer of its
        // name does; one with a constant must be read as the operator.
        guard case let .object(members)? = config, call?.hasConstants == true else { return false }
        return Set(members.keys).isSubset(of: ["name"])
    }

    /// The kind of one layer entry of an architecture config (`class_name`, `module`,
    /// `registered_name`, `config`). A class laq does not know, or a class serialized from
    /// another module than Keras' own (a user's class named like a Keras layer), becomes
    /// ``UnsupportedKind``, so that a whole architecture's unsupported layers are listed at once
    /// (``ModelError/unsupportedLayers(_:)``).
    public static func kind(name: String, entry: JSONValue, calls: [CallArguments] = []) -> any LayerKind {
        let className = entry["class_name"]?.stringValue ?? ""
        let module = entry["module"]?.stringValue
        let registered = entry["registered_name"]?.stringValue
        let canonical = aliases[className] ?? className
        if calls.dropFirst().contains(where: { $0 != calls[0] }) {
            return UnsupportedKind(className: className, module: module, reason: "calls that pass different constants or keyword arguments")
        }
        let options = LayerOptions(layer: name, className: canonical, config: entry["config"] ?? .null, call: calls.first ?? CallArguments())
        if isOperator(className: className, module: module, config: entry["config"], call: calls.first) {
            return parse(OperatorKind.self, options, className: className, module: module)
        }
        if let application = applicationKinds[className], module == nil || module == application.module,
           registered == nil || registered == className {
            return parse(application.kind, options, className: className, module: module)
        }
        guard let type = kinds[canonical] else {
            return UnsupportedKind(className: className, module: module, reason: nil)
        }
        if let module, !isKerasModule(module) {
            return UnsupportedKind(className: className, module: module, reason: "a class of module '\(module)', not Keras' own \(className)")
        }
        if let registered, registered != className {
            return UnsupportedKind(className: className, module: module, reason: "a custom class registered as '\(registered)', not Keras' own \(className)")
        }
        return parse(type, options, className: className, module: module)
    }

    /// The kind `type` parses from `options`, or the reason it cannot.
    static func parse(_ type: any LayerKind.Type, _ options: LayerOptions, className: String, module: String?) -> any LayerKind {
        do {
            let kind = try type.init(options)
            try options.finish()
            return kind
        } catch {
            return UnsupportedKind(className: className, module: module, reason: nil, error: error)
        }
    }

    /// Every layer of `layers` laq cannot execute, grouped by class, module and reason, in
    /// the order they first appear; empty when all can run.
    public static func unsupported(_ layers: [Layer]) -> [UnsupportedLayers] {
        var groups: [UnsupportedLayers] = []
        for layer in layers {
            guard let kind = layer.kind as? UnsupportedKind else { continue }
            let reason = kind.description
            if let index = groups.firstIndex(where: { $0.className == kind.className && $0.module == kind.module && $0.reason == reason }) {
                groups[index].count += 1
            } else {
                groups.append(UnsupportedLayers(className: kind.className, module: kind.module, reason: reason, count: 1, firstLayer: layer.name))
            }
        }
        return groups
    }
}

/// Layers of one class that laq cannot execute, for one reason.
public struct UnsupportedLayers: Sendable, Equatable, CustomStringConvertible {
    public var className: String
    public var module: String?
    /// Why: the class is unknown, or the option or error that stops it.
    public var reason: String
    public var count: Int
    public var firstLayer: String

    public var description: String {
        let module = self.module.map { " (\($0))" } ?? ""
        let layers = count == 1 ? "layer '\(firstLayer)'" : "\(count) layers, the first '\(firstLayer)'"
        return "\(className)\(module), \(layers): \(reason)"
    }
}

/// The kind of a layer laq cannot execute: parsing collects them so that the error lists them
/// all; a model holding one never reaches the engine.
public struct UnsupportedKind: LayerKind {
    public let className: String
    public let module: String?
    let reason: String?
    let error: ModelError?

    init(className: String, module: String?, reason: String?, error: ModelError? = nil) {
        self.className = className
        self.module = module
        self.reason = reason
        self.error = error
    }

    public init(_ options: LayerOptions) throws(ModelError) { throw options.unsupported("an unknown class") }

    var description: String {
        if let reason { return reason }
        switch error {
        case let .unsupportedOption(_, _, option)?: return "uses \(option)"
        case let .unsupportedActivation(_, activation)?: return "uses activation '\(activation)'"
        case let error?: return error.description
        case nil: return "not a layer class laq executes"
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        throw error ?? .unsupportedLayer(layer: layer, className: className)
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        throw .unsupported(layer: context.layer.name, reason: description)
    }
}
