import CLAQKernels
import Foundation

/// Element-wise and row-wise passes over arrays for the layers, their backward passes and the
/// optimizers.
/// Large arrays are split between laq's threads in contiguous parts (``Parallel/forEach``): an
/// element's result depends on its own inputs alone, so the bits are the same for any number of
/// threads. Every array of one element-wise pass must have the same count (checked).
///
/// The common functions (ReLU, sums, products, a per-channel affine map) have loops of their own
/// so that they vectorise; other functions go through a closure per element.
enum Elementwise {
    /// A binary operation with a vectorised loop.
    enum Operation: Sendable {
        case add, subtract, multiply
    }

    /// The inputs of one part of a pass: up to three arrays' elements (an absent one reads the
    /// output's own elements).
    private struct Inputs: @unchecked Sendable {
        let a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>
    }

    /// Runs `body` over `0..<output.count` in parts, with the elements of `a`, `b`, `c` (each
    /// nil or of the output's count) and of `output`.
    private static func run(_ a: [Float]?, _ b: [Float]?, _ c: [Float]?, _ output: inout [Float],
                            _ body: @Sendable (Inputs, UnsafeMutablePointer<Float>, Range<Int>) -> Void) {
        let count = output.count
        guard count > 0 else { return }
        precondition((a?.count ?? count) == count && (b?.count ?? count) == count && (c?.count ?? count) == count,
                     "an element-wise pass over \(a?.count ?? count), \(b?.count ?? count), \(c?.count ?? count) and \(count) values")
        output.withUnsafeMutableBufferPointer { out in
            let target = SharedPointer(out.baseAddress!)
            let own = UnsafePointer(target.base)
            (a ?? []).withUnsafeBufferPointer { pa in
                (b ?? []).withUnsafeBufferPointer { pb in
                    (c ?? []).withUnsafeBufferPointer { pc in
                        // An empty array's buffer may have an address: only present arrays count.
                        let inputs = Inputs(a: a == nil ? own : pa.baseAddress!, b: b == nil ? own : pb.baseAddress!,
                                            c: c == nil ? own : pc.baseAddress!)
                        Parallel.forEach(count, work: count) { range in body(inputs, target.base, range) }
                    }
                }
            }
        }
    }

    /// out[i] = max(x[i], 0) (a NaN stays NaN).
    static func relu(_ x: [Float], into out: inout [Float]) {
        run(x, nil, nil, &out) { inputs, out, range in
            let x = inputs.a
            for i in range { out[i] = max(x[i], 0) }
        }
    }

    /// values[i] = max(values[i], 0).
    static func relu(_ values: inout [Float]) {
        run(nil, nil, nil, &values) { _, out, range in
            for i in range { out[i] = max(out[i], 0) }
        }
    }

    /// out[i] = min(y, ceiling) with y = x[i] when x[i] ≥ threshold, else slope·(x[i] − threshold):
    /// Keras' ReLU layer (max_value, negative_slope, threshold); a NaN stays NaN.
    static func relu(_ x: [Float], into out: inout [Float], threshold: Float, slope: Float, ceiling: Float) {
        run(x, nil, nil, &out) { inputs, out, range in
            let x = inputs.a
            for i in range {
                let value = x[i]
                let y = value >= threshold ? value : slope * (value - threshold)
                out[i] = y > ceiling ? ceiling : y
            }
        }
    }

    /// ``relu(_:into:threshold:slope:ceiling:)`` in place.
    static func relu(_ values: inout [Float], threshold: Float, slope: Float, ceiling: Float) {
        run(nil, nil, nil, &values) { _, out, range in
            for i in range {
                let value = out[i]
                let y = value >= threshold ? value : slope * (value - threshold)
                out[i] = y > ceiling ? ceiling : y
            }
        }
    }

    /// The backward pass of ``relu(_:into:threshold:slope:ceiling:)``: out[i] = 0 where
    /// x[i] ≥ ceiling, gradient[i]·slope where x[i] < threshold, else gradient[i].
    static func reluGradient(_ gradient: [Float], input x: [Float], into out: inout [Float], threshold: Float, slope: Float, ceiling: Float?) {
        let limit = ceiling ?? .infinity
        let clips = ceiling != nil
        run(gradient, x, nil, &out) { inputs, out, range in
            let (gradient, x) = (inputs.a, inputs.b)
            for i in range {
                out[i] = clips && x[i] >= limit ? 0 : x[i] < threshold ? gradient[i] * slope : gradient[i]
            }
        }
    }

