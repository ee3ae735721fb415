import LAQFormat

/// tf.keras 2's `TFOpLambda`: a TensorFlow function applied to a symbolic tensor, recorded by
/// its name (`function`) with the call's arguments. laq executes the binary arithmetic that
/// tf.keras applications record (MobileNetV3's `x + 3.0` and `x * (1/6)`, ConvNeXt's and
/// RegNet's residual `inputs + x`): the first argument is the input tensor x, the second the
/// keyword `y`, a tensor or a constant, broadcast as TensorFlow does (``OperatorKind``). Other
/// functions are refused by name.
public struct TFOpLambdaLayer: LayerKind {
    static let functions: [String: MergeOp.Kind] = [
        "__operators__.add": .add, "math.add": .add, "math.subtract": .subtract, "__operators__.sub": .subtract,
        "math.multiply": .multiply, "math.truediv": .divide, "math.divide": .divide, "__operators__.truediv": .divide,
        "math.maximum": .maximum, "math.minimum": .minimum,
    ]

    let arithmetic: OperatorKind

    public init(_ options: LayerOptions) throws(ModelError) {
        let function = try options.string("function", default: "")
        guard let operation = Self.functions[function] else { throw options.unsupported("the TensorFlow function '\(function)'") }
        let slots = try options.tensorArguments(["x", "y"])
        guard slots["x"] == 0 else { throw options.unsupported("a call without its input tensor first") }
        var operands: [Tensor?] = [nil]
        if slots["y"] != nil {
            operands.append(nil)
        } else {
            guard let value = options.callKeyword("y"), let constant = OperatorKind.tensor(value) else {
                throw options.unsupported("\(function) without a tensor or numeric y")
            }
            operands.append(constant)
        }
        _ = options.callKeyword("name")  // the TensorFlow op's name: nothing to compute
        arithmetic = OperatorKind(operation: operation, operands: operands)
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape { try arithmetic.outputShape(inputs, layer: layer) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try arithmetic.op(context) }
}
