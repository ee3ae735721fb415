import Foundation
import LAQFormat

/// Keras' `LayerNormalization` over the last axis: y = γ·(x − mean)/√(var + ε) + β.
public struct LayerNormalizationLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let axis: NormalizationAxis
    let epsilon: Double
    let center: Bool
    let scale: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        axis = try NormalizationAxis(options)
        epsilon = try options.double("epsilon", default: 1e-3)
        center = try options.bool("center", default: true)
        scale = try options.bool("scale", default: true)
        try options.expectDefault("rms_scaling", .bool(false), "rms_scaling")
    }

    public var weights: [WeightSpec] { (scale ? [WeightSpec("gamma")] : []) + (center ? [WeightSpec("beta")] : []) }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        try axis.check(rank: input.count, layer: layer, className: "LayerNormalization")
        return input
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] { perChannelWeightShapes(inputs) }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { LayerNormalizationOp(context, epsilon: Float(epsilon)) }
}

/// LayerNormalization's computation.
struct LayerNormalizationOp: Op {
    let name: String
    let gamma: [Float]?
    let beta: [Float]?
    let epsilon: Float

    init(_ context: OpContext, epsilon: Float) {
        name = context.layer.name
        gamma = context.optionalWeight("gamma")?.values
        beta = context.optionalWeight("beta")?.values
        self.epsilon = epsilon
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        let width = x.lastDimension
        guard width > 0, (gamma?.count ?? width) == width, (beta?.count ?? width) == width else {
            throw .shape(layer: name, reason: "input has \(width) features, gamma/beta \(gamma?.count ?? beta?.count ?? 0)")
        }
        x.data = Matrix.copy(x.data, workspace: workspace)
        Elementwise.normalizeRows(&x.data, width: width, gamma: gamma, beta: beta, epsilon: epsilon)
        return x
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
