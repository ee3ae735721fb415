import Foundation
import LAQFormat

/// Keras' `GlobalAveragePooling1D/2D` and `GlobalMaxPooling1D/2D` (keepdims supported).
public struct GlobalPoolingLayer: LayerKind {
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
        let x = tensors[0]
        let g = try Geometry(x, spatial: spatial, layer: name)
        let positions = g.height * g.width
        var output = Matrix.uninitialized(g.batch * g.channels, workspace: workspace)
        output.withUnsafeMutableBufferPointer { $0.update(repeating: average ? 0 : -.infinity) }
        for n in 0..<g.batch {
            for p in 0..<positions {
                let base = (n * positions + p) * g.channels
                for c in 0..<g.channels {
                    let value = x.data[base + c]
                    if average { output[n * g.channels + c] += value } else { output[n * g.channels + c] = max(output[n * g.channels + c], value) }
                }
            }
        }
        if average { for i in output.indices { output[i] /= Float(max(positions, 1)) } }
        let shape = keepDimensions ? [g.batch] + Array(repeating: 1, count: spatial) + [g.channels] : [g.batch, g.channels]
        return Tensor(shape: shape, data: output)
    }
}

extension GlobalPoolingOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
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
