import LAQFormat

// Keras 3's unary operations on symbolic tensors that a functional model serializes as layers
// of module `keras.src.ops.numpy` (legacy `.h5`: no module). Keras records them where a
// layer's mask is computed for a layer that takes it explicitly (``Masking``): Masking's
// `any(not_equal(x, 0), axis=-1)`, Concatenate's `any(concatenate([expand_dims(m, -1) |
// zeros_like(x), …]), axis=-1)`. Booleans are 1 (true) and 0 (false); no gradient flows
// through a boolean result.

/// `any` and `all`: OR or AND of `x ≠ 0` over `axis` (an integer or a list; not the batch axis),
/// keeping the reduced axes as size 1 with `keepdims`.
public struct ReductionOperatorKind: LayerKind {
    let all: Bool
    let axes: [Int]
    let keepDimensions: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        all = options.className == "All"
        switch options.value("axis") {
        case let .int(axis)? where (-64...64).contains(axis): axes = [Int(axis)]
        case let .array(items)? where !items.isEmpty:
            var axes: [Int] = []
            for item in items {
                guard case let .int(axis) = item, (-64...64).contains(axis) else { throw options.invalid("axis", "axes") }
                axes.append(Int(axis))
            }
            self.axes = axes
        case nil: throw options.unsupported("a reduction over every axis, the batch's included")
        default: throw options.invalid("axis", "an axis or a list of axes")
        }
        keepDimensions = try options.bool("keepdims", default: false)
    }

    func resolved(rank: Int) -> [Int]? {
        let resolved = axes.map { $0 < 0 ? $0 + rank : $0 }
        guard resolved.allSatisfy({ $0 > 0 && $0 < rank }), Set(resolved).count == resolved.count else { return nil }
        return resolved
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard let axes = resolved(rank: input.count) else { throw .shapeMismatch(layer: layer, reason: "axis \(self.axes) of a rank-\(input.count) input (the batch axis stays)") }
        return input.enumerated().compactMap { axis, size in axes.contains(axis) ? (keepDimensions ? 1 : nil) : size }
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ReductionOperatorOp(name: context.layer.name, kind: self) }
}

struct ReductionOperatorOp: Op, TrainableOp {
    let name: String
    let kind: ReductionOperatorKind

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = inputs[0]
        guard let axes = kind.resolved(rank: x.rank) else { throw .shape(layer: name, reason: "axis \(kind.axes) of an input of shape \(x.shape)") }
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        var result = [Float](repeating: kind.all ? 1 : 0, count: kept.reduce(1, *))
        let data = x.data
        let all = kind.all
        // Each input element folds into the output element it reduces to (the kept shape
        // broadcast over the input's: stride 0 along reduced axes).
        Broadcast.forEach(x.shape, strides: [Broadcast.strides(of: kept, in: x.shape)]) { i, offsets in
            let flag = data[i] != 0
            if all { if !flag { result[offsets[0]] = 0 } } else if flag { result[offsets[0]] = 1 }
        }
        let shape = kind.keepDimensions ? kept : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return Tensor(shape: shape, data: result)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [nil], weights: [:])
    }
}

/// `expand_dims`: a size-1 axis inserted at `axis` (negative: from the end of the result).
public struct ExpandDimsOperatorKind: LayerKind {
    let axis: Int

    public init(_ options: LayerOptions) throws(ModelError) {
        axis = try options.int("axis", min: -64, max: 64)
    }

    func position(rank: Int) -> Int? {
        let position = axis < 0 ? axis + rank + 1 : axis
        return position > 0 && position <= rank ? position : nil
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        var input = try single(inputs, layer: layer)
        guard let position = position(rank: input.count) else { throw .shapeMismatch(layer: layer, reason: "axis \(axis) of a rank-\(input.count) input") }
        input.insert(1, at: position)
        return input
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ExpandDimsOperatorOp(name: context.layer.name, kind: self) }
}

struct ExpandDimsOperatorOp: Op, TrainableOp {
    let name: String
    let kind: ExpandDimsOperatorKind

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var shape = inputs[0].shape
        guard let position = kind.position(rank: shape.count) else { throw .shape(layer: name, reason: "axis \(kind.axis) of an input of shape \(shape)") }
        shape.insert(1, at: position)
        return Tensor(shape: shape, data: inputs[0].data)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [Tensor(shape: record.inputs[0].shape, data: gradOutput.data)], weights: [:])
    }
}

/// `zeros_like`, `ones_like`: a tensor of the input's shape filled with 0 or 1 (of any dtype).
/// `logical_not`: 1 where the input is 0. `cast`: to `bool` (x ≠ 0) or to float32/float64
/// (unchanged: laq computes in float32); casts that round or wrap are refused.
public struct ElementwiseOperatorKind: LayerKind {
    public var keepsSamplesApart: Bool { true }
    enum Operation: Sendable { case fill(Float), logicalNot, toBool, identity }
    let operation: Operation

    public init(_ options: LayerOptions) throws(ModelError) {
        switch options.className {
        case "ZerosLike", "OnesLike":
            options.ignore("dtype")
            operation = .fill(options.className == "ZerosLike" ? 0 : 1)
        case "LogicalNot":
            operation = .logicalNot
        default:
            let dtype = try options.string("dtype", default: "")
            if dtype == "bool" {
                operation = .toBool
            } else if dtype == "float32" || dtype == "float64" {
                operation = .identity
            } else {
                throw options.unsupported("a cast to '\(dtype)'")
            }
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try single(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ElementwiseOperatorOp(operation: operation) }
}

struct ElementwiseOperatorOp: Op, TrainableOp {
    let operation: ElementwiseOperatorKind.Operation

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = inputs[0]
        switch operation {
        case let .fill(value): return Tensor(shape: x.shape, data: [Float](repeating: value, count: x.count))
        case .logicalNot: return Tensor(shape: x.shape, data: x.data.map { $0 == 0 ? 1 : 0 })
        case .toBool: return Tensor(shape: x.shape, data: x.data.map { $0 != 0 ? 1 : 0 })
        case .identity: return x
        }
    }

    /// Only a cast between float types passes a gradient.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        if case .identity = operation { return LayerGradients(inputs: [gradOutput], weights: [:]) }
        return LayerGradients(inputs: [nil], weights: [:])
    }
}
