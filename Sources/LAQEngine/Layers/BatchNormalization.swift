import Foundation
import LAQFormat

/// Keras' `BatchNormalization` over the last axis. In inference y = γ·(x − moving_mean)/
/// √(moving_variance + ε) + β per channel; in training the batch's statistics, and the moving
/// ones updated with `momentum`.
public struct BatchNormalizationLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let axis: NormalizationAxis
    let epsilon: Double
    let momentum: Double
    let center: Bool
    let scale: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        axis = try NormalizationAxis(options)
        epsilon = try options.double("epsilon", default: 1e-3)
        momentum = try options.double("momentum", default: 0.99)
        center = try options.bool("center", default: true)
        scale = try options.bool("scale", default: true)
        try options.expectDefault("renorm", .bool(false), "batch renormalization (renorm)")
        try options.expectDefault("virtual_batch_size", .null, "virtual_batch_size")
        try options.expectDefault("adjustment", .null, "an adjustment function")
        // Training across devices and the fused kernel choice do not change the result here.
        options.ignore("renorm_clipping", "renorm_momentum", "synchronized", "fused")
    }

    public var weights: [WeightSpec] {
        (scale ? [WeightSpec("gamma")] : []) + (center ? [WeightSpec("beta")] : [])
            + [WeightSpec("moving_mean", trainable: false), WeightSpec("moving_variance", trainable: false)]
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        try axis.check(rank: input.count, layer: layer, className: "BatchNormalization")
        return input
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { perChannelWeightShapes(inputs) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        try BatchNormalizationOp(context, epsilon: Float(epsilon), momentum: Float(momentum))
    }
}

/// The `axis` option of a normalization layer: laq normalizes over the last axis only.
struct NormalizationAxis: Sendable {
    /// The axes as written (negative from the end), nil for the default (the last).
    let axes: [Int]?

    init(_ options: LayerOptions) throws(ModelError) {
        switch options.value("axis") {
        case nil: axes = nil
        case let .int(axis)?: axes = [Int(axis)]
        case let .array(items)?:
            var axes: [Int] = []
            for item in items {
                guard case let .int(axis) = item else { throw options.unsupported("axis \(items)") }
                axes.append(Int(axis))
            }
            self.axes = axes
        default: throw options.unsupported("a non-integer axis")
        }
    }

    func check(rank: Int, layer: String, className: String) throws(ModelError) {
        guard let axes else { return }
        guard axes.count == 1, axes[0] == -1 || axes[0] == rank - 1 else {
            throw .unsupportedOption(layer: layer, className: className, option: "normalization over an axis other than the last")
        }
    }
}

/// BatchNormalization's computation.
struct BatchNormalizationOp: Op {
    let name: String
    let scale: [Float]
    let shift: [Float]
    let gamma: [Float]
    let beta: [Float]
    let movingMean: [Float]
    let movingVariance: [Float]
    let epsilon: Float
    let momentum: Float
    let hasGamma: Bool
    let hasBeta: Bool

    init(_ context: OpContext, epsilon: Float, momentum: Float) throws(EngineError) {
        name = context.layer.name
        let mean = try context.weight("moving_mean").values
        let variance = try context.weight("moving_variance").values
        let gamma = context.optionalWeight("gamma")?.values ?? Array(repeating: 1, count: mean.count)
        let beta = context.optionalWeight("beta")?.values ?? Array(repeating: 0, count: mean.count)
        guard variance.count == mean.count, gamma.count == mean.count, beta.count == mean.count else {
            throw .shape(layer: name, reason: "moving statistics, gamma and beta have different sizes")
        }
        var scale = [Float](repeating: 0, count: mean.count)
        var shift = scale
        for c in mean.indices {
            scale[c] = gamma[c] / (variance[c] + epsilon).squareRoot()
            shift[c] = beta[c] - mean[c] * scale[c]
        }
        self.scale = scale
        self.shift = shift
        self.gamma = gamma
        self.beta = beta
        movingMean = mean
        movingVariance = variance
        self.epsilon = epsilon
        self.momentum = momentum
        hasGamma = context.optionalWeight("gamma") != nil
        hasBeta = context.optionalWeight("beta") != nil
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let channels = scale.count
        guard x.lastDimension == channels else { throw .shape(layer: name, reason: "input has \(x.lastDimension) channels, expected \(channels)") }
        // y = x·scale + shift per channel, rows split between threads.
        var y = Matrix.uninitialized(x.count, workspace: workspace)
        guard channels > 0, !y.isEmpty else { return Tensor(shape: x.shape, data: y) }
        Elementwise.scaleShift(x.data, scale: scale, shift: shift, into: &y)
        return Tensor(shape: x.shape, data: y)
    }
}

