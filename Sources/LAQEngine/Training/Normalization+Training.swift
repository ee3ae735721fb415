import Foundation

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

extension LayerNormalizationOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let output = try forward(inputs, workspace: workspace)
        // Keep x̂ and 1/σ per row for the backward pass.
        let x = inputs[0]
        let width = x.lastDimension
        var normalized = workspace.floats(x.count)  // every element written below
        var inverses = workspace.floats(x.count / max(width, 1))  // every element written below
        for (rowIndex, row) in stride(from: 0, to: x.count, by: width).enumerated() {
            var mean: Float = 0
            for i in row..<(row + width) { mean += x.data[i] }
            mean /= Float(width)
            var variance: Float = 0
            for i in row..<(row + width) { variance += (x.data[i] - mean) * (x.data[i] - mean) }
            variance /= Float(width)
            let inverse = 1 / (variance + epsilon).squareRoot()
            for i in row..<(row + width) { normalized[i] = (x.data[i] - mean) * inverse }
            inverses[rowIndex] = inverse
        }
        var record = ForwardRecord(inputs: inputs, output: output, extra: inverses)
        record.preActivation = normalized
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let width = gradOutput.lastDimension
        let normalized = record.preActivation!
        var dx = workspace.floats(gradOutput.count)  // every element written below
        var dGamma = workspace.zeros(width)
        var dBeta = workspace.zeros(width)
        for (rowIndex, row) in stride(from: 0, to: gradOutput.count, by: width).enumerated() {
            var sumG: Float = 0
            var sumGX: Float = 0
            for j in 0..<width {
                let g = gradOutput.data[row + j]
                dGamma[j] += g * normalized[row + j]
                dBeta[j] += g
                let scaled = g * (gamma?[j] ?? 1)
                sumG += scaled
                sumGX += scaled * normalized[row + j]
            }
            let inverse = record.extra[rowIndex]
            for j in 0..<width {
                let scaled = gradOutput.data[row + j] * (gamma?[j] ?? 1)
                dx[row + j] = inverse / Float(width) * (Float(width) * scaled - sumG - normalized[row + j] * sumGX)
            }
        }
        var weights: [String: [Float]] = [:]
        if gamma != nil { weights["gamma"] = dGamma } else { workspace.recycle(&dGamma) }
        if beta != nil { weights["beta"] = dBeta } else { workspace.recycle(&dBeta) }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: weights)
    }
}

/// Dropout: identity in inference; in training, keeps each value with probability 1 − rate and
/// scales kept values by 1/(1 − rate).
struct DropoutOp: TrainableOp {
    let rate: Float

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { tensors[0] }

    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let x = inputs[0]
        guard rate > 0 else { return ForwardRecord(inputs: inputs, output: x) }
        let scale = 1 / (1 - rate)
        var mask = workspace.floats(x.count)
        var y = workspace.floats(x.count)
        for i in mask.indices { mask[i] = random.uniform() >= rate ? scale : 0 }
        multiply(x.data, mask, into: &y)
        return ForwardRecord(inputs: inputs, output: Tensor(shape: x.shape, data: y), extra: mask)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        guard !record.extra.isEmpty else { return LayerGradients(inputs: [gradOutput], weights: [:]) }
        var grad = workspace.floats(gradOutput.count)
        multiply(gradOutput.data, record.extra, into: &grad)
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: grad)], weights: [:])
    }

    /// out[i] = a[i]·b[i].
    private func multiply(_ a: [Float], _ b: [Float], into out: inout [Float]) {
        out.withUnsafeMutableBufferPointer { out in
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    for i in out.indices { out[i] = a[i] * b[i] }
                }
            }
        }
    }
}
