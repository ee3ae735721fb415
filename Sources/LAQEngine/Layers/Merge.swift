import LAQFormat

/// Keras' merge layers `Add`, `Subtract`, `Multiply`, `Average`, `Maximum` and `Minimum`,
/// element by element over inputs that broadcast to one shape (a squeeze-and-excitation's
/// (batch, 1, 1, channels) scale against (batch, h, w, channels)).
public struct MergeLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let kind: MergeOp.Kind

    public init(_ options: LayerOptions) throws(ModelError) {
        switch options.className {
        case "Subtract": kind = .subtract
        case "Multiply": kind = .multiply
        case "Average": kind = .average
        case "Maximum": kind = .maximum
        case "Minimum": kind = .minimum
        default: kind = .add
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        guard inputs.count >= 2 || (inputs.count == 1 && kind != .subtract) else {
            throw .shapeMismatch(layer: layer, reason: "needs at least two inputs")
        }
        if kind == .subtract, inputs.count != 2 { throw .shapeMismatch(layer: layer, reason: "Subtract needs exactly two inputs") }
        guard let shape = Broadcast.shape(inputs) else {
            throw .shapeMismatch(layer: layer, reason: "shapes \(inputs.map(ShapeRules.describe).joined(separator: " and ")) do not broadcast")
        }
        return shape
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { MergeOp(name: context.layer.name, kind: kind) }

    /// Keras 3 masks the output when every input is masked, with the OR of their masks;
    /// tf.keras 2 when any is, with the AND of those present.
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool {
        keras3 ? !masked.isEmpty && masked.allSatisfy { $0 } : masked.contains(true)
    }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? {
        let present = masks.compactMap { $0 }
        guard !present.isEmpty else { return nil }
        return try MaskMath.combine(present, any: keras3, layer: "merge")
    }
}

/// The merges' computation.
struct MergeOp: Op, TrainableOp {
    enum Kind: Sendable {
        case add, subtract, multiply, average, maximum, minimum, divide
        /// Comparisons and logic give 1 (true) or 0 (false), as Keras' boolean tensors.
        case equal, notEqual, greater, greaterEqual, less, lessEqual, logicalAnd, logicalOr

        /// Whether the result is a boolean, through which no gradient flows.
        var isBoolean: Bool {
            switch self {
            case .add, .subtract, .multiply, .average, .maximum, .minimum, .divide: false
            default: true
            }
        }
    }
    let name: String
    let kind: Kind

    func outputShape(_ tensors: [Tensor]) throws(EngineError) -> [Int] {
        guard let shape = Broadcast.shape(tensors.map(\.shape)) else {
            throw .shape(layer: name, reason: "shapes \(tensors.map(\.shape)) do not broadcast")
        }
        return shape
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let shape = try outputShape(tensors)
        var result: [Float]
        if tensors.count >= 2, tensors.allSatisfy({ $0.shape == shape }) {
            // Equal shapes (a residual connection): one pass per further input, out of place.
            result = Matrix.uninitialized(shape.reduce(1, *), workspace: workspace)
            for (index, other) in tensors.enumerated().dropFirst() {
                combine(index == 1 ? tensors[0].data : nil, other.data, into: &result)
            }
            if kind == .average {
                let scale = 1 / Float(tensors.count)
                for i in result.indices { result[i] *= scale }
            }
            return Tensor(shape: shape, data: result)
        }
        if tensors[0].shape == shape {
            result = Matrix.copy(tensors[0].data, workspace: workspace)
        } else {
            result = Matrix.uninitialized(shape.reduce(1, *), workspace: workspace)
            let first = tensors[0].data
            Broadcast.forEachRun(shape, strides: Broadcast.strides(of: tensors[0].shape, in: shape)) { start, offset, length, step in
                for k in 0..<length { result[start + k] = first[offset + k * step] }
            }
        }
        for other in tensors.dropFirst() {
            if other.shape == shape {
                combine(nil, other.data, into: &result)
            } else {
                combineBroadcast(other, shape: shape, into: &result)
            }
        }
        if kind == .average {
            let scale = 1 / Float(tensors.count)
            for i in result.indices { result[i] *= scale }
        }
        return Tensor(shape: shape, data: result)
    }

    /// out[i] = a[i] ⊕ b[i] (a nil: out[i] ⊕ b[i]) for every i, large tensors split between
    /// threads; the kind is chosen outside the loops, so that they vectorise.
    private func combine(_ a: [Float]?, _ b: [Float], into out: inout [Float]) {
        let kind = self.kind
        switch kind {
        case .add, .average: Elementwise.combine(a, b, into: &out, .add)
        case .subtract: Elementwise.combine(a, b, into: &out, .subtract)
        case .multiply: Elementwise.combine(a, b, into: &out, .multiply)
        default: Elementwise.map(a, b, into: &out) { Self.combine(kind, $0, $1) }
        }
    }

    /// out[i] = out[i] ⊕ other's element broadcast to i, run by run (``Broadcast/forEachRun``),
    /// the common kinds in loops of their own so that they vectorise.
    private func combineBroadcast(_ other: Tensor, shape: [Int], into out: inout [Float]) {
        let kind = self.kind
        other.data.withUnsafeBufferPointer { data in
            out.withUnsafeMutableBufferPointer { out in
                Broadcast.forEachRun(shape, strides: Broadcast.strides(of: other.shape, in: shape)) { start, offset, length, step in
                    let (y, x) = (out.baseAddress! + start, data.baseAddress! + offset)
                    switch (kind, step) {
                    case (.add, 1), (.average, 1): for k in 0..<length { y[k] = y[k] + x[k] }
                    case (.multiply, 1): for k in 0..<length { y[k] = y[k] * x[k] }
                    case (.subtract, 1): for k in 0..<length { y[k] = y[k] - x[k] }
                    case (.add, 0), (.average, 0): let v = x[0]; for k in 0..<length { y[k] = y[k] + v }
                    case (.multiply, 0): let v = x[0]; for k in 0..<length { y[k] = y[k] * v }
                    case (.subtract, 0): let v = x[0]; for k in 0..<length { y[k] = y[k] - v }
                    default: for k in 0..<length { y[k] = Self.combine(kind, y[k], x[k * step]) }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func combine(_ kind: Kind, _ a: Float, _ b: Float) -> Float {
        switch kind {
        case .add, .average: a + b
        case .subtract: a - b
        case .multiply: a * b
        case .divide: a / b
        case .maximum: b > a ? b : a
        case .minimum: b < a ? b : a
        case .equal: a == b ? 1 : 0
        case .notEqual: a != b ? 1 : 0
        case .greater: a > b ? 1 : 0
        case .greaterEqual: a >= b ? 1 : 0
        case .less: a < b ? 1 : 0
        case .lessEqual: a <= b ? 1 : 0
        case .logicalAnd: a != 0 && b != 0 ? 1 : 0
        case .logicalOr: a != 0 || b != 0 ? 1 : 0
        }
    }

    /// Each input's gradient is ∂L/∂y times ∂y/∂input, summed over the axes the input was
    /// stretched along: 1 for Add, ±1 for Subtract, 1/n for Average, the other inputs' product
    /// for Multiply, 1/b and −a/b² for a / b; Maximum and Minimum pass it to the first input that attains the result.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let inputs = record.inputs
        let shape = gradOutput.shape
        if kind.isBoolean { return LayerGradients(inputs: inputs.map { _ in nil }, weights: [:]) }
        if kind == .add, inputs.allSatisfy({ $0.shape == shape }) {
            return LayerGradients(inputs: inputs.map { _ in gradOutput }, weights: [:])
        }
        let strides = inputs.map { Broadcast.strides(of: $0.shape, in: shape) }
        var grads = inputs.map { workspace.zeros($0.count) }
        let dy = gradOutput.data
        let output = record.output.data
        let count = Float(inputs.count)
        Broadcast.forEach(shape, strides: strides) { i, offsets in
            let g = dy[i]
            switch kind {
            case .add: for k in inputs.indices { grads[k][offsets[k]] += g }
            case .average: for k in inputs.indices { grads[k][offsets[k]] += g / count }
            case .subtract:
                grads[0][offsets[0]] += g
                grads[1][offsets[1]] -= g
            case .divide:
                let (a, b) = (inputs[0].data[offsets[0]], inputs[1].data[offsets[1]])
                grads[0][offsets[0]] += g / b
                grads[1][offsets[1]] -= g * a / (b * b)
            case .multiply:
                for k in inputs.indices {
                    var product = g
                    for j in inputs.indices where j != k { product *= inputs[j].data[offsets[j]] }
                    grads[k][offsets[k]] += product
                }
            case .equal, .notEqual, .greater, .greaterEqual, .less, .lessEqual, .logicalAnd, .logicalOr:
                break
            case .maximum, .minimum:
                if let winner = inputs.indices.first(where: { inputs[$0].data[offsets[$0]] == output[i] }) {
                    grads[winner][offsets[winner]] += g
                }
            }
        }
        return LayerGradients(inputs: zip(inputs, grads).map { Tensor(shape: $0.shape, data: $1) }, weights: [:])
    }
}
