import Foundation
import LAQFormat

/// Keras' `GlobalAveragePooling1D/2D` and `GlobalMaxPooling1D/2D` (keepdims supported).
/// `GlobalAveragePooling1D` averages over the unmasked steps of a masked sequence (``Masking``):
/// Σ mask·x / Σ mask, which Keras leaves 0/0 (NaN) for a sequence with every step masked.
public struct GlobalPoolingLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let spatial: Int
    let average: Bool
    let keepDimensions: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        spatial = options.className.contains("1D") ? 1 : 2
        average = options.className.hasPrefix("GlobalAv")
        keepDimensions = try options.bool("keepdims", default: false)
        try options.channelsLast()
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == spatial + 2 else { throw .shapeMismatch(layer: layer, reason: "expects rank \(spatial + 2) input") }
        return keepDimensions ? [input[0]] + Array(repeating: 1, count: spatial) + [input.last!] : [input[0], input.last!]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        GlobalPoolingOp(name: context.layer.name, spatial: spatial, average: average, keepDimensions: keepDimensions)
    }
}

/// Global pooling's computation.
struct GlobalPoolingOp: Op {
    let name: String
    let spatial: Int
    let average: Bool
    let keepDimensions: Bool

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try forward(tensors, masks: [nil], workspace: workspace)
    }

    /// Only `GlobalAveragePooling1D` reads a mask (Keras' other global poolings ignore it).
    func stepWeights(_ masks: [Tensor?]) -> Tensor? { average && spatial == 1 ? masks.first ?? nil : nil }

    func forward(_ tensors: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        if let mask = stepWeights(masks) { return try maskedAverage(x, mask: mask, workspace: workspace) }
        let g = try Geometry(x, spatial: spatial, layer: name)
        var output = Matrix.uninitialized(g.batch * g.channels, workspace: workspace)
        WindowKernels.globalPool(x.data, batch: g.batch, positions: g.height * g.width, channels: g.channels, average: average, into: &output)
        let shape = keepDimensions ? [g.batch] + Array(repeating: 1, count: spatial) + [g.channels] : [g.batch, g.channels]
        return Tensor(shape: shape, data: output)
    }
}

extension GlobalPoolingOp {
    /// Σₜ mask·x / Σₜ mask over the steps of (batch, steps, channels).
    func maskedAverage(_ x: Tensor, mask: Tensor, workspace: Workspace?) throws(EngineError) -> Tensor {
        try MaskMath.check(mask, covers: x.shape, trailing: 1, layer: name)
        let (batch, steps, channels) = (x.shape[0], x.shape[1], x.shape[2])
        var output = Matrix.zeros(batch * channels, workspace: workspace)
        for n in 0..<batch {
            var kept: Float = 0
            for t in 0..<steps where MaskMath.keeps(mask, n * steps + t) {
                kept += 1
                for c in 0..<channels { output[n * channels + c] += x.data[(n * steps + t) * channels + c] }
            }
            for c in 0..<channels { output[n * channels + c] /= kept }
        }
        return Tensor(shape: keepDimensions ? [batch, 1, channels] : [batch, channels], data: output)
    }
}

extension GlobalPoolingOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        var record = ForwardRecord(inputs: inputs, output: try forward(inputs, masks: masks, workspace: workspace))
        record.masks = masks
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        if let mask = stepWeights(record.masks) {
            let (batch, steps, channels) = (x.shape[0], x.shape[1], x.shape[2])
            var dx = workspace.zeros(x.count)
            for n in 0..<batch {
                let kept = Float((0..<steps).filter { MaskMath.keeps(mask, n * steps + $0) }.count)
                for t in 0..<steps where MaskMath.keeps(mask, n * steps + t) {
                    for c in 0..<channels { dx[(n * steps + t) * channels + c] = gradOutput.data[n * channels + c] / kept }
                }
            }
            return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
        }
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
