import LAQFormat

/// Runs a model's graph forward (inference), layer by layer in the config's order.
public struct Executor: Sendable {
    public let model: Model
    let ops: [String: any Op]
    /// Every call of every layer, inputs first (``Model/calls()``): a shared layer runs once per call.
    let calls: [LayerCall]

    /// Builds one op per layer; throws when a layer, option or weight cannot be executed.
    /// `activations`: the precision of the activations that packed binary, ternary and linear
    /// m-bit kernels multiply (``ActivationPrecision``); everything else runs in float32.
    public init(model: Model, activations: ActivationPrecision = .float32) throws(EngineError) {
        do { try model.validate() } catch { throw .invalidModel(error.description) }
        self.model = model
        var weights: [String: Weight] = [:]
        for weight in model.weights { weights[weight.name] = weight }
        let keras3 = !(model.source.kerasVersion?.hasPrefix("2.") ?? false) && !(model.source.kerasVersion?.hasPrefix("1.") ?? false)
        var ops: [String: any Op] = [:]
        for layer in model.layers {
            ops[layer.name] = try Self.op(for: OpContext(layer: layer, weights: weights, keras3: keras3, activations: activations))
        }
        self.ops = ops
        do { calls = try model.calls() } catch { throw .invalidModel(error.description) }
    }

    static func op(for context: OpContext) throws(EngineError) -> any Op {
        let layer = context.layer
        let config = layer.config
        switch LayerCatalog.canonical(layer.className) {
        case "InputLayer": return IdentityOp()
        case "Dropout": return DropoutOp(rate: Float(context.double("rate", 0)))
        case "Dense": return try DenseOp(context)
        case "Conv1D": return try ConvolutionOp(context, spatial: 1)
        case "Conv2D": return try ConvolutionOp(context, spatial: 2)
        case "DepthwiseConv2D": return try DepthwiseOp(context)
        case "MaxPooling1D": return try PoolingOp(context, spatial: 1, average: false)
        case "MaxPooling2D": return try PoolingOp(context, spatial: 2, average: false)
        case "AveragePooling1D": return try PoolingOp(context, spatial: 1, average: true)
        case "AveragePooling2D": return try PoolingOp(context, spatial: 2, average: true)
        case "GlobalAveragePooling1D": return GlobalPoolingOp(name: layer.name, spatial: 1, average: true, keepDimensions: config["keepdims"] == .bool(true))
        case "GlobalAveragePooling2D": return GlobalPoolingOp(name: layer.name, spatial: 2, average: true, keepDimensions: config["keepdims"] == .bool(true))
        case "GlobalMaxPooling1D": return GlobalPoolingOp(name: layer.name, spatial: 1, average: false, keepDimensions: config["keepdims"] == .bool(true))
        case "GlobalMaxPooling2D": return GlobalPoolingOp(name: layer.name, spatial: 2, average: false, keepDimensions: config["keepdims"] == .bool(true))
        case "BatchNormalization": return try BatchNormalizationOp(context)
        case "LayerNormalization": return try LayerNormalizationOp(context)
        case "Flatten": return ReshapeOp(name: layer.name, target: nil)
        case "Reshape":
            guard case let .array(items)? = config["target_shape"] else { throw .unsupported(layer: layer.name, reason: "no target_shape") }
            return ReshapeOp(name: layer.name, target: items.map { if case let .int(v) = $0 { Int(v) } else { -1 } })
        case "Permute":
            guard case let .array(items)? = config["dims"] else { throw .unsupported(layer: layer.name, reason: "no dims") }
            return PermuteOp(name: layer.name, order: items.compactMap { if case let .int(v) = $0 { Int(v) } else { nil } })
        case "Add": return MergeOp(name: layer.name, kind: .add)
        case "Subtract": return MergeOp(name: layer.name, kind: .subtract)
        case "Multiply": return MergeOp(name: layer.name, kind: .multiply)
        case "Concatenate": return ConcatenateOp(name: layer.name, axis: try context.int("axis", -1))
        case "Activation":
            return ActivationOp(kind: .function(try context.activation(default: "linear")))
        case "ReLU":
            let maxValue = config["max_value"].flatMap { value -> Float? in
                switch value {
                case let .double(v): Float(v)
                case let .int(v): Float(v)
                default: nil
                }
            }
            return ActivationOp.relu(maxValue: maxValue, slope: Float(context.double("negative_slope", 0)), threshold: Float(context.double("threshold", 0)))
        case "LeakyReLU":
            let slope = config["negative_slope"] != nil ? context.double("negative_slope", 0.3) : context.double("alpha", 0.3)
            return ActivationOp.relu(maxValue: nil, slope: Float(slope), threshold: 0)
        case "Softmax":
            let axis = try context.int("axis", -1)
            guard axis == -1 else { throw .unsupported(layer: layer.name, reason: "softmax over axis \(axis)") }
            return ActivationOp(kind: .function(.softmax))
        case "Embedding": return try EmbeddingOp(context)
        case "SimpleRNN", "LSTM", "GRU": return try RecurrentOp(context, className: LayerCatalog.canonical(layer.className))
        case "Bidirectional": return try BidirectionalOp(context)
        default: throw .unsupported(layer: layer.name, reason: "class \(layer.className)")
        }
    }

    /// The model's outputs for `inputs` (one tensor per model input, in order).
    public func predict(_ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        let values = try callOutputs(inputs)
        var outputs: [Tensor] = []
        for ref in model.outputs {
            guard let tensor = values[TensorRef(layer: ref.layer, node: ref.node)] else { throw .badInput(name: ref.layer, reason: "was not computed") }
            outputs.append(tensor)
        }
        return outputs
    }

    /// Every layer's output for `inputs` (input layers: the inputs themselves), by layer name;
    /// a shared layer's later calls as `layer[node][0]` (``TensorRef/description``).
    public func activations(_ inputs: [Tensor]) throws(EngineError) -> [String: Tensor] {
        var named: [String: Tensor] = [:]
        for (ref, tensor) in try callOutputs(inputs) { named[ref.description] = tensor }
        return named
    }

    /// The output of every call of every layer, in ``Model/calls()`` order.
    func callOutputs(_ inputs: [Tensor]) throws(EngineError) -> [TensorRef: Tensor] {
        guard inputs.count == model.inputs.count else {
            throw .badInput(name: "(model)", reason: "the model takes \(model.inputs.count) inputs, \(inputs.count) given")
        }
        var values: [TensorRef: Tensor] = [:]
        for (ref, tensor) in zip(model.inputs, inputs) { values[TensorRef(layer: ref.layer)] = tensor }
        for call in calls {
            let layer = model.layers[call.layer]
            if layer.inbound.isEmpty {
                // An input layer: validation guarantees it is one of the model's inputs.
                guard values[TensorRef(layer: layer.name)] != nil else { throw .badInput(name: layer.name, reason: "no value given") }
                continue
            }
            var arguments: [Tensor] = []
            for ref in model.inputs(of: call) {
                guard let value = values[ref] else { throw .badInput(name: layer.name, reason: "its input '\(ref)' was not computed") }
                arguments.append(value)
            }
            guard let op = ops[layer.name] else { throw .unsupported(layer: layer.name, reason: "no op") }
            values[model.output(of: call)] = try op.forward(arguments)
        }
        return values
    }
}
