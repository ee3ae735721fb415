import LAQFormat

/// Keras' `EinsumDense` for equations that are a product: `<free><contracted>,<contracted><new>
/// -><free><new>` (`abc,cd->abd`, `abc,cde->abde`, `abcd,cde->abe`, `...b,bc->...c`), the forms
/// Keras' attention layers build. The input's trailing contracted axes (size k in all) meet the
/// kernel's leading ones and the kernel's remaining axes (n in all) become the output's trailing
/// axes, so y = act(x·K + b) with K viewed as (k, n). Equations that sum an axis away, share an
/// axis between input and kernel in the output, or reorder axes are refused by name.
public struct EinsumDenseLayer: LayerKind {
    let equation: String
    /// How many input axes the equation names (without `...` and the axes it stands for).
    let namedInputAxes: Int
    /// Whether the equation starts with `...` (leading axes of any number).
    let leftElided: Bool
    /// How many trailing input axes are contracted, and the kernel's output axes' sizes.
    let contracted: Int
    let kernelOutputs: [Int]
    /// The bias' shape (Keras': from the first bias axis to the end, 1 on the others), or nil.
    let biasShape: [Int]?
    let activation: String

    public init(_ options: LayerOptions) throws(ModelError) {
        equation = try options.string("equation", default: "")
        activation = try options.activation()
        try options.expectDefault("lora_rank", .null, "LoRA (lora_rank)")
        if try options.kerasQuantization() != nil { throw options.unsupported("Keras' quantization of EinsumDense (model.quantize)") }
        try options.expectDefault("gptq_unpacked_column_size", .null, "GPTQ-packed weights")
        options.ignore("lora_alpha")
        let text = equation.replacingOccurrences(of: " ", with: "")
        let sides = text.components(separatedBy: "->")
        let operands = sides.first?.components(separatedBy: ",") ?? []
        guard sides.count == 2, operands.count == 2 else { throw options.unsupported("the einsum equation '\(equation)'") }
        var input = operands[0], kernel = operands[1], output = sides[1]
        leftElided = input.hasPrefix("...")
        guard leftElided == output.hasPrefix("..."), !kernel.contains("."), !input.dropFirst(leftElided ? 3 : 0).contains("."),
              !output.dropFirst(leftElided ? 3 : 0).contains(".") else {
            throw options.unsupported("the einsum equation '\(equation)' (an ellipsis other than leading, on input and output)")
        }
        if leftElided { input.removeFirst(3); output.removeFirst(3) }
        let i = Array(input), k = Array(kernel), o = Array(output)
        namedInputAxes = i.count
        // The product form: kernel = C + N with C the input's suffix, output = input's prefix + N.
        let shared = k.prefix { i.contains($0) }
        let fresh = k.dropFirst(shared.count)
        let free = i.dropLast(shared.count)
        guard Set(i).count == i.count, Set(k).count == k.count, Set(o).count == o.count, i.suffix(shared.count) == shared,
              !shared.contains(where: o.contains), !fresh.contains(where: i.contains), Array(free) + Array(fresh) == o,
              leftElided || !free.isEmpty
        else {
            throw options.unsupported("the einsum equation '\(equation)' (laq runs products of the form 'abc,cd->abd')")
        }
        contracted = shared.count
        // `output_shape` lists the output's sizes without the batch axis (Keras inserts it, and
        // the elided axes, in front).
        let partial: [JSONValue]
        switch options.value("output_shape") {
        case let .array(items)?: partial = items
        case let .int(size)?: partial = [.int(size)]
        default: throw options.invalid("output_shape", "an integer or a list of integers and nulls")
        }
        var sizes: [Int] = []
        for letter in fresh {
            let index = o.firstIndex(of: letter)! - (leftElided ? 0 : 1)
            guard index >= 0, index < partial.count, case let .int(size) = partial[index], size >= 1, size <= LayerOptions.maxOption else {
                throw options.unsupported("output_shape \(LayerOptions.describe(.array(partial))) for the equation '\(equation)'")
            }
            sizes.append(Int(size))
        }
        kernelOutputs = sizes
        if let axes = options.value("bias_axes") {
            guard case let .string(letters) = axes, !letters.isEmpty, letters.allSatisfy(fresh.contains) else {
                throw options.unsupported("bias_axes \(LayerOptions.describe(axes)) (laq adds a bias over the kernel's output axes)")
            }
            let first = o.firstIndex { letters.contains($0) }!
            biasShape = o[first...].map { letter in letters.contains(letter) ? sizes[fresh.firstIndex(of: letter)! - fresh.startIndex] : 1 }
        } else {
            biasShape = nil
        }
    }

