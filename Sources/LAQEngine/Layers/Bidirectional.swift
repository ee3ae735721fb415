import Foundation
import LAQFormat

/// Bidirectional: the forward layer, and a copy run backwards in time whose sequence output is
/// reversed back; merged by concat (default), sum, mul or ave.
struct BidirectionalOp: Op {
    let name: String
    let forwardLayer: RecurrentOp
    let backwardLayer: RecurrentOp
    let mode: String

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        guard let inner = context.config["layer"], let className = inner["class_name"]?.stringValue else {
            throw .unsupported(layer: name, reason: "no wrapped layer")
        }
        forwardLayer = try RecurrentOp(context, className: className, prefix: "forward/", config: inner["config"])
        backwardLayer = try RecurrentOp(context, className: className, prefix: "backward/", config: inner["config"])
        mode = context.config["merge_mode"]?.stringValue ?? "concat"
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let forward = try forwardLayer.run(tensors[0], reverse: forwardLayer.goBackwards)
        // Re-align the backward sequence with time.
        let backward = Self.reversedInTime(try backwardLayer.run(tensors[0], reverse: !forwardLayer.goBackwards))
        return try merge(forward, backward)
    }

    /// Merges the two directions: concat (default), sum, mul or ave.
    func merge(_ forward: Tensor, _ backward: Tensor) throws(EngineError) -> Tensor {
        switch mode {
        case "concat": return try ConcatenateOp(name: name, axis: -1).forward([forward, backward])
        case "sum": return try MergeOp(name: name, kind: .add).forward([forward, backward])
        case "mul": return try MergeOp(name: name, kind: .multiply).forward([forward, backward])
        case "ave":
            var sum = try MergeOp(name: name, kind: .add).forward([forward, backward])
            for i in sum.data.indices { sum.data[i] *= 0.5 }
            return sum
        default: throw .unsupported(layer: name, reason: "merge_mode \(mode)")
        }
    }
}

extension BidirectionalOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (forward, forwardTrace) = try forwardLayer.trace(inputs[0], reverse: forwardLayer.goBackwards)
        var (backward, backwardTrace) = try backwardLayer.trace(inputs[0], reverse: !forwardLayer.goBackwards)
        backward = Self.reversedInTime(backward)
        var record = ForwardRecord(inputs: inputs, output: try merge(forward, backward))
        record.traces = [forwardTrace, backwardTrace]
        record.extra = forward.data + backward.data
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let half = record.extra.count / 2
        let forward = Array(record.extra[0..<half])
        let backward = Array(record.extra[half...])
        let shape = forwardLayer.returnSequences ? [x.shape[0], x.shape[1], forwardLayer.units] : [x.shape[0], forwardLayer.units]
        var gForward = [Float](repeating: 0, count: half)
        var gBackward = [Float](repeating: 0, count: half)
        let units = forwardLayer.units
        for i in 0..<half {
            switch mode {
            case "concat":
                let row = i / units, j = i % units
                gForward[i] = gradOutput.data[row * 2 * units + j]
                gBackward[i] = gradOutput.data[row * 2 * units + units + j]
            case "sum": gForward[i] = gradOutput.data[i]; gBackward[i] = gradOutput.data[i]
            case "mul": gForward[i] = gradOutput.data[i] * backward[i]; gBackward[i] = gradOutput.data[i] * forward[i]
            default: gForward[i] = gradOutput.data[i] * 0.5; gBackward[i] = gradOutput.data[i] * 0.5
            }
        }
        let forwardGradients = forwardLayer.backwardThroughTime(Tensor(shape: shape, data: gForward), x: x, trace: record.traces[0], reverse: forwardLayer.goBackwards)
        // The backward layer's sequence was re-aligned with time: undo that for its gradient.
        let backwardGradient = Self.reversedInTime(Tensor(shape: shape, data: gBackward))
        let backwardGradients = backwardLayer.backwardThroughTime(backwardGradient, x: x, trace: record.traces[1], reverse: !forwardLayer.goBackwards)
        var weights: [String: [Float]] = [:]
        for (prefix, result) in [("forward/", forwardGradients), ("backward/", backwardGradients)] {
            weights[prefix + "kernel"] = result.dKernel
            weights[prefix + "recurrent_kernel"] = result.dRecurrent
            if let dBias = result.dBias { weights[prefix + "bias"] = dBias }
        }
        let dx = zip(forwardGradients.dx, backwardGradients.dx).map { $0 + $1 }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }

    /// A (batch, time, units) sequence reversed along time; other tensors unchanged.
    static func reversedInTime(_ tensor: Tensor) -> Tensor {
        guard tensor.rank == 3 else { return tensor }
        let (batch, steps, units) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        var data = tensor.data
        for n in 0..<batch {
            for t in 0..<steps {
                for j in 0..<units { data[(n * steps + t) * units + j] = tensor.data[(n * steps + steps - 1 - t) * units + j] }
            }
        }
        return Tensor(shape: tensor.shape, data: data)
    }
}
