import Foundation
import LAQFormat

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
