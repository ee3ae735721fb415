import LAQFormat

/// Keras' own quantization of a layer (`model.quantize("int8")`), as its config records it: a
/// `QuantizedDTypePolicy` of mode `int8` as the layer's `dtype` (Keras ≤ 3.12 names it
/// `int8_from_float32`), and from Keras 3.13 a `quantization_config` naming the quantizer of the
/// layer's inputs. The layer then stores its kernel as int8 codes k with a float32 scale s per
/// output (K ≈ k / s), and computes, for each row x of its input,
///
///     s_x = r / (max|x| + ε),   q = clip(round(x·s_x), −r, r)      (r = 127, ε = 1e-7: AbsMaxQuantizer)
///     y   = float(q·k) / (s_x·s)                                    (q·k summed exactly, in int32)
///
/// or y = (x·k) / s where the config quantizes no inputs. laq keeps the codes as Keras stores
/// them (an 8-bit table of the integers, ``WeightSpec/integerCodes``) and computes the same.
/// Other modes (int4, float8, GPTQ, AWQ) are refused by name.
public struct KerasQuantization: Sendable, Equatable {
    /// Keras' `AbsMaxQuantizer` of the inputs: symmetric, per row (the last axis).
    public struct AbsMax: Sendable, Equatable {
        public var range: Float
        public var epsilon: Float
    }

    /// The inputs' quantizer; nil: the kernel alone is quantized.
    public var inputs: AbsMax?

    /// Keras' default for int8 layers: AbsMaxQuantizer((−127, 127)) with Keras' epsilon.
    static let defaultInputs = AbsMax(range: 127, epsilon: 1e-7)

    /// The mode a `dtype` config value declares: nil for a float policy.
    static func mode(ofPolicy value: JSONValue?) -> String? {
        guard case let .object(members)? = value else { return nil }
        let className = members["class_name"]?.stringValue ?? ""
        guard className != "DTypePolicy", className != "FloatDTypePolicy" else { return nil }
        let config = members["config"]
        if let mode = config?["mode"]?.stringValue { return mode }
        if let name = config?["name"]?.stringValue, let range = name.range(of: "_from_") { return String(name[..<range.lowerBound]) }
        return className
    }

    /// The quantization `options` declare (their `dtype` and `quantization_config`), or nil.
    static func parse(_ options: LayerOptions) throws(ModelError) -> KerasQuantization? {
        let policyMode = mode(ofPolicy: options.value("dtype"))
        let config = options.value("quantization_config")
        var configMode: String?
        if let config {
            switch config["class_name"]?.stringValue {
            case "Int8QuantizationConfig": configMode = "int8"
            case let other?: throw options.unsupported("Keras' \(other)")
            case nil: throw options.invalid("quantization_config", "a serialized quantization config (class_name and config)")
            }
        }
        guard let mode = configMode ?? policyMode else { return nil }
        if let policyMode, let configMode, policyMode != configMode {
            throw options.invalid("quantization_config", "the dtype policy's mode '\(policyMode)'")
        }
        guard mode == "int8" else { throw options.unsupported("Keras' '\(mode)' quantization (laq executes Keras' int8)") }
        guard let config else { return KerasQuantization(inputs: defaultInputs) }
        switch config["config"]?["activation_quantizer"] {
        case nil: return KerasQuantization(inputs: defaultInputs)  // absent: Keras' default
        case .null?: return KerasQuantization(inputs: nil)  // None: the kernel alone
        case let quantizer?:
            guard quantizer["class_name"]?.stringValue == "AbsMaxQuantizer" else {
                throw options.unsupported("the input quantizer \(quantizer["class_name"]?.stringValue ?? "?")")
            }
            let settings = quantizer["config"] ?? .null
            var range: Float = 127
            if case let .array(bounds)? = settings["value_range"] {
                guard bounds.count == 2, case let .int(low) = bounds[0], case let .int(high) = bounds[1], low == -high, high >= 1, high <= 127 else {
                    throw options.unsupported("an input quantizer range \(LayerOptions.describe(settings["value_range"]!)) (laq takes symmetric int8 ranges)")
                }
                range = Float(high)
            }
            var epsilon: Float = 1e-7
            switch settings["epsilon"] {
            case nil, .null?: break
            case let .double(value)? where value >= 0 && value.isFinite: epsilon = Float(value)
            case let .int(value)? where value >= 0: epsilon = Float(value)
            case let other?: throw options.invalid("quantization_config", "an epsilon ≥ 0, found \(LayerOptions.describe(other))")
            }
            if let dtype = settings["output_dtype"]?.stringValue, dtype != "int8" {
                throw options.unsupported("inputs quantized to \(dtype)")
            }
            return KerasQuantization(inputs: AbsMax(range: range, epsilon: epsilon))
        }
    }
}

