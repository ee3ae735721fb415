import LAQFormat

/// Builds a graph of Keras layers in code, for models whose files store constructor arguments
/// instead of layers: keras_hub's backbones (``KerasHubBackbone``) and the blocks they are made
/// of (``TransformerBlock``). Each layer is made from the Keras config a file would hold
/// for it and parsed by its ``LayerKind`` like any other, so it runs, trains and quantizes as
/// itself.
struct GraphBuilder {
    private(set) var layers: [Layer] = []
    /// The blocks the layers being added belong to, outermost first (``Layer/scope``).
    private(set) var scope: [String]
    /// A keras_hub block used as a layer of a model (``KerasHub/expand(_:name:scope:inbound:arguments:)``):
    /// its layers refuse inputs that carry a Keras mask (``Layer/maskFreeBlock``).
    var maskFreeBlock: MaskFreeBlock?

    init(scope: [String] = []) { self.scope = scope }

    /// An input of the model, named as Keras names it.
    mutating func input(_ name: String, shape: [Int?], dtype: String) -> TensorRef {
        let batchShape = JSONValue.array([.null] + shape.map { $0.map { .int(Int64($0)) } ?? .null })
        return add(name, "InputLayer", ["batch_shape": batchShape, "dtype": .string(dtype)], inputs: [])
    }

    /// A layer of Keras class `className` (module `keras.layers` unless given) with `config`,
    /// called on `inputs` by position, with `keywords` (non-tensor call arguments) and the
    /// tensors after the positional ones passed as `tensorKeywords`. `attribute`: the name of
    /// the Python attribute its block holds it in (``Layer/attribute``), for a layer inside a block.
    @discardableResult
    mutating func add(
        _ name: String, _ className: String, module: String = "keras.layers", registeredName: String? = nil,
        _ config: [String: JSONValue], inputs: [TensorRef], keywords: [String: JSONValue] = [:],
        tensorKeywords: [String] = [], attribute: String? = nil
    ) -> TensorRef {
        let qualified = (scope + [name]).joined(separator: "/")
        var members = config
        members["name"] = .string(name)
        var entry: [String: JSONValue] = ["class_name": .string(className), "module": .string(module), "config": .object(members)]
        if let registeredName { entry["registered_name"] = .string(registeredName) }
        let operands = Array(repeating: CallArguments.Operand.tensor, count: inputs.count - tensorKeywords.count)
        let arguments = CallArguments(operands: operands, keywords: keywords, tensorKeywords: tensorKeywords)
        var layer = Layer(name: qualified, entry: .object(entry), inbound: inputs.isEmpty ? [] : [inputs], arguments: [arguments])
        layer.scope = scope
        layer.attribute = attribute
        layer.maskFreeBlock = maskFreeBlock
        layers.append(layer)
        return TensorRef(layer: qualified)
    }

    /// One of Keras 3's operations on symbolic tensors (module `keras.src.ops.…`): `x[key]`,
    /// `expand_dims(x, axis)`, called on `input` with `constants` after it.
    @discardableResult
    mutating func operation(_ name: String, _ className: String, module: String, _ config: [String: JSONValue], input: TensorRef, constants: [JSONValue] = []) -> TensorRef {
        operation(name, className, module: module, config, inputs: [input], constants: constants)
    }

    /// The same on several tensors (`minimum(a, b)`).
    @discardableResult
    mutating func operation(_ name: String, _ className: String, module: String, _ config: [String: JSONValue], inputs: [TensorRef], constants: [JSONValue] = []) -> TensorRef {
        let qualified = (scope + [name]).joined(separator: "/")
        var members = config
        members["name"] = .string(name)
        let entry: JSONValue = ["class_name": .string(className), "module": .string(module), "config": .object(members)]
        let arguments = CallArguments(operands: Array(repeating: .tensor, count: inputs.count) + constants.map { .constant($0) })
        var layer = Layer(name: qualified, entry: entry, inbound: [inputs], arguments: [arguments])
        layer.scope = scope
        layer.maskFreeBlock = maskFreeBlock
        layers.append(layer)
        return TensorRef(layer: qualified)
    }

    /// Adds the layers `body` builds as one block named `name` (its layers are `name/…`), a
    /// layer of the graph whose Keras 3 group is found by its name.
    mutating func block<Result>(_ name: String, _ body: (inout GraphBuilder) throws(ModelError) -> Result) throws(ModelError) -> Result {
        let saved = scope
        scope.append(name)
        defer { scope = saved }
        return try body(&self)
    }
}
