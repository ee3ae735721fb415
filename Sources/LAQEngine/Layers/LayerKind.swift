import LAQFormat

/// A Keras layer class that laq executes, as one type: its config (parsed once, in its
/// initializer, with Keras' defaults written there and nowhere else), its weights (names,
/// order, shapes, which are quantizable), its output shape, and the op that computes it forward
/// and, for training, backward (in the same file). ``LayerRegistry`` maps Keras' class names to
/// the kinds; a layer of the graph holds its kind (``Layer/kind``).
///
/// Adding a layer: a new file in `Sources/LAQEngine/Layers/` with a type conforming to this
/// protocol and its op, one line in ``LayerRegistry/kinds``, and tests (Keras' own outputs,
/// finite differences for its backward pass).
public protocol LayerKind: Sendable {
    /// Parses a layer's config. Every option is read through `options`, which supplies the
    /// layer's name for errors; an option the initializer neither reads nor declares irrelevant
    /// (``LayerOptions/ignore(_:)``) is refused by name when parsing ends.
    init(_ options: LayerOptions) throws(ModelError)

    /// The layer's weights in the order Keras 3 stores them (its `variable_serialization_spec`:
    /// trainable first, but for a layer Keras quantized); legacy `.h5` files list the trainable
    /// ones first (``KerasWeightGroup``).
    var weights: [WeightSpec] { get }

    /// Where a Keras 3 weights file keeps the layer's variables, relative to the layer's group
    /// under `/layers`, in weight order (default: `vars`).
    var keras3VariableGroups: [String] { get }

    /// The output shape of a call on inputs of these shapes (batch first, nil: unknown); throws
    /// ``ModelError/shapeMismatch(layer:reason:)`` when they do not fit the config.
    func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape

    /// The shapes the weights must have for a call on inputs of these shapes (those the config
    /// and the inputs determine).
    func weightShapes(_ inputs: [Shape]) -> [String: [Int]]

    /// The op that runs the layer with its weights.
    func op(_ context: OpContext) throws(EngineError) -> any Op

    /// Keras' implicit mask (``Masking``): whether the output of a call carries one, given
    /// which of the call's inputs do. Throws for a mask Keras would apply in a way laq does not
    /// compute. Default: Keras' base layer without mask support, which ignores its inputs'
    /// masks and passes none on. `keras3`: Keras ≥ 3 saved the model.
    func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool

    /// The mask of a call's output (1 keep, 0 masked; see ``Masking``), for a call whose output
    /// carries one (``carriesMask(_:layer:)``). `keras3`: Keras ≥ 3 saved the model.
    func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor?

    /// In inference, each sample of a call's output depends on that sample of its inputs alone
    /// (nothing reduces, reorders or broadcasts along the batch axis): a prediction may then run
    /// a batch in chunks of samples (``Executor``). Default: false, which keeps a batch whole.
    var keepsSamplesApart: Bool { get }
}

extension LayerKind {
    public var weights: [WeightSpec] { [] }
    public var keras3VariableGroups: [String] { ["vars"] }
    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { [:] }
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { false }
    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? { nil }
    public var keepsSamplesApart: Bool { false }

    /// The short names of the weights, in Keras' order.
    public var weightNames: [String] { weights.map(\.name) }

    /// Every weight one value per channel of the (first) input's last axis (normalization layers).
    func perChannelWeightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard let last = inputs.first?.last ?? nil else { return [:] }
        return Dictionary(uniqueKeysWithValues: weightNames.map { ($0, [last]) })
    }

    /// The one input of a single-input layer, or a shape error.
    func single(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        guard inputs.count == 1 else { throw .shapeMismatch(layer: layer, reason: "expects one input, has \(inputs.count)") }
        return inputs[0]
    }
}

/// One weight of a layer kind.
public struct WeightSpec: Sendable, Equatable {
    /// Keras' short name (`kernel`, `moving_mean`, `forward/recurrent_kernel`).
    public var name: String
    public var trainable: Bool
    /// Quantized by default: the kernel of a product (along its last axis, the outputs).
    public var quantizable: Bool
    /// Gate blocks along the last axis of a recurrent kernel (LSTM 4, GRU 3), 1 otherwise.
    public var gates: Int
    /// The names of its dimensions in Keras' layout, for the `.laq` tensor table.
    public var axes: [String]?
    /// The name Keras gives the variable in its files, when it is not `name` (a variable made
    /// without a name is `variable`, then `variable_1`, … in one model).
    public var kerasName: String
    /// Integer codes Keras quantized (``KerasQuantization``): stored in `.laq` files as an 8-bit
    /// table of the integers −128…127, exactly and in a quarter of float32's bytes.
    public var integerCodes: Bool

    public init(_ name: String, trainable: Bool = true, quantizable: Bool = false, gates: Int = 1, axes: [String]? = nil, kerasName: String? = nil,
                integerCodes: Bool = false) {
        self.name = name
        self.kerasName = kerasName ?? name
        self.trainable = trainable
        self.quantizable = quantizable
        self.gates = gates
        self.axes = axes
        self.integerCodes = integerCodes
    }

