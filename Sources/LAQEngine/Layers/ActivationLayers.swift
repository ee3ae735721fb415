import Foundation
import LAQFormat

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

extension ActivationOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0].data
        var dz: [Float]
        switch kind {
        case let .function(activation):
            dz = activation.backward(gradOutput.data, preActivation: x, output: record.output.data, width: gradOutput.lastDimension,
                                     workspace: workspace)
        case let .relu(maxValue, slope, threshold):
            dz = workspace.floats(x.count)
            dz.withUnsafeMutableBufferPointer { dz in
                gradOutput.data.withUnsafeBufferPointer { gradient in
                    x.withUnsafeBufferPointer { x in
                        for i in dz.indices {
                            if let maxValue, x[i] >= maxValue { dz[i] = 0 } else if x[i] < threshold { dz[i] = gradient[i] * slope } else { dz[i] = gradient[i] }
                        }
                    }
                }
            }
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dz)], weights: [:])
    }
}
