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
