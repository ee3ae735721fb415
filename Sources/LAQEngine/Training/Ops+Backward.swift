import Foundation
import LAQModel

// Backward passes, one per op: gradients with respect to inputs and weights, given the gradient
// with respect to the output. Each is checked against central finite differences in
// Tests/LAQEngineTests/GradientTests.swift.

/// The output of a layer's product `z` through its activation, and what the backward pass needs
/// of `z`: nothing when the derivative follows from the output (ReLU, linear: activated in place,
/// no copy), else `z` itself, the output then being a new buffer from `workspace`.
private func activate(_ z: consuming Tensor, _ activation: Activation, width: Int, workspace: Workspace) -> (output: Tensor, preActivation: [Float]?) {
    if activation.derivativeFromOutput {
        var y = consume z  // activated in place: no copy
        activation.apply(&y.data, width: width)
        return (y, nil)
    }
    var y = Tensor(shape: z.shape, data: Matrix.copy(z.data, workspace: workspace))
    activation.apply(&y.data, width: width)
    return (y, z.data)
}

/// ∂L/∂z of a layer's product from ∂L/∂y through its activation, and whether it is a buffer of
/// its own (to recycle after use) rather than ∂L/∂y itself (linear).
private func activationGradient(_ gradOutput: Tensor, _ record: ForwardRecord, _ activation: Activation, width: Int,
                                workspace: Workspace) -> (gradient: [Float], own: Bool) {
    let gz = activation.backward(gradOutput.data, preActivation: record.preActivation ?? record.output.data, output: record.output.data,
                                 width: width, workspace: workspace)
    return (gz, activation != .linear)
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

extension ConvolutionOp: TrainableOp {
    /// Keeps the im2col matrix (in `extra`) for the kernel's gradient.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (z, columns) = try linearKeepingColumns(inputs[0], workspace: workspace)
        let (y, preActivation) = activate(consume z, activation, width: filters, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: preActivation, extra: columns)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let (rows, cols) = windows(g)
        let patch = kernelSize[0] * kernelSize[1] * g.channels
        let positions = g.batch * rows.output * cols.output
        var (gz, own) = activationGradient(gradOutput, record, activation, width: filters, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        let columns = record.extra  // the im2col matrix of the training forward
        var weights = ["kernel": Matrix.multiply(columns, gz, m: patch, n: filters, k: positions, transposeA: true, workspace: workspace)]
        if bias != nil { weights["bias"] = Matrix.columnSums(gz, rows: positions, width: filters, workspace: workspace) }
        guard record.inputsNeedGradients else { return LayerGradients(inputs: [nil], weights: weights) }
        var dColumns = Matrix.multiply(gz, kernel, m: positions, n: patch, k: filters, transposeB: true, workspace: workspace)
        defer { workspace.recycle(&dColumns) }
        // col2im: scatter-add each patch row back onto the input positions it came from.
        var dx = workspace.zeros(x.count)
        if !dx.isEmpty, !dColumns.isEmpty {
            dx.withUnsafeMutableBufferPointer { out in
                dColumns.withUnsafeBufferPointer { columns in
                    // Samples scatter into disjoint parts of dx: two threads for a large batch.
                    let (out, columns) = (SharedPointer(out.baseAddress!), SharedPointer(columns.baseAddress!))
                    Parallel.halves(g.batch, large: dColumns.count >= Parallel.elementwiseCount) { images in
                        forEachRun(g, images: images) { column, target, count in
                            for c in 0..<count { out.base[target + c] += columns.base[column + c] }
                        }
                    }
                }
            }
        }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}

extension DepthwiseOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let z = try linear(inputs[0], workspace: workspace)
        let width = z.lastDimension
        let (y, preActivation) = activate(consume z, activation, width: width, workspace: workspace)
        return ForwardRecord(inputs: inputs, output: y, preActivation: preActivation)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let g = try Geometry(x, spatial: 2, layer: name)
        let rows = Window(input: g.height, kernel: kernelSize[0], stride: strides[0], dilation: dilation[0], same: same)
        let cols = Window(input: g.width, kernel: kernelSize[1], stride: strides[1], dilation: dilation[1], same: same)
        let outChannels = g.channels * multiplier
        var (gz, own) = activationGradient(gradOutput, record, activation, width: outChannels, workspace: workspace)
        defer { if own { workspace.recycle(&gz) } }
        var dKernel = workspace.zeros(kernel.count)
        var dx = workspace.zeros(x.count)
        var dBias = workspace.zeros(outChannels)
        for position in 0..<(g.batch * rows.output * cols.output) {
            for k in 0..<outChannels { dBias[k] += gz[position * outChannels + k] }
        }
        let (channels, multiplier) = (g.channels, self.multiplier)
        g.forEachWindowTap(rows, cols) { position, tap, input in
            let outBase = position * outChannels, kBase = tap * outChannels
            for c in 0..<channels {
                for j in 0..<multiplier {
                    let grad = gz[outBase + c * multiplier + j]
                    dKernel[kBase + c * multiplier + j] += grad * x.data[input + c]
                    dx[input + c] += grad * kernel[kBase + c * multiplier + j]
                }
            }
        }
        var weights = ["kernel": dKernel]
        if bias != nil { weights["bias"] = dBias } else { workspace.recycle(&dBias) }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }
}

