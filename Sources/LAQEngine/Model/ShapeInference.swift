import LAQFormat

/// A tensor shape with the batch dimension first; nil entries are unknown.
public typealias Shape = [Int?]

extension Model {
    /// The output shape of every layer's first call (batch first), computed from the input
    /// layers' shapes with Keras' rules; throws when shapes do not fit together.
    public func outputShapes() throws(ModelError) -> [String: Shape] {
        var shapes: [String: Shape] = [:]
        for (ref, shape) in try callShapes() where ref.node == 0 { shapes[ref.layer] = shape }
        return shapes
    }

    /// The output shape of every call of every layer (``calls()``), by the tensor it produces.
    public func callShapes() throws(ModelError) -> [TensorRef: Shape] {
        var shapes: [TensorRef: Shape] = [:]
        for call in try calls() {
            let inputs = self.inputs(of: call).map { shapes[$0] ?? [] }
            shapes[output(of: call)] = try ShapeRules.output(of: layers[call.layer], inputs: inputs)
        }
        return shapes
    }

    /// The shape of the first input of each call of `layer` (nil for an input layer), from
    /// ``callShapes()``: what its weights' shapes follow.
    public func inputShapes(of layer: Layer, in shapes: [TensorRef: Shape]) -> [Shape] {
        layer.inbound.compactMap { node in node.first.flatMap { shapes[$0] } }
    }
}

enum ShapeRules {
    /// `(None, 28, 28, 1)`, as Keras prints shapes.
    static func describe(_ shape: Shape) -> String {
        "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    }

    /// The product of non-negative dimensions, or nil when it exceeds ``LayerCatalog/maxDimension``.
    static func checkedProduct(_ values: [Int]) -> Int? {
        var product = 1
        for value in values {
            let (next, overflow) = product.multipliedReportingOverflow(by: value)
            guard !overflow, next <= LayerCatalog.maxDimension else { return nil }
            product = next
        }
        return product
    }

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
            guard let shape = dims(config["batch_shape"] ?? config["batch_input_shape"]), !shape.isEmpty,
                  shape.allSatisfy({ ($0 ?? 0) >= 0 && ($0 ?? 0) <= LayerCatalog.maxDimension })
            else {
                throw fail("InputLayer needs a batch_shape of rank ≥ 1 with dimensions in 0…\(LayerCatalog.maxDimension)")
            }
            return shape
        case "Dense":
            let input = try one()
            guard input.count >= 2, let units = int("units"), units >= 1, units <= LayerCatalog.maxOption else {
                throw fail("Dense needs an input of rank ≥ 2 and units ≥ 1")
            }
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
            guard (kernel + strides + dilation).allSatisfy({ $0 >= 1 && $0 <= LayerCatalog.maxOption }) else {
                throw fail("\(kernelKey), strides and dilation_rate must be ≥ 1")
            }
            var output: Shape = [input[0]]
            for axis in 0..<spatial {
                output.append(input[axis + 1].map {
                    Window(input: $0, kernel: kernel[axis], stride: strides[axis], dilation: dilation[axis], same: padding == "same").output
                })
            }
            let channels = input[spatial + 1]
            switch className {
            case "Conv1D", "Conv2D":
                guard let filters = int("filters"), filters >= 1, filters <= LayerCatalog.maxOption else { throw fail("filters must be ≥ 1") }
                output.append(filters)
            case "DepthwiseConv2D":
                let multiplier = int("depth_multiplier") ?? 1
                guard multiplier >= 1, multiplier <= LayerCatalog.maxOption else { throw fail("depth_multiplier must be ≥ 1") }
                output.append(channels.map { $0 * multiplier })
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
            guard let first = input.first else { throw fail("Flatten needs a batch dimension") }
            let rest = Array(input.dropFirst())
            if rest.contains(where: { $0 == nil }) { return [first, nil] }
            guard let product = checkedProduct(rest.map { $0! }) else { throw fail("flattened size overflows") }
            return [first, product]
        case "Reshape":
            let input = try one()
            guard let first = input.first else { throw fail("Reshape needs a batch dimension") }
            guard var target = dims(config["target_shape"]), target.allSatisfy({ $0 == nil || $0! >= -1 && $0! <= LayerCatalog.maxDimension }),
                  target.filter({ $0 == nil || $0 == -1 }).count <= 1
            else { throw fail("target_shape needs dimensions ≥ 0 and at most one -1") }
            let rest = Array(input.dropFirst())
            let known = rest.allSatisfy { $0 != nil } ? checkedProduct(rest.map { $0! }) : nil
            if let unknown = target.firstIndex(where: { $0 == -1 || $0 == nil }) {
                let rest = target.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * ($1.element ?? 1) }
                target[unknown] = known.map { rest > 0 ? $0 / rest : 0 }
            }
            if let known, target.allSatisfy({ $0 != nil }), checkedProduct(target.map { $0! }) != known {
                throw fail("cannot reshape \(rest) to \(target)")
            }
            return [first] + target
        case "Permute":
            let input = try one()
            guard input.count >= 2, let order = ints(config["dims"], count: input.count - 1), Set(order) == Set(1..<input.count) else {
                throw fail("dims must be a permutation of 1…\(max(input.count - 1, 1))")
            }
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
            for other in inputs.dropFirst() {
                for dim in 0..<rank where dim != axis {
                    if let a = inputs[0][dim], let b = other[dim], a != b { throw fail("shapes \(inputs[0]) and \(other) differ outside axis \(axis)") }
                }
            }
            var output = inputs[0]
            output[axis] = inputs.contains(where: { $0[axis] == nil }) ? nil : inputs.reduce(0) { $0 + $1[axis]! }
            return output
        case "Embedding":
            let input = try one()
            guard let width = int("output_dim"), let rows = int("input_dim"), width >= 1, rows >= 1,
                  width <= LayerCatalog.maxOption, rows <= LayerCatalog.maxDimension else { throw fail("input_dim and output_dim must be ≥ 1") }
            return input + [width]
        case "SimpleRNN", "LSTM", "GRU":
            let input = try one()
            guard input.count == 3 else { throw fail("recurrent layers need (batch, time, features) input, got rank \(input.count)") }
            guard let units = int("units"), units >= 1, units <= LayerCatalog.maxOption else { throw fail("units must be ≥ 1") }
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