extension BatchNormalizationOp: TrainableOp {
    /// Training mode: normalizes with the batch's mean and (biased) variance per channel, and
    /// moves the moving statistics: m ← m·momentum + batch·(1 − momentum), as Keras 3 does.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let x = inputs[0]
        let channels = gamma.count
        guard x.lastDimension == channels, x.count > 0 else { throw .shape(layer: name, reason: "input has \(x.lastDimension) channels, expected \(channels)") }
        let n = x.count / channels
        var mean = [Double](repeating: 0, count: channels)
        var variance = [Double](repeating: 0, count: channels)
        for i in 0..<x.count { mean[i % channels] += Double(x.data[i]) }
        for c in 0..<channels { mean[c] /= Double(n) }
        for i in 0..<x.count {
            let d = Double(x.data[i]) - mean[i % channels]
            variance[i % channels] += d * d
        }
        for c in 0..<channels { variance[c] /= Double(n) }
        var inverse = workspace.floats(channels)
        for c in 0..<channels { inverse[c] = Float(1 / (variance[c] + Double(epsilon)).squareRoot()) }
        var normalized = workspace.floats(x.count)  // every element written below
        var output = workspace.floats(x.count)
        for i in 0..<x.count {
            let c = i % channels
            normalized[i] = (x.data[i] - Float(mean[c])) * inverse[c]
            output[i] = gamma[c] * normalized[i] + beta[c]
        }
        var record = ForwardRecord(inputs: inputs, output: Tensor(shape: x.shape, data: output), extra: inverse)
        record.preActivation = normalized
        record.stateUpdates = [
            "moving_mean": (0..<channels).map { movingMean[$0] * momentum + Float(mean[$0]) * (1 - momentum) },
            "moving_variance": (0..<channels).map { movingVariance[$0] * momentum + Float(variance[$0]) * (1 - momentum) },
        ]
        record.batchMoments = BatchMoments(mean: mean, variance: variance, count: n)
        return record
    }

    /// dx = γ·inv/N · (N·g − Σg − x̂·Σ(g·x̂)); dγ = Σ g·x̂; dβ = Σ g.
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let channels = gamma.count
        let g = gradOutput.data
        guard let normalized = record.preActivation, record.extra.count == channels else {
            throw .unsupported(layer: name, reason: "backward needs a training-mode forward")
        }
        let n = Float(g.count / channels)
        var sumG = workspace.zeros(channels)
        var sumGX = workspace.zeros(channels)
        for i in g.indices {
            sumG[i % channels] += g[i]
            sumGX[i % channels] += g[i] * normalized[i]
        }
        var dx = workspace.floats(g.count)  // every element written below
        for i in g.indices {
            let c = i % channels
            dx[i] = gamma[c] * record.extra[c] / n * (n * g[i] - sumG[c] - normalized[i] * sumGX[c])
        }
        var weights: [String: [Float]] = [:]
        if hasGamma { weights["gamma"] = sumGX } else { workspace.recycle(&sumGX) }
        if hasBeta { weights["beta"] = sumG } else { workspace.recycle(&sumG) }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: weights)
    }
}
