import LAQFormat

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

extension DenseOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (y, z) = activate(try linear(inputs[0], workspace: workspace), activation, width: units, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: z)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let rows = x.shape.dropLast().reduce(1, *)
        var (gz, own) = activationGradient(gradOutput, record, activation, width: units, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        var weights = ["kernel": Matrix.multiply(x.data, gz, m: inputs, n: units, k: rows, transposeA: true, workspace: workspace)]
        if bias != nil { weights["bias"] = Matrix.columnSums(gz, rows: rows, width: units, workspace: workspace) }
        guard record.inputsNeedGradients else { return LayerGradients(inputs: [nil], weights: weights) }
        let dx = Matrix.multiply(gz, kernel, m: rows, n: inputs, k: units, transposeB: true, workspace: workspace)
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}