    /// The same weight under a prefix (`forward/kernel` of a Bidirectional wrapper).
    func prefixed(_ prefix: String) -> WeightSpec {
        var copy = self
        copy.name = prefix + name
        copy.kerasName = prefix + kerasName
        return copy
    }
}

/// A layer's Keras config as a layer kind reads it: typed options with their defaults, each
/// checked, and a record of what was read, so that an option laq does not execute is refused by
/// name instead of ignored (``finish()``).
public final class LayerOptions {
    /// The layer's name, for errors.
    public let layer: String
    public let className: String
    let config: [String: JSONValue]
    /// What the layer's calls pass besides their input tensors (all calls pass the same).
    public let call: CallArguments
    private var read: Set<String> = []
    private var readKeywords: Set<String> = []
    private var quantizationRead = false

    /// Largest value of a size option (units, filters, kernel size, strides, …) laq accepts.
    public static let maxOption = 1 << 24
    /// Largest tensor dimension or element count per sample laq accepts.
    public static let maxDimension = 1 << 40

    /// Options no layer's computation depends on: names, training-only settings (initializers,
    /// regularizers, constraints), the variables' dtype (weights are imported as float32), and
    /// the input shape a tf.keras Sequential's first layer carries (the graph reads it).
    static func alwaysIrrelevant(_ key: String) -> Bool {
        ["name", "trainable", "dtype", "activity_regularizer", "batch_input_shape", "input_shape"].contains(key) || key.hasSuffix("_initializer")
            || key.hasSuffix("_regularizer") || key.hasSuffix("_constraint")
    }

    public init(layer: String, className: String, config: JSONValue, call: CallArguments = CallArguments()) {
        self.layer = layer
        self.className = className
        self.call = call
        if case let .object(members) = config { self.config = members } else { self.config = [:] }
    }

