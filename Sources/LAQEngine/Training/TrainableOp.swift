import LAQFormat

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
    /// BatchNormalization: the batch's own per-channel mean and biased variance, which its moving
    /// statistics (`moving_mean`, `moving_variance`) average.
    public var batchMoments: BatchMoments?
    /// Recurrent layers: the states of each direction, step by step.
    var traces: [RecurrentTrace] = []
    /// Ops made of other ops (a separable convolution): their records, in order.
    var parts: [ForwardRecord] = []
    /// The implicit masks of the inputs (``Masking``), for ops whose computation reads them.
    var masks: [Tensor?] = []
    /// Whether the backward pass must return gradients for the call's inputs. Backpropagation
    /// clears it for a call whose inputs are all model inputs (a first layer), whose gradients
    /// nobody reads; ops whose input gradient is a large product (Dense, convolutions) then
    /// return nil for them.
    public var inputsNeedGradients = true
}

/// Per-channel moments of one batch: the mean and the biased variance over `count` values each.
public struct BatchMoments: Sendable {
    public var mean: [Double]
    public var variance: [Double]
    public var count: Int
}

/// Gradients of one layer's backward pass.
public struct LayerGradients: Sendable {
    /// One per input of the layer's call; nil for inputs that take no gradient (integer indices).
    public var inputs: [Tensor?]
    /// By weight short name.
    public var weights: [String: [Float]]
}

/// An op that can train: forward in training mode (dropout active, batch statistics), and backward.
/// Both take their output and scratch buffers from `workspace` (``Workspace``), so that a step
/// shaped like the one before allocates no tensor memory; buffers a pass only reads in between
/// go back with ``Workspace/recycle(_:)``.
protocol TrainableOp: Op {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord
    /// The same for inputs with implicit masks (``Masking``); the record keeps them for the
    /// backward pass. Default: the masks do not change the computation.
    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients
}

extension TrainableOp {
    /// By default the training forward is the inference forward.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        ForwardRecord(inputs: inputs, output: try forward(inputs, workspace: workspace))
    }

    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        var record = try forwardTraining(inputs, random: &random, workspace: workspace)
        record.masks = masks
        return record
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
    /// From `workspace` when given (a training step), else newly allocated (inference).
    static func startingWithBias(_ bias: [Float]?, rows: Int, width: Int, workspace: Workspace? = nil) -> [Float] {
        var start = uninitialized(rows * width, workspace: workspace)
        guard let bias else { return start }
        precondition(bias.count == width, "a bias of \(bias.count) values for rows of \(width)")
        guard rows > 0, width > 0 else { return start }
        start.withUnsafeMutableBufferPointer { buffer in
            bias.withUnsafeBufferPointer { b in
                for row in 0..<rows { (buffer.baseAddress! + row * width).update(from: b.baseAddress!, count: width) }
            }
        }
        return start
    }

    /// An array for a product to fill: its elements start unspecified (no zeroing pass), and
    /// every one is written by the product that fills it (a BLAS product with β = 0 or a packed
    /// kernel without `accumulate`, which write all of C). From `workspace` when given.
    static func uninitialized(_ count: Int, workspace: Workspace? = nil) -> [Float] {
        if let workspace { return workspace.floats(count) }
        return [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// A copy of `values` for an op to write, from `workspace` when given; without one, `values`
    /// itself (the op's first write then copies, as arrays do).
    static func copy(_ values: [Float], workspace: Workspace?) -> [Float] {
        guard let workspace, !values.isEmpty else { return values }
        var copy = workspace.floats(values.count)
        copy.withUnsafeMutableBufferPointer { out in
            values.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
        return copy
    }

    /// `count` zeros, from `workspace` when given.
    static func zeros(_ count: Int, workspace: Workspace? = nil) -> [Float] {
        workspace?.zeros(count) ?? [Float](repeating: 0, count: count)
    }

    /// A (m×k) · B (k×n), with optional transposes of the stored arrays; C from `workspace` when given.
    static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
                         workspace: Workspace? = nil) -> [Float] {
        guard m > 0, n > 0, k > 0 else { return zeros(m * n, workspace: workspace) }
        var c = uninitialized(m * n, workspace: workspace)
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
    static func columnSums(_ a: [Float], rows: Int, width: Int, workspace: Workspace? = nil) -> [Float] {
        var sums = zeros(width, workspace: workspace)
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