    public var weights: [WeightSpec] {
        [WeightSpec("kernel", quantizable: true)] + (biasShape != nil ? [WeightSpec("bias")] : [])
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard leftElided ? input.count >= max(namedInputAxes, 1) + 1 : input.count == namedInputAxes else {
            throw .shapeMismatch(layer: layer, reason: "input of rank \(input.count) for the equation '\(equation)'")
        }
        return Array(input.dropLast(contracted)) + kernelOutputs.map { $0 }
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        if let biasShape { shapes["bias"] = biasShape }
        if let input = inputs.first, input.count >= contracted {
            let sizes = input.suffix(contracted).compactMap { $0 }
            if sizes.count == contracted { shapes["kernel"] = sizes + kernelOutputs }
        }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        let kernel = try context.weight("kernel")
        guard kernel.shape.count == contracted + kernelOutputs.count, Array(kernel.shape.suffix(kernelOutputs.count)) == kernelOutputs,
              kernel.values.count == kernel.shape.reduce(1, *) else {
            throw .shape(layer: context.layer.name, reason: "kernel has shape \(kernel.shape) for the equation '\(equation)'")
        }
        // The kernel's values are present, so these products do not overflow.
        let n = kernelOutputs.reduce(1, *)
        let k = kernel.shape.prefix(contracted).reduce(1, *)
        let bias = try biasShape.map { shape throws(EngineError) in
            let weight = try context.weight("bias")
            guard weight.shape == shape else { throw .shape(layer: context.layer.name, reason: "bias has shape \(weight.shape), expected \(shape)") }
            return weight.values
        }
        let map = try LinearMap(name: context.layer.name, kernel: kernel.values, k: k, n: n, bias: bias.map { BiasLayout(shape: biasShape!, values: $0, outputs: kernelOutputs) })
        return EinsumDenseOp(map: map, contractedSizes: Array(kernel.shape.prefix(contracted)), outputs: kernelOutputs, activation: context.activation(activation))
    }
}

/// A bias of Keras' EinsumDense shape broadcast over the kernel's output axes: `shape` is the
/// trailing part of those axes (1 where no bias), `values` its elements.
struct BiasLayout: Sendable {
    let shape: [Int]
    let values: [Float]
    let outputs: [Int]

    /// For each of the n = ∏ outputs columns, the bias element it adds.
    var columnSources: [Int] {
        let n = outputs.reduce(1, *)
        let lead = outputs.count - shape.count
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        return (0..<n).map { column in
            var rest = column, source = 0
            for axis in stride(from: outputs.count - 1, through: lead, by: -1) {
                let index = rest % outputs[axis]
                rest /= outputs[axis]
                if shape[axis - lead] != 1 { source += index * strides[axis - lead] }
            }
            return source
        }
    }
}

/// y = x·K + b over rows: K is (k, n) row-major, b one value per column (broadcast from its
/// Keras shape). EinsumDense's product and attention's projections.
struct LinearMap: Sendable {
    let name: String
    let kernel: [Float]
    let k: Int
    let n: Int
    /// The bias per column, and for each column the bias element it came from (gradients sum back).
    let bias: [Float]?
    let biasSources: [Int]
    let biasCount: Int

