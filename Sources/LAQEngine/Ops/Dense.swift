/// Dense: y = act(x·K + b) over the last axis (any rank ≥ 2).
struct DenseOp: Op {
    let name: String
    /// The kernel as float32 for training (empty when it runs packed).
    let kernel: [Float]
    /// The kernel as the forward pass multiplies by it.
    let kernelMatrix: KernelMatrix
    let bias: [Float]?
    let inputs: Int
    let units: Int
    let activation: Activation

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        let (kernel, matrix) = try context.matrix("kernel")
        guard kernel.shape.count == 2 else { throw .shape(layer: name, reason: "kernel must be 2-D") }
        self.kernel = kernel.values
        kernelMatrix = matrix
        inputs = kernel.shape[0]
        units = kernel.shape[1]
        bias = context.optionalWeight("bias")?.values
        if let bias, bias.count != units { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(units) units") }
        activation = try context.activation()
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0], workspace: workspace)
        activation.apply(&z.data, width: units)
        return z
    }

    /// x·K + b, before the activation; the output from `workspace` when given (training).
    func linear(_ x: Tensor, workspace: Workspace? = nil) throws(EngineError) -> Tensor {
        guard x.lastDimension == inputs else { throw .shape(layer: name, reason: "input has \(x.lastDimension) features, kernel expects \(inputs)") }
        let rows = x.shape.dropLast().reduce(1, *)
        var output = Matrix.startingWithBias(bias, rows: rows, width: units, workspace: workspace)
        x.data.withUnsafeBufferPointer { a in
            output.withUnsafeMutableBufferPointer { c in
                kernelMatrix.multiply(a.baseAddress!, m: rows, k: inputs, n: units, into: c.baseAddress!, accumulate: bias != nil)
            }
        }
        return Tensor(shape: Array(x.shape.dropLast()) + [units], data: output)
    }
}