    /// A config value as Keras' JSON writes it, for messages (`[1, 2]`, `"abd"`, `null`).
    public static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case let .bool(flag): flag ? "true" : "false"
        case let .int(number): "\(number)"
        case let .double(number): "\(number)"
        case let .string(text): "'\(text)'"
        case let .array(items): "[" + items.map(describe).joined(separator: ", ") + "]"
        case .object: "{…}"
        }
    }

    /// The error for an option laq cannot execute faithfully.
    public func unsupported(_ option: String) -> ModelError {
        .unsupportedOption(layer: layer, className: className, option: option)
    }

    func invalid(_ key: String, _ expected: String) -> ModelError {
        .invalidConfig(path: "layer '\(layer)' (\(className)).\(key)", reason: "expected \(expected), found \(config[key].map { "\($0)" } ?? "nothing")")
    }

    /// The raw value of `key` (nil when absent or null), marked as read.
    public func value(_ key: String) -> JSONValue? {
        read.insert(key)
        guard let value = config[key], value != .null else { return nil }
        return value
    }

    /// Whether the config has `key` with a non-null value (without reading it).
    public func has(_ key: String) -> Bool { config[key].map { $0 != .null } ?? false }

    /// Options that do not change what laq computes (Keras' `unroll`, `implementation`, …).
    public func ignore(_ keys: String...) { for key in keys { read.insert(key) } }

    public func int(_ key: String, default fallback: Int? = nil, min: Int = 0, max: Int = LayerOptions.maxOption) throws(ModelError) -> Int {
        guard let value = value(key) else {
            if let fallback { return fallback }
            throw invalid(key, "an integer")
        }
        guard case let .int(raw) = value, let number = Int(exactly: raw), number >= min, number <= max else {
            throw invalid(key, "an integer in \(min)…\(max)")
        }
        return number
    }

    public func double(_ key: String, default fallback: Double) throws(ModelError) -> Double {
        switch value(key) {
        case nil: return fallback
        case let .double(number)?: return number
        case let .int(number)?: return Double(number)
        default: throw invalid(key, "a number")
        }
    }

    public func optionalDouble(_ key: String) throws(ModelError) -> Double? {
        guard has(key) else { read.insert(key); return nil }
        return try double(key, default: 0)
    }

    public func bool(_ key: String, default fallback: Bool) throws(ModelError) -> Bool {
        switch value(key) {
        case nil: return fallback
        case let .bool(flag)?: return flag
        default: throw invalid(key, "true or false")
        }
    }

    public func string(_ key: String, default fallback: String) throws(ModelError) -> String {
        switch value(key) {
        case nil: return fallback
        case let .string(text)?: return text
        default: throw invalid(key, "a string")
        }
    }

    /// `count` integers ≥ `min`: a list, or one integer for every axis (`kernel_size=3`).
    public func ints(_ key: String, count: Int, default fallback: Int? = nil, min: Int = 1) throws(ModelError) -> [Int] {
        switch value(key) {
        case nil:
            if let fallback { return Array(repeating: fallback, count: count) }
            throw invalid(key, "\(count) integers")
        case let .int(single)?:
            guard single >= min, single <= LayerOptions.maxOption else { throw invalid(key, "integers in \(min)…\(LayerOptions.maxOption)") }
            return Array(repeating: Int(single), count: count)
        case let .array(items)?:
            var values: [Int] = []
            for item in items {
                guard case let .int(v) = item, v >= min, v <= LayerOptions.maxOption else { throw invalid(key, "\(count) integers in \(min)…\(LayerOptions.maxOption)") }
                values.append(Int(v))
            }
            guard values.count == count else { throw invalid(key, "\(count) integers") }
            return values
        default:
            throw invalid(key, "\(count) integers")
        }
    }

    /// `padding`: `valid` or `same` (Keras' `causal` and others are refused).
    public func padding(default fallback: String = "valid") throws(ModelError) -> Bool {
        let padding = try string("padding", default: fallback)
        guard padding == "valid" || padding == "same" else { throw unsupported("padding '\(padding)'") }
        return padding == "same"
    }

    /// `data_format`: only `channels_last` is executed.
    public func channelsLast() throws(ModelError) {
        let format = try string("data_format", default: "channels_last")
        guard format == "channels_last" else { throw unsupported("data_format \(format)") }
    }

    /// An activation option, by Keras' name (a string or a serialized function), checked
    /// against the activations laq executes.
    public func activation(_ key: String = "activation", default fallback: String = "linear") throws(ModelError) -> String {
        guard let value = value(key) else { return fallback }
        guard let name = Activation.name(of: value) else { throw unsupported("an activation given as code or as a layer") }
        guard Activation.names.contains(name) else { throw .unsupportedActivation(layer: layer, activation: name) }
        return name
    }

    /// Refuses `key` unless it is absent or has Keras' default value.
    public func expectDefault(_ key: String, _ defaultValue: JSONValue, _ description: @autoclosure () -> String) throws(ModelError) {
        read.insert(key)
        guard let value = config[key], value != defaultValue else { return }
        if defaultValue == .null || value != .null { throw unsupported(description()) }
    }

    /// Keras' own quantization of the layer (``KerasQuantization``), or nil, for a kind that
    /// executes it; ``finish()`` refuses a quantized layer whose kind did not ask.
    public func kerasQuantization() throws(ModelError) -> KerasQuantization? {
        quantizationRead = true
        return try KerasQuantization.parse(self)
    }

    /// A keyword argument of the layer's calls (`use_causal_mask`), marked as read.
    public func callKeyword(_ key: String) -> JSONValue? {
        readKeywords.insert(key)
        guard let value = call.keywords[key], value != .null else { return nil }
        return value
    }

    /// The constant positional arguments of the layer's calls, marked as read.
    public func constantOperands() -> [JSONValue] {
        readKeywords.insert("(constants)")
        return call.operands.compactMap { if case let .constant(value) = $0 { value } else { nil } }
    }

    /// Where each tensor argument of the layer's calls is among a call's inputs, by parameter
    /// name: positional tensors take the first of `names` in order, keyword tensors their own
    /// name. Refuses more positional tensors than `names`, and a tensor keyword not in `names`.
    public func tensorArguments(_ names: [String]) throws(ModelError) -> [String: Int] {
        readKeywords.insert("(tensor keywords)")
        let positional = call.positionalTensors
        guard positional <= names.count else { throw unsupported("\(positional) positional tensor arguments (at most \(names.count))") }
        var slots: [String: Int] = [:]
        for index in 0..<positional { slots[names[index]] = index }
        for (offset, key) in call.tensorKeywords.enumerated() where key != "mask" {
            guard names.contains(key), slots[key] == nil else { throw unsupported("a tensor passed as \(key)=") }
            slots[key] = positional + offset
        }
        return slots
    }

    /// Refuses every option that was neither read nor declared irrelevant, by name, and every
    /// call argument the kind did not read: constants, and keywords other than inference's
    /// `training=False` and an absent `mask`.
    public func finish() throws(ModelError) {
        if !quantizationRead, let mode = KerasQuantization.mode(ofPolicy: config["dtype"]) {
            throw unsupported("Keras' '\(mode)' quantization")
        }
        let left = config.keys.filter { !read.contains($0) && !Self.alwaysIrrelevant($0) }.sorted()
        guard left.isEmpty else {
            throw unsupported(left.count == 1 ? "option '\(left[0])'" : "options \(left.map { "'\($0)'" }.joined(separator: ", "))")
        }
        // An explicit `mask=` is the graph's to pass (``Layer/maskInput``).
        let keywords = call.tensorKeywords.filter { $0 != "mask" }
        if !keywords.isEmpty, !readKeywords.contains("(tensor keywords)") {
            throw unsupported("tensors passed by keyword (\(keywords.joined(separator: ", ")))")
        }
        if call.hasConstants, !readKeywords.contains("(constants)") {
            throw unsupported("a constant argument in its call (\(constantOperands().map { "\($0)" }.joined(separator: ", ")))")
        }
        for (key, value) in call.keywords.sorted(by: { $0.key < $1.key }) where !readKeywords.contains(key) {
            if key == "training", value == .null || value == .bool(false) { continue }
            if key == "mask", value == .null { continue }
            throw unsupported("the call keyword \(key)=\(value)")
        }
    }
}