    /// out[i] = gradient[i] where z[i] > 0, else 0: ReLU's backward pass.
    static func reluGradient(_ gradient: [Float], preActivation z: [Float], into out: inout [Float]) {
        run(gradient, z, nil, &out) { inputs, out, range in
            let start = range.lowerBound
            laq_relu_gradient(inputs.a + start, inputs.b + start, out + start, range.count, CPU.isa)
        }
    }

    /// out[i] = a[i] ⊕ b[i]; with `a` nil, out[i] = out[i] ⊕ b[i].
    static func combine(_ a: [Float]?, _ b: [Float], into out: inout [Float], _ operation: Operation) {
        run(a, b, nil, &out) { inputs, out, range in
            let (a, b) = (inputs.a, inputs.b)
            switch operation {
            case .add: for i in range { out[i] = a[i] + b[i] }
            case .subtract: for i in range { out[i] = a[i] - b[i] }
            case .multiply: for i in range { out[i] = a[i] * b[i] }
            }
        }
    }

    /// values[i] = f(values[i]).
    static func update(_ values: inout [Float], _ f: @escaping @Sendable (Float) -> Float) {
        run(nil, nil, nil, &values) { _, out, range in
            for i in range { out[i] = f(out[i]) }
        }
    }

    /// values[i] = σ(values[i]), or values[i]·σ(values[i]) with `swish` (`laq_sigmoid`,
    /// `laq_swish`: ``Activation/sigmoid(_:)``'s bits, eight values a step on AVX2).
    static func sigmoid(_ values: inout [Float], swish: Bool) {
        run(nil, nil, nil, &values) { _, out, range in
            if swish { laq_swish(out + range.lowerBound, range.count, CPU.isa) } else { laq_sigmoid(out + range.lowerBound, range.count, CPU.isa) }
        }
    }

    /// values[i] = GELU(values[i]) (`laq_gelu`: ``Activation/gelu(_:)``'s bits, eight values a
    /// step on AVX2).
    static func gelu(_ values: inout [Float]) {
        run(nil, nil, nil, &values) { _, out, range in laq_gelu(out + range.lowerBound, range.count, CPU.isa) }
    }

    /// out[i] = f(a[i], b[i]); with `a` nil, out[i] = f(out[i], b[i]).
    static func map(_ a: [Float]?, _ b: [Float], into out: inout [Float], _ f: @escaping @Sendable (Float, Float) -> Float) {
        run(a, b, nil, &out) { inputs, out, range in
            let (a, b) = (inputs.a, inputs.b)
            for i in range { out[i] = f(a[i], b[i]) }
        }
    }

    /// out[i] = f(a[i], b[i], c[i]).
    static func map(_ a: [Float], _ b: [Float], _ c: [Float], into out: inout [Float],
                    _ f: @escaping @Sendable (Float, Float, Float) -> Float) {
        run(a, b, c, &out) { inputs, out, range in
            let (a, b, c) = (inputs.a, inputs.b, inputs.c)
            for i in range { out[i] = f(a[i], b[i], c[i]) }
        }
    }