extension PoolingOp: TrainableOp {
    /// Keeps for the backward pass, in `indices`: max pooling, the input index each output came
    /// from; average pooling, each window's number of taps inside the image.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let x = inputs[0]
        let (g, rows, cols) = try windows(x)
        let pooled = pool(x, g, rows, cols, keepMaximum: !average, workspace: workspace)
        var record = ForwardRecord(inputs: inputs, output: Tensor(shape: outputShape(g, rows, cols), data: pooled.output))
        record.indices = average ? pooled.counts : pooled.maximum
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let (g, rows, cols) = try windows(x)
        var dx = workspace.zeros(x.count)
        let channels = g.channels
        if !average {
            // The first maximum takes the gradient, as TensorFlow's max pooling does.
            dx.withUnsafeMutableBufferPointer { dx in
                gradOutput.data.withUnsafeBufferPointer { gradient in
                    for (index, source) in record.indices.enumerated() where source >= 0 { dx[source] += gradient[index] }
                }
            }
            return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
        }
        let counts = record.indices
        if !dx.isEmpty, !counts.isEmpty, !gradOutput.data.isEmpty {
            // Each tap inside the image gets an equal share of its window's gradient.
            dx.withUnsafeMutableBufferPointer { dx in
                gradOutput.data.withUnsafeBufferPointer { gradient in
                    counts.withUnsafeBufferPointer { counts in
                        let (dx, gradient, counts) = (dx.baseAddress!, gradient.baseAddress!, counts.baseAddress!)
                        g.forEachWindowTap(rows, cols) { position, _, input in
                            let share = 1 / Float(counts[position])
                            for c in 0..<channels { dx[input + c] += gradient[position * channels + c] * share }
                        }
                    }
                }
            }
        }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
    }
}

extension GlobalPoolingOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let positions = g.height * g.width
        var dx = workspace.zeros(x.count)
        for n in 0..<g.batch {
            for c in 0..<g.channels {
                let grad = gradOutput.data[n * g.channels + c]
                if average {
                    for p in 0..<positions { dx[(n * positions + p) * g.channels + c] = grad / Float(positions) }
                } else {
                    var best = 0
                    for p in 1..<max(positions, 1) where x.data[(n * positions + p) * g.channels + c] > x.data[(n * positions + best) * g.channels + c] { best = p }
                    if positions > 0 { dx[(n * positions + best) * g.channels + c] = grad }
                }
            }
        }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
    }
}

extension IdentityOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [gradOutput], weights: [:])
    }
}

extension ReshapeOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        LayerGradients(inputs: [Tensor(shape: record.inputs[0].shape, data: gradOutput.data)], weights: [:])
    }
}

extension PermuteOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        // The inverse permutation of the non-batch axes.
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, axis) in order.enumerated() { inverse[axis - 1] = position + 1 }
        let back = try PermuteOp(name: name, order: inverse).forward([gradOutput], workspace: workspace)
        return LayerGradients(inputs: [back], weights: [:])
    }
}

extension MergeOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let inputs = record.inputs
        switch kind {
        case .add:
            return LayerGradients(inputs: inputs.map { _ in gradOutput }, weights: [:])
        case .subtract:
            var negative = Tensor(shape: gradOutput.shape, data: Matrix.copy(gradOutput.data, workspace: workspace))
            for i in negative.data.indices { negative.data[i] = -negative.data[i] }
            return LayerGradients(inputs: [gradOutput, negative], weights: [:])
        case .multiply:
            let grads = inputs.indices.map { index -> Tensor? in
                var grad = Tensor(shape: gradOutput.shape, data: Matrix.copy(gradOutput.data, workspace: workspace))
                for (other, tensor) in inputs.enumerated() where other != index {
                    for i in grad.data.indices { grad.data[i] *= tensor.data[i] }
                }
                return grad
            }
            return LayerGradients(inputs: grads, weights: [:])
        }
    }
}

extension ConcatenateOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let tensors = record.inputs
        let rank = tensors[0].rank
        let axis = self.axis < 0 ? self.axis + rank : self.axis
        let outer = tensors[0].shape[..<axis].reduce(1, *)
        let widths = tensors.map { $0.shape[axis...].reduce(1, *) }
        let total = widths.reduce(0, +)
        var grads = tensors.map { workspace.floats($0.count) }  // every element written below
        for o in 0..<outer {
            var offset = o * total
            for (index, width) in widths.enumerated() {
                for j in 0..<width { grads[index][o * width + j] = gradOutput.data[offset + j] }
                offset += width
            }
        }
        return LayerGradients(inputs: zip(tensors, grads).map { Tensor(shape: $0.shape, data: $1) }, weights: [:])
    }
}

extension ActivationOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0].data
        var dz: [Float]
        switch kind {
        case let .function(activation):
            dz = activation.backward(gradOutput.data, preActivation: x, output: record.output.data, width: gradOutput.lastDimension,
                                     workspace: workspace)
        case let .relu(maxValue, slope, threshold):
            dz = workspace.floats(x.count)
            dz.withUnsafeMutableBufferPointer { dz in
                gradOutput.data.withUnsafeBufferPointer { gradient in
                    x.withUnsafeBufferPointer { x in
                        for i in dz.indices {
                            if let maxValue, x[i] >= maxValue { dz[i] = 0 } else if x[i] < threshold { dz[i] = gradient[i] * slope } else { dz[i] = gradient[i] }
                        }
                    }
                }
            }
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dz)], weights: [:])
    }
}

extension EmbeddingOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        var dTable = workspace.zeros(table.count)
        for (i, value) in record.inputs[0].data.enumerated() {
            let row = Int(value)
            for j in 0..<width { dTable[row * width + j] += gradOutput.data[i * width + j] }
        }
        return LayerGradients(inputs: [nil], weights: ["embeddings": dTable])
    }
}
