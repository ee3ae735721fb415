import LAQFormat

/// The layer classes laq executes: Keras' class name → its ``LayerKind``.
public enum LayerRegistry {
    /// Every kind, under Keras' class name.
    static let kinds: [String: any LayerKind.Type] = [
        "InputLayer": InputLayerKind.self,
        "Dense": DenseLayer.self,
        "EinsumDense": EinsumDenseLayer.self,
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
        "Masking": MaskingLayer.self,
        "MultiHeadAttention": MultiHeadAttentionLayer.self,
        "ReversibleEmbedding": ReversibleEmbeddingLayer.self,
        "TFOpLambda": TFOpLambdaLayer.self, "SlicingOpLambda": SlicingOpLambdaLayer.self,
    ]

    /// Layer classes that Keras' own packages define in their modules (keras.applications,
    /// keras_hub), by class name: the module Keras 3 writes for them (legacy `.h5` files write
    /// none), the name they are registered under, and the kind.
    static let packageKinds: [String: (module: String, registeredName: String, kind: any LayerKind.Type)] = [
        "LayerScale": ("keras.src.applications.convnext", "LayerScale", LayerScaleLayer.self),
        "CustomScaleLayer": ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer", CustomScaleLayer.self),
        "PositionEmbedding": (KerasHub.positionEmbeddingModule, "keras_hub>PositionEmbedding", PositionEmbeddingLayer.self),
        // Keras' own since 3.13; keras_hub's before.
        "ReversibleEmbedding": ("keras_hub.src.layers.modeling.reversible_embedding", "keras_hub>ReversibleEmbedding", ReversibleEmbeddingLayer.self),
    ]

    /// keras_hub's backbone classes laq rebuilds from their constructor arguments.
    static let backbones: [String: any KerasHubBackbone.Type] = [
        "BertBackbone": BertBackbone.self, "DistilBertBackbone": DistilBertBackbone.self, "GPT2Backbone": GPT2Backbone.self,
    ]

    /// Keras' older spellings of the same classes.
    static let aliases: [String: String] = [
        "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "SeparableConvolution2D": "SeparableConv2D", "MaxPool1D": "MaxPooling1D", "MaxPool2D": "MaxPooling2D",
        "AvgPool1D": "AveragePooling1D", "AvgPool2D": "AveragePooling2D", "GlobalAvgPool1D": "GlobalAveragePooling1D",
        "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
    ]

    /// The class names laq executes, sorted.
    public static var supportedClasses: [String] { kinds.keys.sorted() }

    /// Everything laq executes, in groups of class names, sorted (the README's list is rendered
    /// from this, and a test keeps the two equal).
    public static var supportedGroups: [(name: String, classes: [String])] {
        [
            ("Keras layers", kinds.keys.sorted()),
            ("keras.applications and keras_hub layers", Set(packageKinds.keys).union(KerasHub.blocks.keys).sorted()),
            ("keras_hub backbones", backbones.keys.sorted()),
            ("Keras 3 operations on symbolic tensors", operatorKinds.keys.sorted()),
        ]
    }

    /// The modules Keras' own layers are serialized with (Keras 3 writes `keras.layers`; files
    /// written by tf.keras 2 have no module).
    static func isKerasModule(_ module: String) -> Bool {
        module == "keras.layers" || module.hasPrefix("keras.src.layers") || module.hasPrefix("keras.layers.")
            || module == "tf_keras.layers" || module.hasPrefix("tf_keras.src.layers")
    }

    /// Keras 3's operations on symbolic tensors (module `keras.src.ops.…`) laq executes, by class.
    static let operatorKinds: [String: any LayerKind.Type] = {
        var kinds: [String: any LayerKind.Type] = [
            "Any": ReductionOperatorKind.self, "All": ReductionOperatorKind.self,
            "ExpandDims": ExpandDimsOperatorKind.self,
            "ZerosLike": ElementwiseOperatorKind.self, "OnesLike": ElementwiseOperatorKind.self,
            "LogicalNot": ElementwiseOperatorKind.self, "Cast": ElementwiseOperatorKind.self,
            "Concatenate": ConcatenateLayer.self,
            "GetItem": GetItemOperatorKind.self,
        ]
        for name in OperatorKind.operations.keys { kinds[name] = OperatorKind.self }
        return kinds
    }()

    /// The operator kind of an entry that is one of Keras 3's operations on symbolic tensors
    /// (`x + 3.0`, `inputs + x`, a mask's `not_equal(ids, 0)`), or nil: module
    /// `keras.src.ops.…`, or, in a legacy `.h5` that drops the module, an operation's class whose
    /// config lacks the `trainable` that every Keras layer writes; for a class that is also a
    /// layer's (`Add`, `Concatenate`), one whose config lacks `dtype` too and, for a binary
    /// operator, whose call has two operands.
    static func operatorKind(className: String, module: String?, config: JSONValue?, call: CallArguments?) -> (any LayerKind.Type)? {
        guard let kind = operatorKinds[className] else { return nil }
        if let module { return module.hasPrefix("keras.src.ops.") ? kind : nil }
        guard case let .object(members)? = config, members["trainable"] == nil else { return nil }
        guard kinds[className] != nil else { return kind }
        guard members["dtype"] == nil else { return nil }
        return className == "Concatenate" || call?.operands.count == 2 ? kind : nil
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
        if let operation = operatorKind(className: className, module: module, config: entry["config"], call: calls.first) {
            return parse(operation, options, className: className, module: module)
        }
        if let package = packageKinds[className], module == nil || module == package.module,
           registered == nil || registered == package.registeredName || registered == className {
            return parse(package.kind, options, className: className, module: module)
        }
        // Legacy `.h5` files name a registered class by its registered name (`keras_hub>PositionEmbedding`).
        if module == nil, className.contains(">"), let package = packageKinds.values.first(where: { $0.registeredName == className }) {
            return parse(package.kind, options, className: className, module: module)
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