    /// out[r·C + c] = x[r·C + c]·scale[c] + shift[c] over rows of C = `scale.count` channels
    /// (an inference BatchNormalization), rows split between threads (`laq_scale_shift`: the
    /// product rounded, then the sum, on every instruction set).
    static func scaleShift(_ x: [Float], scale: [Float], shift: [Float], into out: inout [Float]) {
        precondition(x.count == out.count, "\(x.count) values into \(out.count)")
        x.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                scaleShift(input.baseAddress, output, scale: scale, shift: shift, then: .none)
            }
        }
    }

    /// A ReLU that follows an affine map in the same pass (``scaleShift(_:scale:shift:then:)``).
    enum FollowingReLU: Sendable {
        case none
        /// max(y, 0), as ``relu(_:)`` computes it.
        case max0
        /// Keras' ReLU layer, as ``relu(_:into:threshold:slope:ceiling:)`` computes it.
        case relu(threshold: Float, slope: Float, ceiling: Float)

        /// The C kernels' form (`LAQ_RELU_*` and its parameters).
        var parameters: (mode: Int32, threshold: Float, slope: Float, ceiling: Float) {
            switch self {
            case .none: (Int32(LAQ_RELU_NONE), 0, 0, 0)
            case .max0: (Int32(LAQ_RELU_MAX0), 0, 0, 0)
            case let .relu(threshold, slope, ceiling): (Int32(LAQ_RELU_KERAS), threshold, slope, ceiling)
            }
        }
    }

    /// values[r·C + c] = values[r·C + c]·scale[c] + shift[c] in place over rows of C =
    /// `scale.count` channels, then `relu` in the same pass: bit for bit the two passes.
    static func scaleShift(_ values: inout [Float], scale: [Float], shift: [Float], then relu: FollowingReLU) {
        values.withUnsafeMutableBufferPointer { buffer in
            scaleShift(nil, buffer, scale: scale, shift: shift, then: relu)
        }
    }

    /// The affine map and ReLU from `input` (nil: in place) into `output`.
    private static func scaleShift(
        _ input: UnsafePointer<Float>?, _ output: UnsafeMutableBufferPointer<Float>, scale: [Float], shift: [Float], then relu: FollowingReLU
    ) {
        let channels = scale.count
        precondition(shift.count == channels && (channels == 0 || output.count % channels == 0), "\(output.count) values for \(channels) channels")
        guard channels > 0, let base = output.baseAddress else { return }
        let (mode, threshold, slope, ceiling) = relu.parameters
        let count = output.count
        scale.withUnsafeBufferPointer { scale in
            shift.withUnsafeBufferPointer { shift in
                let (output, input) = (SharedPointer(base), SharedPointer(input ?? UnsafePointer(base)))
                let (scale, shift) = (SharedPointer(scale.baseAddress!), SharedPointer(shift.baseAddress!))
                Parallel.forEach(count / channels, work: count) { rows in
                    let offset = rows.lowerBound * channels
                    laq_scale_shift(input.base + offset, output.base + offset, rows.count, channels, scale.base, shift.base,
                                    mode, threshold, slope, ceiling, CPU.isa)
                }
            }
        }
    }

    /// Softmax over each row of `width` values in place: e^(x − max) / Σ e^(x − max).
    static func softmaxRows(_ values: inout [Float], width: Int) {
        guard width > 0, !values.isEmpty else { return }
        precondition(values.count % width == 0, "\(values.count) values for rows of \(width)")
        values.withUnsafeMutableBufferPointer { buffer in
            for row in stride(from: 0, to: buffer.count, by: width) {
                var top = -Float.infinity
                for i in row..<(row + width) { top = max(top, buffer[i]) }
                var sum: Float = 0
                for i in row..<(row + width) {
                    let e = expf(buffer[i] - top)
                    buffer[i] = e
                    sum += e
                }
                for i in row..<(row + width) { buffer[i] /= sum }
            }
        }
    }

    /// Layer normalization of each row of `width` values in place: (x − μ)/√(σ² + ε), then
    /// ·γ and +β when given (μ, σ² the row's mean and biased variance).
    static func normalizeRows(_ values: inout [Float], width: Int, gamma: [Float]?, beta: [Float]?, epsilon: Float) {
        guard width > 0, !values.isEmpty else { return }
        precondition(values.count % width == 0 && (gamma?.count ?? width) == width && (beta?.count ?? width) == width,
                     "\(values.count) values for rows of \(width)")
        values.withUnsafeMutableBufferPointer { buffer in
            for row in stride(from: 0, to: buffer.count, by: width) {
                var mean: Float = 0
                for i in row..<(row + width) { mean += buffer[i] }
                mean /= Float(width)
                var variance: Float = 0
                for i in row..<(row + width) { variance += (buffer[i] - mean) * (buffer[i] - mean) }
                variance /= Float(width)
                let inverse = 1 / (variance + epsilon).squareRoot()
                for j in 0..<width {
                    var value = (buffer[row + j] - mean) * inverse
                    if let gamma { value *= gamma[j] }
                    if let beta { value += beta[j] }
                    buffer[row + j] = value
                }
            }
        }
    }
}
