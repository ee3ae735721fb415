import LAQFormat

/// A tensor shape with the batch dimension first; nil entries are unknown.
public typealias Shape = [Int?]

extension Model {
    /// The output shape of every layer (batch first), computed from the input layers' shapes
    /// with Keras' rules; throws when shapes do not fit together.
    public func outputShapes() throws(ModelError) -> [String: Shape] {
        var shapes: [String: Shape] = [:]
        for layer in layers {
            let inputs = (layer.inbound.first ?? []).map { shapes[$0.layer] ?? [] }
            shapes[layer.name] = try ShapeRules.output(of: layer, inputs: inputs)
        }
        return shapes
    }
}

enum ShapeRules {
    static func ints(_ value: JSONValue?, count: Int, default fallback: Int? = nil) -> [Int]? {
        switch value {
        case let .int(single)?: return Array(repeating: Int(single), count: count)
        case let .array(items)?:
            let values = items.compactMap { item -> Int? in if case let .int(v) = item { return Int(v) } else { return nil } }
            return values.count == count ? values : nil
        case nil, .null?: return fallback.map { Array(repeating: $0, count: count) }
        default: return nil
        }
    }

    static func dims(_ value: JSONValue?) -> Shape? {
        guard case let .array(items)? = value else { return nil }
        return items.map { item -> Int? in if case let .int(v) = item { return Int(v) } else { return nil } }
    }

    /// Output length of a window op: valid ⌊(n − d·(k−1) − 1)/s⌋ + 1, same ⌈n/s⌉.
    static func windowed(_ length: Int?, kernel: Int, stride: Int, dilation: Int, padding: String) -> Int? {
        guard let length else { return nil }
        if padding == "same" { return (length + stride - 1) / stride }
        let span = dilation * (kernel - 1) + 1
        return length >= span ? (length - span) / stride + 1 : 0
    }

