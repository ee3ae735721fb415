import LAQFormat
import LAQModel

/// What one layer's training-mode forward pass leaves for its backward pass.
public struct ForwardRecord: Sendable {
    public var inputs: [Tensor]
    public var output: Tensor
    /// The value before the layer's activation (Dense, convolutions), when it has one.
    var preActivation: [Float]? = nil
    /// Op-specific state (dropout masks, normalization statistics).
    var extra: [Float] = []
    /// Op-specific indices (max pooling: the input index each output came from, −1: none).
    var indices: [Int] = []
    /// New values of non-trainable weights (BatchNormalization's moving statistics), by short name.
    public var stateUpdates: [String: [Float]] = [:]
    /// Recurrent layers: the states of each direction, step by step.
    var traces: [RecurrentTrace] = []
    /// Whether the backward pass must return gradients for the call's inputs. Backpropagation
    /// clears it for a call whose inputs are all model inputs (a first layer), whose gradients
    /// nobody reads; ops whose input gradient is a large product (Dense, convolutions) then
    /// return nil for them.
    public var inputsNeedGradients = true
}

/// Gradients of one layer's backward pass.
public struct LayerGradients: Sendable {
    /// One per input of the layer's call; nil for inputs that take no gradient (integer indices).
    public var inputs: [Tensor?]
    /// By weight short name.
    public var weights: [String: [Float]]
}

/// An op that can train: forward in training mode (dropout active, batch statistics), and backward.
protocol TrainableOp: Op {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom) throws(EngineError) -> ForwardRecord
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord) throws(EngineError) -> LayerGradients
}

extension TrainableOp {
    /// By default the training forward is the inference forward.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom) throws(EngineError) -> ForwardRecord {
        ForwardRecord(inputs: inputs, output: try forward(inputs))
    }
}

/// The seeded generator of shuffles and dropout masks.
public typealias TrainingRandom = SplitMix64

/// Row-major GEMM helpers on arrays for backward passes.
enum Matrix {
    /// The start of `rows` outputs of a layer with `bias`, for a product to add to
    /// (`accumulate`): each row a copy of the bias, or, without one, unspecified elements for a
    /// product that writes them all. Adding the product to the bias in place saves the pass that
    /// zeroes C (BLAS with β = 0) and the pass that adds the bias afterwards.
    static func startingWithBias(_ bias: [Float]?, rows: Int, width: Int) -> [Float] {
        guard let bias else { return uninitialized(rows * width) }
        precondition(bias.count == width, "a bias of \(bias.count) values for rows of \(width)")
        return [Float](unsafeUninitializedCapacity: rows * width) { buffer, initialized in
            bias.withUnsafeBufferPointer { b in
                for row in 0..<rows { (buffer.baseAddress! + row * width).initialize(from: b.baseAddress!, count: width) }
            }
            initialized = rows * width
        }
    }

    /// An array for a product to fill: its elements start unspecified (no zeroing pass), and
    /// every one is written by the product that fills it (a BLAS product with β = 0 or a packed
    /// kernel without `accumulate`, which write all of C).
    static func uninitialized(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// A (m×k) · B (k×n), with optional transposes of the stored arrays.
    static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) -> [Float] {
        guard m > 0, n > 0, k > 0 else { return [Float](repeating: 0, count: m * n) }
        var c = uninitialized(m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
                }
            }
        }
        return c
    }

    /// Column sums of a rows×width matrix (rows added in order; on raw buffers, so the inner
    /// loop vectorises).
    static func columnSums(_ a: [Float], rows: Int, width: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: width)
        a.withUnsafeBufferPointer { a in
            sums.withUnsafeMutableBufferPointer { sums in
                guard let a = a.baseAddress, let sums = sums.baseAddress else { return }
                for r in 0..<rows {
                    let row = a + r * width
                    for j in 0..<width { sums[j] += row[j] }
                }
            }
        }
        return sums
    }
}
