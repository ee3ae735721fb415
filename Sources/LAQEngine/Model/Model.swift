import LAQFormat

/// A neural network as laq represents it between import, quantization and execution: a graph
/// of Keras layers with their configs and connections, named weight tensors, and the optimizer
/// state that loss-aware quantization uses as its curvature estimate.
public struct Model: Sendable {
    public var name: String
    /// Layers in the order of the architecture config. A shared layer is listed once, with one
    /// inbound node per call; ``calls()`` orders the calls by their inputs.
    public var layers: [Layer]
    /// The model's input and output tensors.
    public var inputs: [TensorRef]
    public var outputs: [TensorRef]
    /// The outputs' names (``KerasArchitecture/Graph/outputNames``): what `laq run` names
    /// their files after.
    public var outputNames: [String]
    /// Every weight, in layer order; names are `<layer>/<weight>` with Keras' short names.
    public var weights: [Weight]
    /// Adam-family moments for trainable weights, when the source file had them.
    public var optimizer: OptimizerState?
    /// The architecture config as imported (Keras `model_config`), unchanged.
    public var architecture: JSONValue
    /// The training config as imported (loss, metrics, optimizer), or null.
    public var training: JSONValue
    public var source: ModelSource

    public init(
        name: String, layers: [Layer], inputs: [TensorRef], outputs: [TensorRef], outputNames: [String]? = nil, weights: [Weight] = [],
        optimizer: OptimizerState? = nil, architecture: JSONValue = .null, training: JSONValue = .null,
        source: ModelSource = ModelSource()
    ) {
        self.name = name
        self.layers = layers
        self.inputs = inputs
        self.outputs = outputs
        self.outputNames = outputNames ?? outputs.map(\.layer)
        self.weights = weights
        self.optimizer = optimizer
        self.architecture = architecture
        self.training = training
        self.source = source
    }

    public func layer(named name: String) -> Layer? { layers.first { $0.name == name } }

    /// The same model with one output, the one named `name` (a loss is computed on one output),
    /// or nil when it has no such output.
    public func keepingOutput(_ name: String) -> Model? {
        guard let index = outputNames.firstIndex(of: name) else { return nil }
        var model = self
        model.outputs = [outputs[index]]
        model.outputNames = [name]
        return model
    }
    public func weight(named name: String) -> Weight? { weights.first { $0.name == name } }
    public var parameterCount: Int { weights.reduce(0) { $0 + $1.elementCount } }
}

/// One output tensor of one call of a layer: Keras' `keras_history` triple.
public struct TensorRef: Hashable, Sendable, CustomStringConvertible {
    public var layer: String
    public var node: Int
    public var index: Int

    public init(layer: String, node: Int = 0, index: Int = 0) {
        self.layer = layer
        self.node = node
        self.index = index
    }

    public var description: String { node == 0 && index == 0 ? layer : "\(layer)[\(node)][\(index)]" }
}

/// A layer: its Keras class, its config, its kind (what laq knows of the class: ``LayerKind``),
/// and the tensors each of its calls consumes.
public struct Layer: Sendable {
    public var name: String
    public var className: String
    /// The config as imported (what export and diff show).
    public var config: JSONValue
    /// The config parsed: weights, shapes and the op that runs the layer.
    public var kind: any LayerKind
    /// One entry per call of the layer (node); each lists the input tensors of that call.
    public var inbound: [[TensorRef]]
    /// Where a call's explicit mask is among its inputs (Keras 3 records the `mask=` it passes
    /// a layer whose call takes one, ``Masking``), or nil.
    public var maskInput: Int? = nil
    /// The nested models that contain this layer, outermost first (empty at the top level); the
    /// layer's `name` is then `scope/…/localName`.
    public var scope: [String] = []
    /// A layer inside a keras_hub block (``GraphBuilder``): the Python attribute the block holds
    /// it in (`_self_attention_layer`). Keras 3 files keep its variables in the block's group
    /// under that name rather than under the layer's own.
    public var attribute: String? = nil
    /// A layer of a keras_hub block called in a model (``GraphBuilder``): an input carrying a
    /// Keras mask is refused, because inside the block Keras passes masks in ways its layers,
    /// run one by one, would not.
    public var maskFreeBlock: MaskFreeBlock? = nil

    /// The name the layer has inside its own model (the config's `name`).
    public var localName: String { scope.isEmpty ? name : String(name.dropFirst(scope.joined(separator: "/").count + 1)) }

    /// Short names of its weights, in Keras' order (trainable first): `kernel`, `bias`,
    /// `forward/kernel` for a Bidirectional wrapper, …
    public var weightNames: [String] { kind.weightNames }

    /// A layer of Keras class `className`, its kind parsed from `config`.
    public init(name: String, className: String, config: JSONValue, inbound: [[TensorRef]]) {
        self.init(name: name, entry: ["class_name": .string(className), "config": config], inbound: inbound)
    }

    /// A layer from an architecture config's entry (`class_name`, `config`, and in Keras 3
    /// `module` and `registered_name`), with what each call passes besides its input tensors.
    public init(name: String, entry: JSONValue, inbound: [[TensorRef]], arguments: [CallArguments] = []) {
        self.name = name
        self.className = entry["class_name"]?.stringValue ?? ""
        self.config = entry["config"] ?? .null
        self.kind = LayerRegistry.kind(name: name, entry: entry, calls: arguments)
        self.inbound = inbound
        self.maskInput = arguments.first?.maskInput
    }

