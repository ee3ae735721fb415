import LAQFormat

/// Keras' `Concatenate` along an axis (default the last; not the batch axis).
public struct ConcatenateLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let axis: Int

    public init(_ options: LayerOptions) throws(ModelError) {
        axis = try options.int("axis", default: -1, min: -64, max: 64)
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        guard inputs.count >= 2 else { throw .shapeMismatch(layer: layer, reason: "Concatenate needs at least two inputs") }
        let rank = inputs[0].count
        let axis = self.axis < 0 ? self.axis + rank : self.axis
        guard axis > 0, axis < rank, inputs.allSatisfy({ $0.count == rank }) else { throw .shapeMismatch(layer: layer, reason: "bad axis or ranks") }
        for other in inputs.dropFirst() {
            for dim in 0..<rank where dim != axis {
                if let a = inputs[0][dim], let b = other[dim], a != b {
                    throw .shapeMismatch(layer: layer, reason: "shapes \(inputs[0]) and \(other) differ outside axis \(axis)")
                }
            }
        }
        var output = inputs[0]
        output[axis] = inputs.contains(where: { $0[axis] == nil }) ? nil : inputs.reduce(0) { $0 + $1[axis]! }
        return output
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { ConcatenateOp(name: context.layer.name, axis: axis) }

    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { masked.contains(true) }

    /// As Keras computes it: each input's mask repeated over the input's last axis (an unmasked
    /// input: all kept), concatenated along the axis, then reduced over the last axis with OR
    /// (Keras 3) or AND (tf.keras 2).
    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? {
        var full: [Tensor] = []
        for (input, mask) in zip(inputs, masks) {
            guard let mask else { full.append(Tensor(shape: input.shape, data: [Float](repeating: 1, count: input.count))); continue }
            if mask.shape == input.shape { full.append(mask); continue }
            try MaskMath.check(mask, covers: input.shape, trailing: 1, layer: "concatenate")
            let width = input.lastDimension
            full.append(Tensor(shape: input.shape, data: mask.data.flatMap { Array(repeating: $0, count: width) }))
        }
        let joined = try ConcatenateOp(name: "concatenate mask", axis: axis).forward(full)
        let width = joined.lastDimension
        let positions = width == 0 ? 0 : joined.count / width
        var flags = [Float](repeating: 0, count: positions)
        for p in 0..<positions {
            let row = joined.data[(p * width)..<((p + 1) * width)]
            flags[p] = (keras3 ? row.contains { $0 != 0 } : row.allSatisfy { $0 != 0 }) ? 1 : 0
        }
        return Tensor(shape: Array(joined.shape.dropLast()), data: flags)
    }
}

/// Concatenate's computation.
struct ConcatenateOp: Op {
    let name: String
    let axis: Int

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let rank = tensors[0].rank
        let axis = self.axis < 0 ? self.axis + rank : self.axis
        guard axis > 0, axis < rank, tensors.allSatisfy({ $0.rank == rank }) else { throw .shape(layer: name, reason: "bad axis or ranks") }
        for tensor in tensors.dropFirst() {
            for dim in 0..<rank where dim != axis && tensor.shape[dim] != tensors[0].shape[dim] {
                throw .shape(layer: name, reason: "shapes \(tensors[0].shape) and \(tensor.shape) differ outside axis \(axis)")
            }
        }
        let outer = tensors[0].shape[..<axis].reduce(1, *)
        let widths = tensors.map { $0.shape[axis...].reduce(1, *) }
        var output = Matrix.uninitialized(tensors.reduce(0) { $0 + $1.count }, workspace: workspace)  // every element written below
        var offset = 0
        for o in 0..<outer {
            for (tensor, width) in zip(tensors, widths) where width > 0 {
                Matrix.copy(tensor.data, from: o * width, into: &output, at: offset, count: width)
                offset += width
            }
        }
        var shape = tensors[0].shape
        shape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        return Tensor(shape: shape, data: output)
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