/// Keras' int8 product of ``KerasQuantization``: codes k (inputs × units, row-major), one scale
/// per unit.
struct KerasInt8Product: Sendable {
    let name: String
    let codes: [Int8]
    let scales: [Float]
    let inputs: Int
    let units: Int
    let quantizer: KerasQuantization.AbsMax?
    /// k / s as float32, for the input gradient (Keras' custom gradient) and weight-only products.
    let dequantized: [Float]

    /// From a kernel of integer values in −128…127 and its scales.
    init(name: String, kernel: Weight, scale: Weight, quantizer: KerasQuantization.AbsMax?) throws(EngineError) {
        self.name = name
        guard kernel.shape.count == 2, scale.values.count == kernel.shape[1] else {
            throw .shape(layer: name, reason: "int8 kernel \(kernel.shape) with \(scale.values.count) scales")
        }
        (inputs, units) = (kernel.shape[0], kernel.shape[1])
        // |q·k| ≤ 127·128 per term: sums of up to 2^17 terms stay below 2^31 (int32, as Keras').
        guard inputs <= 1 << 17 else { throw .shape(layer: name, reason: "an int8 product over \(inputs) inputs (at most 131072)") }
        var codes = [Int8](repeating: 0, count: kernel.values.count)
        for (index, value) in kernel.values.enumerated() {
            guard let code = Int8(exactly: value) else {
                throw .shape(layer: name, reason: "kernel value \(value) at \(index) is not an int8 code")
            }
            codes[index] = code
        }
        self.codes = codes
        scales = scale.values
        self.quantizer = quantizer
        var dequantized = [Float](repeating: 0, count: codes.count)
        for index in codes.indices { dequantized[index] = Float(codes[index]) / scales[index % units] }
        self.dequantized = dequantized
    }

    /// x (rows × inputs) · kernel, de-scaled as Keras does: rows × units.
    func multiply(_ x: [Float], rows: Int) -> [Float] {
        var output = [Float](repeating: 0, count: rows * units)
        guard let quantizer else {
            // Weight only: Keras multiplies the float inputs by the codes, then divides by s.
            let kernel = codes.map(Float.init)
            x.withUnsafeBufferPointer { a in
                kernel.withUnsafeBufferPointer { b in
                    output.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(a.baseAddress!, b.baseAddress!, c.baseAddress!, m: rows, n: units, k: inputs)
                    }
                }
            }
            for index in output.indices { output[index] /= scales[index % units] }
            return output
        }
        var quantized = [Int32](repeating: 0, count: inputs)
        var sums = [Int32](repeating: 0, count: units)
        for row in 0..<rows {
            let base = row * inputs
            var top: Float = 0
            for i in 0..<inputs { top = max(top, abs(x[base + i])) }
            let scale = quantizer.range / (top + quantizer.epsilon)
            for i in 0..<inputs {
                quantized[i] = Int32(min(max((x[base + i] * scale).rounded(.toNearestOrEven), -quantizer.range), quantizer.range))
            }
            for j in 0..<units { sums[j] = 0 }
            codes.withUnsafeBufferPointer { codes in
                sums.withUnsafeMutableBufferPointer { sums in
                    for i in 0..<inputs where quantized[i] != 0 {
                        let q = quantized[i]
                        let kernelRow = codes.baseAddress! + i * units
                        for j in 0..<units { sums[j] &+= q &* Int32(kernelRow[j]) }
                    }
                }
            }
            for j in 0..<units { output[row * units + j] = Float(sums[j]) / (scale * scales[j]) }
        }
        return output
    }
}
