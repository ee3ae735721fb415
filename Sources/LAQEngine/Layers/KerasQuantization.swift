import LAQFormat

/// Keras' own quantization of a layer (`model.quantize("int8")` or `("int4")`), as its config
/// records it: a quantized dtype policy as the layer's `dtype` (mode `int8`, `int4/<block size>`;
/// Keras ≤ 3.12 names it `int8_from_float32`), and from Keras 3.13 a `quantization_config`
/// naming the quantizer of the layer's inputs and int4's block size. The layer stores integer
/// codes k as its kernel, and computes:
///
/// - int8, and int4 per output channel (block size −1): a float32 scale s per output, K ≈ k / s.
///   For each row x of the input, with an input quantizer (int8's default, AbsMaxQuantizer):
///
///       s_x = r / (max|x| + ε),   q = clip(round(x·s_x), −r, r)      (r = 127, ε = 1e-7)
///       y   = float(q·k) / (s_x·s)                                    (q·k summed exactly, in int32)
///
///   without one (int4's default), y = (x·k) / s.
/// - int4 with a block size B: the inputs fall into groups of B (`g_idx` names each input's);
///   each group has a scale s and a zero point z per output, K = (k − z)·s, and y = x·K.
///
/// int4 codes are packed two to a byte along the outputs (low nibble first; (n ⊕ 8) − 8 gives
/// the code): laq keeps Keras' bytes as they are (an 8-bit table of the integers,
/// ``WeightSpec/integerCodes``), so that export writes them back unchanged. Other modes
/// (float8, GPTQ, AWQ) are refused by name, and so is int4 from Keras before 3.13, which packed
/// and computed differently without recording how.
public struct KerasQuantization: Sendable, Equatable {
    /// Keras' `AbsMaxQuantizer` of the inputs: symmetric, per row (the last axis).
    public struct AbsMax: Sendable, Equatable {
        public var range: Float
        public var epsilon: Float
    }

    public enum Mode: Sendable, Equatable {
        case int8
        /// Int4 codes; `blockSize` nil: one scale per output channel.
        case int4(blockSize: Int?)
    }

    public var mode: Mode
    /// The inputs' quantizer; nil: the kernel alone is quantized.
    public var inputs: AbsMax?

    /// Keras' default input quantizer of int8 layers: AbsMaxQuantizer((−127, 127)), Keras' epsilon.
    static let defaultInputs = AbsMax(range: 127, epsilon: 1e-7)

    /// Whether the kernel has per-group scales and zero points (int4 with a block size).
    var grouped: Bool { if case .int4(let block?) = mode { block > 0 } else { false } }

    /// The mode a `dtype` config value declares: nil for a float policy. Keras 3.2–3.3 wrote a
    /// quantized policy as its name alone (`"int8_from_float32"`).
    static func mode(ofPolicy value: JSONValue?) -> String? {
        if case let .string(name)? = value, let range = name.range(of: "_from_") { return String(name[..<range.lowerBound]) }
        guard case let .object(members)? = value else { return nil }
        let className = members["class_name"]?.stringValue ?? ""
        guard className != "DTypePolicy", className != "FloatDTypePolicy" else { return nil }
        let config = members["config"]
        if let mode = config?["mode"]?.stringValue { return mode }
        if let name = config?["name"]?.stringValue, let range = name.range(of: "_from_") { return String(name[..<range.lowerBound]) }
        return className
    }