    init(name: String, kernel: [Float], k: Int, n: Int, bias layout: BiasLayout?) throws(EngineError) {
        guard kernel.count == k * n else { throw .shape(layer: name, reason: "kernel has \(kernel.count) values for \(k) × \(n)") }
        self.name = name
        self.kernel = kernel
        self.k = k
        self.n = n
        if let layout {
            guard layout.values.count == layout.shape.reduce(1, *) else { throw .shape(layer: name, reason: "bias values do not fit its shape") }
            biasSources = layout.columnSources
            bias = biasSources.map { layout.values[$0] }
            biasCount = layout.values.count
        } else {
            bias = nil
            biasSources = []
            biasCount = 0
        }
    }

    /// x (rows × k) · K + b.
    func apply(_ x: [Float], rows: Int, workspace: Workspace?) throws(EngineError) -> [Float] {
        guard x.count == rows * k else { throw .shape(layer: name, reason: "input has \(x.count) values, expected \(rows) × \(k)") }
        var y = Matrix.startingWithBias(bias, rows: rows, width: n, workspace: workspace)
        guard rows > 0, n > 0 else { return y }
        if k == 0 {
            if bias == nil { for i in y.indices { y[i] = 0 } }
            return y
        }
        BLAS.gemm(x, kernel, into: &y, m: rows, n: n, k: k, accumulate: bias != nil)
        return y
    }

    /// Gradients from dy (rows × n): of x (when `input`), of K, and of the bias in its own shape.
    func backward(_ dy: [Float], x: [Float], rows: Int, input: Bool, workspace: Workspace?) -> (dx: [Float]?, dKernel: [Float], dBias: [Float]?) {
        let dKernel = Matrix.multiply(x, dy, m: k, n: n, k: rows, transposeA: true, workspace: workspace)
        var dBias: [Float]? = nil
        if bias != nil {
            let columns = Matrix.columnSums(dy, rows: rows, width: n, workspace: workspace)
            var reduced = Matrix.zeros(biasCount, workspace: workspace)
            for (column, source) in biasSources.enumerated() { reduced[source] += columns[column] }
            dBias = reduced
        }
        let dx = input ? Matrix.multiply(dy, kernel, m: rows, n: k, k: n, transposeB: true, workspace: workspace) : nil
        return (dx, dKernel, dBias)
    }
}

/// EinsumDense's computation.
struct EinsumDenseOp: Op {
    let map: LinearMap
    /// The sizes of the input's trailing axes the kernel contracts.
    let contractedSizes: [Int]
    var contracted: Int { contractedSizes.count }
    let outputs: [Int]
    let activation: Activation

    func linear(_ x: Tensor, workspace: Workspace?) throws(EngineError) -> Tensor {
        guard x.rank > contracted, Array(x.shape.suffix(contracted)) == contractedSizes else {
            throw .shape(layer: map.name, reason: "input of shape \(x.shape) for a kernel contracting axes of sizes \(contractedSizes)")
        }
        let rows = x.shape.dropLast(contracted).reduce(1, *)
        return Tensor(shape: Array(x.shape.dropLast(contracted)) + outputs, data: try map.apply(x.data, rows: rows, workspace: workspace))
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var z = try linear(tensors[0], workspace: workspace)
        activation.apply(&z.data, width: z.lastDimension)
        return z
    }
}

extension EinsumDenseOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let z = try linear(inputs[0], workspace: workspace)
        let (y, pre) = activate(z, activation, width: z.lastDimension, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: pre)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let rows = x.shape.dropLast(contracted).reduce(1, *)
        var (gz, own) = activationGradient(gradOutput, record, activation, width: gradOutput.lastDimension, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        let result = map.backward(gz, x: x.data, rows: rows, input: record.inputsNeedGradients, workspace: workspace)
        var weights = ["kernel": result.dKernel]
        if let dBias = result.dBias { weights["bias"] = dBias }
        return LayerGradients(inputs: [result.dx.map { Tensor(shape: x.shape, data: $0) }], weights: weights)
    }
}
