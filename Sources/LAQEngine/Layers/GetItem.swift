import LAQFormat

/// Keras 3's `GetItem` operation, `x[key]` on a symbolic tensor (module `keras.src.ops.numpy`):
/// BERT's first-token pooling `x[:, 0, :]`, a crop `x[:, 1:3]`. The key is the call's constant
/// operand: one item per leading axis, an integer (the axis is dropped; negative counts from
/// the end) or a slice `{"class_name": "__slice__", "config": {start, stop, step}}` with
/// Python's meaning and a positive step; axes past the key are kept whole. The batch axis must
/// be `:` (laq splits batches freely). Ellipsis, `None` (new axes) and tensor indices are
/// refused. The gradient scatters back to the selected elements.
public struct GetItemOperatorKind: LayerKind {
    enum Index: Sendable, Equatable {
        case position(Int)
        case range(start: Int?, stop: Int?, step: Int)

        /// The indices it selects along an axis of `size`, or nil for a position out of range.
        func selected(size: Int) -> [Int]? {
            switch self {
            case let .position(index):
                let resolved = index < 0 ? index + size : index
                return resolved >= 0 && resolved < size ? [resolved] : nil
            case let .range(start, stop, step):
                func clamp(_ value: Int?, _ fallback: Int) -> Int {
                    guard let value else { return fallback }
                    return Swift.min(Swift.max(value < 0 ? value + size : value, 0), size)
                }
                let (from, to) = (clamp(start, 0), clamp(stop, size))
                return from < to ? Array(stride(from: from, to: to, by: step)) : []
            }
        }
    }

    /// One entry per axis after the batch axis that the key names.
    let indices: [Index]

    init(indices: [Index]) { self.indices = indices }

    public init(_ options: LayerOptions) throws(ModelError) {
        let constants = options.constantOperands()
        guard options.call.positionalTensors == 1, constants.count == 1 else {
            throw options.unsupported("a call other than x[key] with one tensor and a constant key")
        }
        indices = try Self.indices(constants[0], options)
    }

    /// The indices after the batch axis of a key: a list of items, or one item. A slice is
    /// Keras 3's `{"class_name": "__slice__", "config": {start, stop, step}}` or tf.keras'
    /// `{start, stop, step}`.
    static func indices(_ key: JSONValue, _ options: LayerOptions) throws(ModelError) -> [Index] {
        let items: [JSONValue]
        if case let .array(list) = key { items = list } else { items = [key] }
        guard !items.isEmpty, items.count <= 64 else { throw options.unsupported("the key \(LayerOptions.describe(key))") }
        var parsed: [Index] = []
        for item in items {
            var slice: JSONValue?  // (JSONValue takes `nil` as its null: no ternaries here)
            if item["class_name"]?.stringValue == "__slice__" {
                slice = item["config"] ?? .null
            } else if item["class_name"] == nil, item["start"] != nil, item["stop"] != nil, item["step"] != nil {
                slice = item
            }
            switch item {
            case let .int(value) where value.magnitude <= UInt64(LayerOptions.maxDimension):
                parsed.append(.position(Int(value)))
            case .object where slice != nil:
                func bound(_ key: String) throws(ModelError) -> Int? {
                    switch slice?[key] {
                    case nil, .null?: return nil
                    case let .int(value)? where value.magnitude <= UInt64(LayerOptions.maxDimension): return Int(value)
                    default: throw options.unsupported("a slice with \(key) \(LayerOptions.describe(slice?[key] ?? .null))")
                    }
                }
                let step = try bound("step") ?? 1
                guard step >= 1 else { throw options.unsupported("a slice with step \(step) (laq takes positive steps)") }
                parsed.append(.range(start: try bound("start"), stop: try bound("stop"), step: step))
            default:
                throw options.unsupported("the index \(LayerOptions.describe(item)) (laq takes integers and slices)")
            }
        }
        guard parsed[0] == .range(start: nil, stop: nil, step: 1) || parsed[0] == .range(start: 0, stop: nil, step: 1) else {
            throw options.unsupported("indexing the batch axis (x[\(LayerOptions.describe(items[0]))…])")
        }
        return Array(parsed.dropFirst())
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard indices.count < input.count else { throw .shapeMismatch(layer: layer, reason: "a key of \(indices.count + 1) indices for a rank-\(input.count) input") }
        var output: Shape = [input[0]]
        for (axis, size) in input.enumerated().dropFirst() {
            guard axis - 1 < indices.count else { output.append(size); continue }
            let index = indices[axis - 1]
            guard let size else {
                if case .range = index { output.append(nil) }
                continue
            }
            guard let selected = index.selected(size: size) else {
                throw .shapeMismatch(layer: layer, reason: "index \(index) of an axis of \(size)")
            }
            if case .range = index { output.append(selected.count) }
        }
        return output
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { GetItemOperatorOp(name: context.layer.name, indices: indices) }
}

/// GetItem's computation: a gather of the selected elements, and its scatter back.
struct GetItemOperatorOp: Op, TrainableOp {
    let name: String
    let indices: [GetItemOperatorKind.Index]

    /// The input offset of every output element, in order, and the output's shape.
    func offsets(_ shape: [Int]) throws(EngineError) -> (offsets: [Int], shape: [Int]) {
        guard indices.count < shape.count else { throw .shape(layer: name, reason: "a key of \(indices.count + 1) indices for an input of shape \(shape)") }
        var selections: [[Int]] = []
        var output: [Int] = []
        for (axis, size) in shape.enumerated() {
            let index = axis == 0 || axis - 1 >= indices.count ? GetItemOperatorKind.Index.range(start: nil, stop: nil, step: 1) : indices[axis - 1]
            guard let selected = index.selected(size: size) else { throw .badInput(name: name, reason: "index \(index) of an axis of \(size)") }
            selections.append(selected)
            if case .range = index { output.append(selected.count) }
        }
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        // Offsets axis by axis: each axis multiplies the list by its selection.
        var offsets = [0]
        for (axis, selected) in selections.enumerated() {
            var next: [Int] = []
            next.reserveCapacity(offsets.count * selected.count)
            for base in offsets { for index in selected { next.append(base + index * strides[axis]) } }
            offsets = next
        }
        return (offsets, output)
    }

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = inputs[0]
        let (offsets, shape) = try offsets(x.shape)
        var output = Matrix.uninitialized(offsets.count, workspace: workspace)  // every element written below
        for (i, offset) in offsets.enumerated() { output[i] = x.data[offset] }
        return Tensor(shape: shape, data: output)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let (offsets, _) = try offsets(x.shape)
        var dx = workspace.zeros(x.count)
        for (i, offset) in offsets.enumerated() { dx[offset] += gradOutput.data[i] }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
    }
}

/// tf.keras 2's `SlicingOpLambda`: `x[slice_spec]` (function `__operators__.getitem`), computed
/// as ``GetItemOperatorKind``.
public struct SlicingOpLambdaLayer: LayerKind {
    let getItem: GetItemOperatorKind

    public init(_ options: LayerOptions) throws(ModelError) {
        let function = try options.string("function", default: "")
        guard function == "__operators__.getitem" else { throw options.unsupported("the TensorFlow function '\(function)'") }
        guard options.call.positionalTensors == 1, options.call.tensorKeywords.isEmpty, let key = options.callKeyword("slice_spec") else {
            throw options.unsupported("a call other than x[slice_spec]")
        }
        getItem = GetItemOperatorKind(indices: try GetItemOperatorKind.indices(key, options))
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try getItem.outputShape(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try getItem.op(context) }
}
