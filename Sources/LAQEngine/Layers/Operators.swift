import LAQFormat

/// Keras 3's binary operators on symbolic tensors, which a functional model serializes as
/// layers of module `keras.src.ops.numpy`: arithmetic (`Add`, `Subtract`, `Multiply`, `Divide`,
/// `TrueDivide`, `Maximum`, `Minimum`), comparisons and logic (`NotEqual`, `LogicalOr`, …, the
/// ops Keras records for the masks it passes explicitly, ``Masking``). Two operands, tensors or
/// constants written in the call's arguments (MobileNetV3's `relu6(x + 3.0) * (1/6)`,
/// ConvNeXt's `inputs + x`, Embedding's `not_equal(ids, 0)`), broadcast as NumPy does.
public struct OperatorKind: LayerKind {
    static let operations: [String: MergeOp.Kind] = [
        "Add": .add, "Subtract": .subtract, "Multiply": .multiply, "Divide": .divide, "TrueDivide": .divide,
        "Maximum": .maximum, "Minimum": .minimum,
        "Equal": .equal, "NotEqual": .notEqual, "Greater": .greater, "GreaterEqual": .greaterEqual, "Less": .less,
        "LessEqual": .lessEqual, "LogicalAnd": .logicalAnd, "LogicalOr": .logicalOr,
    ]

    let operation: MergeOp.Kind
    /// The operands in order: nil for the next input tensor, else a constant.
    let operands: [Tensor?]

    public init(_ options: LayerOptions) throws(ModelError) {
        operation = Self.operations[options.className] ?? .add
        var operands: [Tensor?] = []
        let constants = options.constantOperands()
        var next = constants.makeIterator()
        for operand in options.call.operands {
            switch operand {
            case .tensor: operands.append(nil)
            case .constant:
                guard let value = next.next(), let constant = Self.tensor(value) else {
                    throw options.unsupported("a constant operand that is not a number or a list of numbers")
                }
                operands.append(constant)
            }
        }
        guard operands.count == 2 else { throw options.unsupported("\(operands.count) operands (an operator takes two)") }
        self.operands = operands
    }

    init(operation: MergeOp.Kind, operands: [Tensor?]) {
        self.operation = operation
        self.operands = operands
    }

    /// Element by element over tensors of one batch and scalar constants (MobileNetV3's
    /// `x + 3.0`, ConvNeXt's `inputs + x`); a constant of higher rank may broadcast along the
    /// batch axis.
    public var keepsSamplesApart: Bool { operands.allSatisfy { $0?.shape.isEmpty ?? true } }

    /// A JSON number or nested list of numbers as a tensor (a number has shape []).
    static func tensor(_ value: JSONValue) -> Tensor? {
        switch value {
        case let .double(v): return Tensor(shape: [], data: [Float(v)])
        case let .int(v): return Tensor(shape: [], data: [Float(v)])
        case let .array(items):
            guard !items.isEmpty else { return nil }
            var parts: [Tensor] = []
            for item in items {
                guard let part = tensor(item), part.shape == (parts.first?.shape ?? part.shape) else { return nil }
                parts.append(part)
            }
            return Tensor(shape: [items.count] + parts[0].shape, data: parts.flatMap(\.data))
        default: return nil
        }
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let tensors = operands.filter { $0 == nil }.count
        guard inputs.count == tensors else { throw .shapeMismatch(layer: layer, reason: "expects \(tensors) input tensors, has \(inputs.count)") }
        var shapes: [Shape] = []
        var input = inputs.makeIterator()
        for operand in operands { shapes.append(operand.map { $0.shape.map { $0 } } ?? input.next()!) }
        guard let shape = Broadcast.shape(shapes) else {
            throw .shapeMismatch(layer: layer, reason: "operands of shapes \(shapes.map(ShapeRules.describe).joined(separator: " and ")) do not broadcast")
        }
        return shape
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        OperatorOp(merge: MergeOp(name: context.layer.name, kind: operation), operands: operands)
    }
}

/// An operator's computation: the merge of its operands, constants put in their places.
struct OperatorOp: Op, TrainableOp {
    let merge: MergeOp
    let operands: [Tensor?]

    func arguments(_ tensors: [Tensor]) -> [Tensor] {
        var input = tensors.makeIterator()
        return operands.map { $0 ?? input.next()! }
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try merge.forward(arguments(tensors), workspace: workspace)
    }

    /// The merge's gradients of the tensor operands (constants take none).
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        var full = record
        full.inputs = arguments(record.inputs)
        let gradients = try merge.backward(gradOutput, full, workspace: workspace)
        var inputs: [Tensor?] = []
        for (operand, gradient) in zip(operands, gradients.inputs) where operand == nil { inputs.append(gradient) }
        return LayerGradients(inputs: inputs, weights: [:])
    }
}