    /// The quantization `options` declare (their `dtype` and `quantization_config`), or nil.
    /// As in Keras, the dtype policy decides whether the layer is quantized: a float layer's
    /// `quantization_config` changes nothing. A config's absent keys take the values Keras'
    /// `from_config` gives them (no input quantizer; int4 per channel), not its constructor's.
    static func parse(_ options: LayerOptions) throws(ModelError) -> KerasQuantization? {
        let policyMode = mode(ofPolicy: options.value("dtype"))
        let config = options.value("quantization_config")
        guard let policyMode else { return nil }
        guard let config else {
            guard policyMode == "int8" else {
                throw options.unsupported(policyMode.hasPrefix("int4") ? "Keras' int4 quantization from before Keras 3.13 (no quantization_config)"
                                                                     : "Keras' '\(policyMode)' quantization (laq executes Keras' int8 and int4)")
            }
            return KerasQuantization(mode: .int8, inputs: defaultInputs)
        }
        let settings = config["config"] ?? .null
        let mode: Mode
        switch config["class_name"]?.stringValue {
        case "Int8QuantizationConfig":
            mode = .int8
        case "Int4QuantizationConfig":
            switch settings["block_size"] {
            case nil, .null?, .int(-1)?: mode = .int4(blockSize: nil)
            case let .int(size)? where size >= 1 && size <= Int64(LayerOptions.maxDimension): mode = .int4(blockSize: Int(size))
            case let other?: throw options.invalid("quantization_config", "a block_size of −1 or ≥ 1, found \(LayerOptions.describe(other))")
            }
        case let other?: throw options.unsupported("Keras' \(other)")
        case nil: throw options.invalid("quantization_config", "a serialized quantization config (class_name and config)")
        }
        let expected: String
        switch mode {
        case .int8: expected = "int8"
        case let .int4(block): expected = "int4/\(block ?? -1)"
        }
        guard policyMode == expected || (policyMode == "int4" && expected.hasPrefix("int4")) else {
            throw options.invalid("quantization_config", "the mode of the dtype policy, '\(policyMode)'")
        }
        switch settings["activation_quantizer"] {
        case nil, .null?: return KerasQuantization(mode: mode, inputs: nil)  // the kernel alone
        case let quantizer?:
            guard quantizer["class_name"]?.stringValue == "AbsMaxQuantizer" else {
                throw options.unsupported("the input quantizer \(quantizer["class_name"]?.stringValue ?? "?")")
            }
            let parameters = quantizer["config"] ?? .null
            var range: Float = 127
            if case let .array(bounds)? = parameters["value_range"] {
                guard bounds.count == 2, case let .int(low) = bounds[0], case let .int(high) = bounds[1], low == -high, high >= 1, high <= 127 else {
                    throw options.unsupported("an input quantizer range \(LayerOptions.describe(parameters["value_range"]!)) (laq takes symmetric int8 ranges)")
                }
                range = Float(high)
            }
            var epsilon: Float = 1e-7
            switch parameters["epsilon"] {
            case nil, .null?: break
            case let .double(value)? where value > 0 && value <= 1: epsilon = Float(value)
            case .int(1)?: epsilon = 1
            case let other?: throw options.invalid("quantization_config", "an epsilon in (0, 1], found \(LayerOptions.describe(other))")
            }
            if let dtype = parameters["output_dtype"]?.stringValue, dtype != "int8" {
                throw options.unsupported("inputs quantized to \(dtype)")
            }
            return KerasQuantization(mode: mode, inputs: AbsMax(range: range, epsilon: epsilon))
        }
    }

    /// The stored width of a kernel axis of `size` codes: int4 packs two to a byte.
    func packed(_ size: Int) -> Int { mode == .int8 ? size : (size + 1) / 2 }

    /// The number of groups along an axis of `size` (int4 with a block size), else 1.
    func groups(_ size: Int) -> Int { if case .int4(let block?) = mode, block > 0 { (size + block - 1) / block } else { 1 } }

    /// The group of each of `count` positions along the grouped axis (`g_idx`, stored as floats),
    /// each checked to be one of the `groups`.
    func groupIndices(_ stored: [Float], count: Int, groups: Int, layer: String) throws(EngineError) -> [Int] {
        guard stored.count == count else { throw .shape(layer: layer, reason: "\(stored.count) group indices for \(count) positions") }
        var indices = [Int](repeating: 0, count: count)
        for (position, value) in stored.enumerated() {
            guard let group = Int(exactly: value), group >= 0, group < groups else {
                throw .shape(layer: layer, reason: "group index \(value) of position \(position) is not in 0…\(groups - 1)")
            }
            indices[position] = group
        }
        return indices
    }

    /// The codes of a stored kernel (`rows` × `packed(columns)` values of the file's int8
    /// bytes), unpacked to `rows` × `columns` for int4; throws for a value that is no int8.
    func codes(_ stored: Weight, rows: Int, columns: Int, layer: String) throws(EngineError) -> [Int8] {
        guard stored.shape == [rows, packed(columns)] else {
            throw .shape(layer: layer, reason: "\(stored.name) has shape \(stored.shape), its codes need \([rows, packed(columns)])")
        }
        var bytes = [Int8](repeating: 0, count: stored.values.count)
        for (index, value) in stored.values.enumerated() {
            guard let byte = Int8(exactly: value) else { throw .shape(layer: layer, reason: "\(stored.name) value \(value) at \(index) is not an int8 code") }
            bytes[index] = byte
        }
        guard mode != .int8 else { return bytes }
        let width = packed(columns)
        var codes = [Int8](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            for column in 0..<columns {
                let byte = UInt8(bitPattern: bytes[row * width + column / 2])
                let nibble = column % 2 == 0 ? byte & 0x0F : byte >> 4
                codes[row * columns + column] = Int8(bitPattern: nibble ^ 8) &- 8
            }
        }
        return codes
    }
}

