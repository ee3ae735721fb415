import Foundation
import LAQFormat

/// Identity in inference (Dropout, InputLayer).
struct IdentityOp: Op {
    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { tensors[0] }
}

/// Flatten and Reshape: the same values, a new shape (batch kept).
struct ReshapeOp: Op {
    let name: String
    /// nil: flatten; otherwise the target shape, with one -1 resolved per input.
    let target: [Int]?

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let batch = x.shape.first ?? 1
        let per = batch == 0 ? 0 : x.count / batch
        guard var target else { return Tensor(shape: [batch, per], data: x.data) }
        if let unknown = target.firstIndex(of: -1) {
            let rest = target.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            guard rest > 0, per % rest == 0 else { throw .shape(layer: name, reason: "cannot reshape \(x.shape) to \(target)") }
            target[unknown] = per / rest
        }
        guard target.reduce(1, *) == per else { throw .shape(layer: name, reason: "cannot reshape \(x.shape) to \(target)") }
        return Tensor(shape: [batch] + target, data: x.data)
    }
}

/// Permute: reorders the non-batch axes (`dims` is 1-based, as in Keras).
struct PermuteOp: Op {
    let name: String
    let order: [Int]

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let full = [0] + order
        guard full.count == x.rank else { throw .shape(layer: name, reason: "dims do not match rank \(x.rank)") }
        let outShape = full.map { x.shape[$0] }
        var inStrides = [Int](repeating: 1, count: x.rank)
        for axis in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[axis] = inStrides[axis + 1] * x.shape[axis + 1] }
        let permutedStrides = full.map { inStrides[$0] }
        var output = Matrix.uninitialized(x.count, workspace: workspace)  // every element written below
        var index = [Int](repeating: 0, count: x.rank)
        for out in 0..<x.count {
            var source = 0
            for axis in 0..<x.rank { source += index[axis] * permutedStrides[axis] }
            output[out] = x.data[source]
            var axis = x.rank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < outShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return Tensor(shape: outShape, data: output)
    }
}

/// Add, Subtract, Multiply over inputs of one shape.
struct MergeOp: Op {
    enum Kind { case add, subtract, multiply }
    let name: String
    let kind: Kind

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var result = tensors[0]
        result.data = Matrix.copy(result.data, workspace: workspace)
        for other in tensors.dropFirst() {
            guard other.shape == result.shape else { throw .shape(layer: name, reason: "shapes \(result.shape) and \(other.shape) differ") }
            for i in result.data.indices {
                switch kind {
                case .add: result.data[i] += other.data[i]
                case .subtract: result.data[i] -= other.data[i]
                case .multiply: result.data[i] *= other.data[i]
                }
            }
        }
        return result
    }
}

/// Concatenate along an axis (default the last).
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
        output.withUnsafeMutableBufferPointer { output in
            var offset = 0
            for o in 0..<outer {
                for (tensor, width) in zip(tensors, widths) where width > 0 {
                    tensor.data.withUnsafeBufferPointer { (output.baseAddress! + offset).update(from: $0.baseAddress! + o * width, count: width) }
                    offset += width
                }
            }
        }
        var shape = tensors[0].shape
        shape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        return Tensor(shape: shape, data: output)
    }
}

/// Activation, ReLU (max_value, negative_slope, threshold), LeakyReLU, Softmax (last axis).
struct ActivationOp: Op {
    enum Kind: Sendable {
        case function(Activation)
        /// y = min(x, max) for x ≥ threshold, slope·(x − threshold) below it.
        case relu(maxValue: Float?, slope: Float, threshold: Float)
    }

    let kind: Kind

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        x.data = Matrix.copy(x.data, workspace: workspace)
        switch kind {
        case let .function(activation):
            activation.apply(&x.data, width: x.lastDimension)
        case let .relu(maxValue, slope, threshold):
            for i in x.data.indices {
                let value = x.data[i]
                var y = value >= threshold ? value : slope * (value - threshold)
                if let maxValue, y > maxValue { y = maxValue }
                x.data[i] = y
            }
        }
        return x
    }

    static func relu(maxValue: Float?, slope: Float, threshold: Float) -> ActivationOp {
        ActivationOp(kind: .relu(maxValue: maxValue, slope: slope, threshold: threshold))
    }
}

/// Embedding: integer indices (given as float values) → rows of the table.
struct EmbeddingOp: Op {
    let name: String
    let table: [Float]
    let rows: Int
    let width: Int

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        let embeddings = try context.weight("embeddings")
        guard embeddings.shape.count == 2 else { throw .shape(layer: name, reason: "embeddings must be 2-D") }
        table = embeddings.values
        rows = embeddings.shape[0]
        width = embeddings.shape[1]
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        var output = Matrix.uninitialized(x.count * width, workspace: workspace)  // every element written below (or thrown)
        for (i, value) in x.data.enumerated() {
            guard let index = Int(exactly: value), index >= 0, index < rows else {
                throw .badInput(name: name, reason: "index \(value) at position \(i) is not an integer in 0…\(rows - 1)")
            }
            for j in 0..<width { output[i * width + j] = table[index * width + j] }
        }
        return Tensor(shape: x.shape + [width], data: output)
    }
}
