import Foundation

/// BatchNormalization in inference: y = γ·(x − moving_mean)/√(moving_variance + ε) + β, per
/// channel of the last axis.
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

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        let mean = try context.weight("moving_mean").values
        let variance = try context.weight("moving_variance").values
        let gamma = context.optionalWeight("gamma")?.values ?? Array(repeating: 1, count: mean.count)
        let beta = context.optionalWeight("beta")?.values ?? Array(repeating: 0, count: mean.count)
        let epsilon = Float(context.double("epsilon", 1e-3))
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
        momentum = Float(context.double("momentum", 0.99))
        hasGamma = context.optionalWeight("gamma") != nil
        hasBeta = context.optionalWeight("beta") != nil
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        x.data = Matrix.copy(x.data, workspace: workspace)
        let channels = scale.count
        guard x.lastDimension == channels else { throw .shape(layer: name, reason: "input has \(x.lastDimension) channels, expected \(channels)") }
        x.data.withUnsafeMutableBufferPointer { buffer in
            for i in buffer.indices { buffer[i] = buffer[i] * scale[i % channels] + shift[i % channels] }
        }
        return x
    }
}

/// LayerNormalization over the last axis: y = γ·(x − mean)/√(var + ε) + β.
struct LayerNormalizationOp: Op {
    let name: String
    let gamma: [Float]?
    let beta: [Float]?
    let epsilon: Float

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        if context.config["rms_scaling"] == .bool(true) { throw .unsupported(layer: name, reason: "rms_scaling") }
        gamma = context.optionalWeight("gamma")?.values
        beta = context.optionalWeight("beta")?.values
        epsilon = Float(context.double("epsilon", 1e-3))
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        let width = x.lastDimension
        guard width > 0, (gamma?.count ?? width) == width, (beta?.count ?? width) == width else {
            throw .shape(layer: name, reason: "input has \(width) features, gamma/beta \(gamma?.count ?? beta?.count ?? 0)")
        }
        x.data = Matrix.copy(x.data, workspace: workspace)
        x.data.withUnsafeMutableBufferPointer { buffer in
            for row in stride(from: 0, to: buffer.count, by: max(width, 1)) {
                var mean: Float = 0
                for i in row..<(row + width) { mean += buffer[i] }
                mean /= Float(width)
                var variance: Float = 0
                for i in row..<(row + width) { variance += (buffer[i] - mean) * (buffer[i] - mean) }
                variance /= Float(width)
                let inverse = 1 / (variance + epsilon).squareRoot()
                for j in 0..<width {
                    var value = (buffer[row + j] - mean) * inverse
                    if let gamma { value *= gamma[j] }
                    if let beta { value += beta[j] }
                    buffer[row + j] = value
                }
            }
        }
        return x
    }
}