    /// The tensors a call computes on: its inputs without the explicit mask.
    public func dataInputs(_ node: [TensorRef]) -> [TensorRef] {
        guard let maskInput else { return node }
        return node.enumerated().filter { $0.offset != maskInput }.map(\.element)
    }
}

/// The keras_hub block (its name and class) a layer belongs to.
public struct MaskFreeBlock: Sendable, Equatable {
    public var name: String
    public var className: String
}

/// What one call of a layer passes besides its input tensors, as the architecture config
/// records it.
public struct CallArguments: Sendable, Equatable {
    /// One positional argument: an input tensor, or a constant (an operator's `3.0` in `x + 3.0`).
    public enum Operand: Sendable, Equatable {
        case tensor
        case constant(JSONValue)
    }

    /// The positional arguments in order (each input tensor of a merge's list is one).
    public var operands: [Operand] = []
    /// Keyword arguments that are not tensors (`training`, `mask`, `use_causal_mask`, …).
    public var keywords: [String: JSONValue] = [:]
    /// The names of keyword arguments passed a tensor (`attention_mask`), sorted: their tensors
    /// follow the positional ones among the call's inputs, in this order.
    public var tensorKeywords: [String] = []

    public init(operands: [Operand] = [], keywords: [String: JSONValue] = [:], tensorKeywords: [String] = []) {
        self.operands = operands
        self.keywords = keywords
        self.tensorKeywords = tensorKeywords
    }

    /// How many input tensors are passed by position.
    public var positionalTensors: Int { operands.filter { $0 == .tensor }.count }

    /// Where the tensor passed as `mask=` is among the call's inputs, when one is.
    public var maskInput: Int? { tensorKeywords.firstIndex(of: "mask").map { positionalTensors + $0 } }

    /// Whether a positional argument is a constant.
    public var hasConstants: Bool { operands.contains { if case .constant = $0 { true } else { false } } }
}

/// A named weight tensor, float32, row-major in Keras' layout.
public struct Weight: Sendable, Equatable {
    /// `<layer>/<short name>`.
    public var name: String
    public var layer: String
    public var shortName: String
    public var shape: [Int]
    public var values: [Float]
    public var trainable: Bool
    /// The dtype in the source file (`float32`, `float16`, `float64`, `bfloat16`).
    public var sourceDType: String
    /// A quantized weight kept packed for execution (`Model(file:packed: true)`): its codes and
    /// levels as stored; `values` is then empty. Use ``dequantizedValues`` for the floats.
    public var packed: PackedCodebook?

    /// `values`, or the packed codes dequantized.
    public var dequantizedValues: [Float] { packed?.dequantized() ?? values }

    /// The number of elements (of `values`, or of the packed tensor).
    public var elementCount: Int { shape.reduce(1, *) }

    public init(layer: String, shortName: String, shape: [Int], values: [Float], trainable: Bool, sourceDType: String = "float32") {
        self.name = "\(layer)/\(shortName)"
        self.layer = layer
        self.shortName = shortName
        self.shape = shape
        self.values = values
        self.trainable = trainable
        self.sourceDType = sourceDType
    }
}

/// The optimizer state of an Adam-family optimizer (Adam, AdamW, Nadam, Adamax).
public struct OptimizerState: Sendable, Equatable {
    /// Keras class name: `Adam`, `AdamW`, `Nadam`, `Adamax`.
    public var className: String
    /// The optimizer's config as imported.
    public var config: JSONValue
    /// The step counter t.
    public var iterations: Int64?
    public var learningRate: Double?
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// First and second moments per trainable weight.
    public var slots: [OptimizerSlot]
    /// Which naming scheme the slots came in (for provenance).
    public var scheme: String

    public init(className: String, config: JSONValue, iterations: Int64?, learningRate: Double?, beta1: Double,
                beta2: Double, epsilon: Double, slots: [OptimizerSlot], scheme: String) {
        self.className = className
        self.config = config
        self.iterations = iterations
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.slots = slots
        self.scheme = scheme
    }

    /// The optimizers whose second moment laq can use as a diagonal Hessian estimate.
    public static let adamFamily: Set<String> = ["Adam", "AdamW", "Nadam", "Adamax"]
}

/// One optimizer slot of one weight: `m` (first moment), `v` (second moment), or for Adamax `u`
/// (the exponentially weighted infinity norm, which plays the role of √v).
public struct OptimizerSlot: Sendable, Equatable {
    public var weight: String
    public var slot: String
    public var values: [Float]

    public init(weight: String, slot: String, values: [Float]) {
        self.weight = weight
        self.slot = slot
        self.values = values
    }
}

/// Where a model came from.
public struct ModelSource: Sendable, Equatable {
    /// `keras-h5` (legacy full model), `keras-weights-h5`, `keras-archive`.
    public var format: String
    public var kerasVersion: String?
    public var backend: String?
    public var file: String?
    public var sha256: String?
    public var bytes: UInt64?

    public init(format: String = "", kerasVersion: String? = nil, backend: String? = nil, file: String? = nil,
                sha256: String? = nil, bytes: UInt64? = nil) {
        self.format = format
        self.kerasVersion = kerasVersion
        self.backend = backend
        self.file = file
        self.sha256 = sha256
        self.bytes = bytes
    }
}
