import LAQFormat

/// Keras' `Dense`: y = act(x·K + b) over the last axis (any rank ≥ 2); K is (inputs, units).
/// A Dense Keras quantized (``KerasQuantization``) stores integer codes as its kernel, with
/// their scales (and int4's zero points and group indices), and computes as Keras does; its
/// kernel is not laq's to quantize.
public struct DenseLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let units: Int
    let activation: String
    let useBias: Bool
    let quantization: KerasQuantization?

    public init(_ options: LayerOptions) throws(ModelError) {
        units = try options.int("units", min: 1)
        activation = try options.activation()
        useBias = try options.bool("use_bias", default: true)
        try options.expectDefault("lora_rank", .null, "LoRA (lora_rank)")
        quantization = try options.kerasQuantization()
    }

    public var weights: [WeightSpec] {
        guard let quantization else {
            return [WeightSpec("kernel", quantizable: true, axes: ["in", "out"])] + (useBias ? [WeightSpec("bias")] : [])
        }
        let grouped = quantization.grouped
        return [WeightSpec("kernel", trainable: false, axes: ["in", quantization.mode == .int8 ? "out" : "out/2"], integerCodes: true)]
            + (useBias ? [WeightSpec("bias")] : [])
            + [WeightSpec("kernel_scale", trainable: false, axes: grouped ? ["group", "out"] : ["out"])]
            + (grouped ? [WeightSpec("kernel_zero", trainable: false, axes: ["group", "out"]), WeightSpec("g_idx", trainable: false, axes: ["in"])] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count >= 2 else { throw .shapeMismatch(layer: layer, reason: "Dense needs an input of rank ≥ 2") }
        return Array(input.dropLast()) + [units]
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes = ["bias": [units]]
        guard let last = inputs.first?.last ?? nil else { return shapes }
        shapes["kernel"] = [last, quantization?.packed(units) ?? units]
        if let quantization {
            let groups = quantization.groups(last)
            shapes["kernel_scale"] = quantization.grouped ? [groups, units] : [units]
            if quantization.grouped { (shapes["kernel_zero"], shapes["g_idx"]) = ([groups, units], [last]) }
        }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        guard let quantization else { return try DenseOp(context, activation: context.activation(activation)) }
        let kernel = try context.weight("kernel")
        guard kernel.shape.count == 2 else { throw .shape(layer: context.layer.name, reason: "kernel has shape \(kernel.shape), not (inputs, units)") }
        let product = try KerasQuantizedProduct(context, quantization, inputs: kernel.shape[0], units: units)
        let bias = useBias ? try context.weight("bias").values : nil
        if let bias, bias.count != units { throw .shape(layer: context.layer.name, reason: "bias has \(bias.count) values for \(units) units") }
        return KerasQuantizedDenseOp(product: product, bias: bias, activation: context.activation(activation))
    }
}

/// Dense computed as Keras computes a Dense it quantized (``KerasQuantizedProduct``).
struct KerasQuantizedDenseOp: Op, TrainableOp {
    let product: KerasQuantizedProduct
    let bias: [Float]?
    let activation: Activation

    func linear(_ x: Tensor) throws(EngineError) -> Tensor {
        guard x.lastDimension == product.inputs else {
            throw .shape(layer: product.name, reason: "input has \(x.lastDimension) features, kernel expects \(product.inputs)")
        }
        let rows = x.shape.dropLast().reduce(1, *)
        var z = product.multiply(x.data, rows: rows)
        if let bias { for index in z.indices { z[index] += bias[index % product.units] } }
        return Tensor(shape: Array(x.shape.dropLast()) + [product.units], data: z)
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0])
        activation.apply(&z.data, width: product.units)
        return z
    }

    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (y, z) = activate(try linear(inputs[0]), activation, width: product.units, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: z)
    }

    /// Keras' gradient: the kernel is frozen; the input's flows through the dequantized kernel.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let rows = x.shape.dropLast().reduce(1, *)
        var (gz, own) = activationGradient(gradOutput, record, activation, width: product.units, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        var weights: [String: [Float]] = [:]
        if bias != nil { weights["bias"] = Matrix.columnSums(gz, rows: rows, width: product.units, workspace: workspace) }
        guard record.inputsNeedGradients else { return LayerGradients(inputs: [nil], weights: weights) }
        let dx = Matrix.multiply(gz, product.dequantized, m: rows, n: product.inputs, k: product.units, transposeB: true, workspace: workspace)
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}

/// Dense's computation, with its weights.
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

    /// `kernel`, `bias`: the weights' short names (a separable convolution's pointwise kernel,
    /// (1, 1, inputs, units), is a Dense kernel with leading axes of 1).
    init(_ context: OpContext, activation: Activation, kernel kernelName: String = "kernel", bias biasName: String? = "bias") throws(EngineError) {
        name = context.layer.name
        let (kernel, matrix) = try context.matrix(kernelName)
        guard kernel.shape.count >= 2, kernel.shape.dropLast(2).allSatisfy({ $0 == 1 }) else {
            throw .shape(layer: name, reason: "\(kernelName) has shape \(kernel.shape), not (inputs, units)")
        }
        self.kernel = kernel.values
        kernelMatrix = matrix
        inputs = kernel.shape[kernel.shape.count - 2]
        units = kernel.shape[kernel.shape.count - 1]
        bias = biasName.flatMap { context.optionalWeight($0)?.values }
        if let bias, bias.count != units { throw .shape(layer: name, reason: "bias has \(bias.count) values for \(units) units") }
        self.activation = activation
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
        kernelMatrix.multiply(x.data, m: rows, k: inputs, n: units, into: &output, accumulate: bias != nil)
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