    static func output(of layer: Layer, inputs: [Shape]) throws(ModelError) -> Shape {
        let config = layer.config
        let className = LayerCatalog.canonical(layer.className)
        func fail(_ reason: String) -> ModelError { .shapeMismatch(layer: layer.name, reason: reason) }
        func one() throws(ModelError) -> Shape {
            guard inputs.count == 1, let shape = inputs.first else { throw fail("expects one input, has \(inputs.count)") }
            return shape
        }
        func int(_ key: String) -> Int? { if case let .int(v)? = config[key] { return Int(v) } else { return nil } }
        switch className {
        case "InputLayer":
            guard let shape = dims(config["batch_shape"] ?? config["batch_input_shape"]) else {
                throw fail("InputLayer without batch_shape")
            }
            return shape
        case "Dense":
            let input = try one()
            guard input.count >= 2, let units = int("units") else { throw fail("Dense needs an input of rank ≥ 2 and units") }
            return Array(input.dropLast()) + [units]
        case "Conv1D", "Conv2D", "DepthwiseConv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D":
            let input = try one()
            let spatial = className.hasSuffix("1D") ? 1 : 2
            guard input.count == spatial + 2 else { throw fail("expects rank \(spatial + 2) input, got \(input.count)") }
            let pooling = className.contains("Pooling")
            let kernelKey = pooling ? "pool_size" : "kernel_size"
            guard let kernel = ints(config[kernelKey], count: spatial, default: pooling ? 2 : nil) else { throw fail("bad \(kernelKey)") }
            let strides = ints(config["strides"], count: spatial) ?? (pooling ? kernel : Array(repeating: 1, count: spatial))
            let dilation = ints(config["dilation_rate"], count: spatial, default: 1) ?? Array(repeating: 1, count: spatial)
            let padding = config["padding"]?.stringValue ?? "valid"
            guard padding == "valid" || padding == "same" else {
                throw .unsupportedOption(layer: layer.name, className: className, option: "padding '\(padding)'")
            }
            var output: Shape = [input[0]]
            for axis in 0..<spatial {
                output.append(windowed(input[axis + 1], kernel: kernel[axis], stride: strides[axis], dilation: dilation[axis], padding: padding))
            }
            let channels = input[spatial + 1]
            switch className {
            case "Conv1D", "Conv2D": output.append(int("filters"))
            case "DepthwiseConv2D": output.append(channels.map { $0 * (int("depth_multiplier") ?? 1) })
            default: output.append(channels)
            }
            return output
        case "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D":
            let input = try one()
            let spatial = className.hasSuffix("1D") ? 1 : 2
            guard input.count == spatial + 2 else { throw fail("expects rank \(spatial + 2) input") }
            if config["keepdims"] == .bool(true) { return [input[0]] + Array(repeating: 1, count: spatial) + [input.last!] }
            return [input[0], input.last!]
        case "BatchNormalization", "LayerNormalization", "Dropout", "Activation", "ReLU", "LeakyReLU", "Softmax":
            return try one()
        case "Flatten":
            let input = try one()
            let rest = input.dropFirst()
            return [input[0], rest.contains(where: { $0 == nil }) ? nil : rest.reduce(1) { $0 * $1! }]
        case "Reshape":
            let input = try one()
            guard var target = dims(config["target_shape"]) else { throw fail("Reshape without target_shape") }
            let known = input.dropFirst().allSatisfy { $0 != nil } ? input.dropFirst().reduce(1) { $0 * $1! } : nil
            if let unknown = target.firstIndex(where: { $0 == -1 || $0 == nil }) {
                let rest = target.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * ($1.element ?? 1) }
                target[unknown] = known.map { rest > 0 ? $0 / rest : 0 }
            }
            if let known, target.allSatisfy({ $0 != nil }), target.reduce(1, { $0 * $1! }) != known {
                throw fail("cannot reshape \(input.dropFirst()) to \(target)")
            }
            return [input[0]] + target
        case "Permute":
            let input = try one()
            guard let order = ints(config["dims"], count: input.count - 1), Set(order) == Set(1..<input.count) else { throw fail("bad dims") }
            return [input[0]] + order.map { input[$0] }
        case "Add", "Subtract", "Multiply":
            guard inputs.count >= 2 else { throw fail("\(className) needs at least two inputs") }
            if className == "Subtract", inputs.count != 2 { throw fail("Subtract needs exactly two inputs") }
            let first = inputs[0]
            for other in inputs.dropFirst() where other.count != first.count || zip(other, first).contains(where: { $0 != nil && $1 != nil && $0 != $1 }) {
                throw fail("shapes \(first) and \(other) differ")
            }
            return first
        case "Concatenate":
            guard inputs.count >= 2 else { throw fail("Concatenate needs at least two inputs") }
            let rank = inputs[0].count
            var axis = int("axis") ?? -1
            if axis < 0 { axis += rank }
            guard axis > 0, axis < rank, inputs.allSatisfy({ $0.count == rank }) else { throw fail("bad axis or ranks") }
            var output = inputs[0]
            output[axis] = inputs.contains(where: { $0[axis] == nil }) ? nil : inputs.reduce(0) { $0 + $1[axis]! }
            return output
        case "Embedding":
            let input = try one()
            return input + [int("output_dim")]
        case "SimpleRNN", "LSTM", "GRU":
            let input = try one()
            guard input.count == 3 else { throw fail("recurrent layers need (batch, time, features) input, got rank \(input.count)") }
            let units = int("units")
            return config["return_sequences"] == .bool(true) ? [input[0], input[1], units] : [input[0], units]
        case "Bidirectional":
            let input = try one()
            guard input.count == 3, let inner = config["layer"]?["config"] else { throw fail("bad Bidirectional") }
            let units: Int? = { if case let .int(v)? = inner["units"] { return Int(v) } else { return nil } }()
            let width = (config["merge_mode"]?.stringValue ?? "concat") == "concat" ? units.map { $0 * 2 } : units
            return inner["return_sequences"] == .bool(true) ? [input[0], input[1], width] : [input[0], width]
        default:
            throw .unsupportedLayer(layer: layer.name, className: layer.className)
        }
    }
}