/// The product of a kernel Keras quantized (``KerasQuantization``), inputs × units.
struct KerasQuantizedProduct: Sendable {
    let name: String
    let inputs: Int
    let units: Int
    /// Codes and one scale per unit, multiplied as Keras does (int8, int4 per channel); nil for
    /// a grouped int4 kernel, which Keras dequantizes first.
    let scaled: (codes: [Int8], scales: [Float], quantizer: KerasQuantization.AbsMax?)?
    /// The codes as float32, for a product without an input quantizer (empty otherwise).
    let floatCodes: [Float]
    /// K as float32: k / s, or (k − z)·s per group; the input gradient's kernel (Keras' custom
    /// gradient) and the grouped kernel's product.
    let dequantized: [Float]

    /// From the layer's weights `kernel`, `kernel_scale` and, grouped, `kernel_zero` and
    /// `g_idx`, for a product of `inputs` × `units`.
    init(_ context: OpContext, _ quantization: KerasQuantization, inputs: Int, units: Int) throws(EngineError) {
        name = context.layer.name
        (self.inputs, self.units) = (inputs, units)
        // |q·k| ≤ 127·128 per term: sums of up to 2^17 terms stay below 2^31 (int32, as Keras').
        guard inputs <= 1 << 17 else { throw .shape(layer: name, reason: "a quantized product over \(inputs) inputs (at most 131072)") }
        let codes = try quantization.codes(context.weight("kernel"), rows: inputs, columns: units, layer: name)
        let scale = try context.weight("kernel_scale").values
        var dequantized = [Float](repeating: 0, count: codes.count)
        if quantization.grouped {
            // Groups of inputs: K[i, j] = (k − z[g, j])·s[g, j], g = g_idx[i].
            let groups = quantization.groups(inputs)
            let zero = try context.weight("kernel_zero").values
            guard scale.count == groups * units, zero.count == groups * units else {
                throw .shape(layer: name, reason: "\(scale.count) scales and \(zero.count) zero points for \(groups) groups of \(units) units")
            }
            let assignment = try quantization.groupIndices(context.weight("g_idx").values, count: inputs, groups: groups, layer: name)
            for (i, group) in assignment.enumerated() {
                for j in 0..<units {
                    dequantized[i * units + j] = (Float(codes[i * units + j]) - zero[group * units + j]) * scale[group * units + j]
                }
            }
            scaled = nil
            floatCodes = []
        } else {
            guard scale.count == units else { throw .shape(layer: name, reason: "\(scale.count) scales for \(units) units") }
            for index in codes.indices { dequantized[index] = Float(codes[index]) / scale[index % units] }
            scaled = (codes, scale, quantization.inputs)
            floatCodes = quantization.inputs == nil ? codes.map(Float.init) : []
        }
        self.dequantized = dequantized
    }

    /// x (rows × inputs) · kernel, as Keras computes it: rows × units.
    func multiply(_ x: [Float], rows: Int) -> [Float] {
        var output = [Float](repeating: 0, count: rows * units)
        guard let (codes, scales, quantizer) = scaled, let quantizer else {
            // A grouped kernel: x·K. Weights only: the float inputs times the codes, divided by s.
            let kernel = scaled == nil ? dequantized : floatCodes
            BLAS.gemm(x, kernel, into: &output, m: rows, n: units, k: inputs)
            if let scales = scaled?.scales { for index in output.indices { output[index] /= scales[index % units] } }
            return output
        }
        var quantized = [Int32](repeating: 0, count: inputs)
        var sums = [Int32](repeating: 0, count: units)
        for row in 0..<rows {
            let base = row * inputs
            var top: Float = 0
            for i in 0..<inputs { top = Swift.max(top, abs(x[base + i])) }
            let scale = quantizer.range / (top + quantizer.epsilon)
            // A NaN (which max passes over) or an infinity: Keras' row is NaN.
            guard top.isFinite, scale.isFinite, (base..<base + inputs).allSatisfy({ x[$0].isFinite }) else {
                for j in 0..<units { output[row * units + j] = .nan }
                continue
            }
            for i in 0..<inputs {
                quantized[i] = Int32(min(max((x[base + i] * scale).rounded(.toNearestOrEven), -quantizer.range), quantizer.range))
            }
            for j in 0..<units { sums[j] = 0 }
            for i in 0..<inputs where quantized[i] != 0 {
                let q = quantized[i]
                for j in 0..<units { sums[j] &+= q &* Int32(codes[i * units + j]) }
            }
            for j in 0..<units { output[row * units + j] = Float(sums[j]) / (scale * scales[j]) }
        }
        return output
    }
}
