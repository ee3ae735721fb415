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

    /// Runs `body` over `0..<count` in parts with the raw buffers of `inputs` and `output`.
    private static func run(_ inputs: [[Float]], _ output: inout [Float],
                            _ body: @Sendable ([UnsafePointer<Float>], UnsafeMutablePointer<Float>, Range<Int>) -> Void) {
        let count = output.count
        guard count > 0 else { return }
        for input in inputs { precondition(input.count == count, "an element-wise pass over \(input.count) and \(count) values") }
        output.withUnsafeMutableBufferPointer { out in
            let target = SharedPointer(out.baseAddress!)
            withBases(inputs[...]) { bases in
                let sources = bases.map { SharedPointer($0) }
                Parallel.forEach(count, work: count) { range in
                    body(sources.map { UnsafePointer($0.base) }, target.base, range)
                }
            }
        }
    }

    /// `body` with the base addresses of `arrays` (each non-empty).
    private static func withBases(_ arrays: ArraySlice<[Float]>, _ bases: [UnsafePointer<Float>] = [],
                                  _ body: ([UnsafePointer<Float>]) -> Void) {
        guard let first = arrays.first else { return body(bases) }
        first.withUnsafeBufferPointer { withBases(arrays.dropFirst(), bases + [$0.baseAddress!], body) }
    }

    /// out[i] = max(x[i], 0) (a NaN stays NaN).
    static func relu(_ x: [Float], into out: inout [Float]) {
        run([x], &out) { x, out, range in
            let x = x[0]
            for i in range { out[i] = max(x[i], 0) }
        }
    }

    /// values[i] = max(values[i], 0).
    static func relu(_ values: inout [Float]) {
        run([], &values) { _, out, range in
            for i in range { out[i] = max(out[i], 0) }
        }
    }

    /// out[i] = gradient[i] where z[i] > 0, else 0: ReLU's backward pass.
    static func reluGradient(_ gradient: [Float], preActivation z: [Float], into out: inout [Float]) {
        run([gradient, z], &out) { inputs, out, range in
            let (gradient, z) = (inputs[0], inputs[1])
            for i in range { out[i] = gradient[i] * (z[i] > 0 ? 1 : 0) }
        }
    }

    /// out[i] = a[i] ⊕ b[i]; with `a` nil, out[i] = out[i] ⊕ b[i].
    static func combine(_ a: [Float]?, _ b: [Float], into out: inout [Float], _ operation: Operation) {
        run(a.map { [$0, b] } ?? [b], &out) { inputs, out, range in
            let (a, b) = inputs.count == 2 ? (inputs[0], inputs[1]) : (UnsafePointer(out), inputs[0])
            switch operation {
            case .add: for i in range { out[i] = a[i] + b[i] }
            case .subtract: for i in range { out[i] = a[i] - b[i] }
            case .multiply: for i in range { out[i] = a[i] * b[i] }
            }
        }
    }

    /// values[i] = f(values[i]).
    static func update(_ values: inout [Float], _ f: @escaping @Sendable (Float) -> Float) {
        run([], &values) { _, out, range in
            for i in range { out[i] = f(out[i]) }
        }
    }

    /// out[i] = f(x[i]).
    static func map(_ x: [Float], into out: inout [Float], _ f: @escaping @Sendable (Float) -> Float) {
        run([x], &out) { x, out, range in
            let x = x[0]
            for i in range { out[i] = f(x[i]) }
        }
    }

    /// out[i] = f(a[i], b[i]); with `a` nil, out[i] = f(out[i], b[i]).
    static func map(_ a: [Float]?, _ b: [Float], into out: inout [Float], _ f: @escaping @Sendable (Float, Float) -> Float) {
        run(a.map { [$0, b] } ?? [b], &out) { inputs, out, range in
            let (a, b) = inputs.count == 2 ? (inputs[0], inputs[1]) : (UnsafePointer(out), inputs[0])
            for i in range { out[i] = f(a[i], b[i]) }
        }
    }

    /// out[i] = f(a[i], b[i], c[i]).
    static func map(_ a: [Float], _ b: [Float], _ c: [Float], into out: inout [Float],
                    _ f: @escaping @Sendable (Float, Float, Float) -> Float) {
        run([a, b, c], &out) { inputs, out, range in
            let (a, b, c) = (inputs[0], inputs[1], inputs[2])
            for i in range { out[i] = f(a[i], b[i], c[i]) }
        }
    }

    /// out[r·C + c] = x[r·C + c]·scale[c] + shift[c] over rows of C = `scale.count` channels
    /// (an inference BatchNormalization), rows split between threads.
    static func scaleShift(_ x: [Float], scale: [Float], shift: [Float], into out: inout [Float]) {
        let channels = scale.count
        precondition(shift.count == channels && x.count == out.count && (channels == 0 || x.count % channels == 0),
                     "\(x.count) values for \(channels) channels")
        guard channels > 0, !out.isEmpty else { return }
        x.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                scale.withUnsafeBufferPointer { scale in
                    shift.withUnsafeBufferPointer { shift in
                        let (input, output) = (SharedPointer(input.baseAddress!), SharedPointer(output.baseAddress!))
                        let (scale, shift) = (SharedPointer(scale.baseAddress!), SharedPointer(shift.baseAddress!))
                        Parallel.forEach(x.count / channels, work: x.count) { rows in
                            for row in rows {
                                let (from, to) = (input.base + row * channels, output.base + row * channels)
                                for c in 0..<channels { to[c] = from[c] * scale.base[c] + shift.base[c] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// values[r·C + c] += bias[c] over rows of C = `bias.count` values.
    static func addRows(_ bias: [Float], to values: inout [Float]) {
        let width = bias.count
        precondition(width == 0 ? values.isEmpty : values.count % width == 0, "\(values.count) values for rows of \(width)")
        guard width > 0, !values.isEmpty else { return }
        let rows = values.count / width
        values.withUnsafeMutableBufferPointer { out in
            bias.withUnsafeBufferPointer { bias in
                let (out, bias) = (out.baseAddress!, bias.baseAddress!)
                for row in 0..<rows {
                    let target = out + row * width
                    for j in 0..<width { target[j] += bias[j] }
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
