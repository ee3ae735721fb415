import Foundation
import LAQFormat

/// Keras' `Bidirectional` around a SimpleRNN, LSTM or GRU: the forward layer, and a copy run
/// backwards in time whose sequence output is reversed back; merged by concat (default), sum,
/// mul or ave. The weights are the wrapped layer's, under `forward/` and `backward/`.
public struct BidirectionalLayer: LayerKind {
    let inner: RecurrentLayer
    let mode: String

    public init(_ options: LayerOptions) throws(ModelError) {
        guard let entry = options.value("layer"), let innerClass = entry["class_name"]?.stringValue else {
            throw options.unsupported("a Bidirectional without a wrapped layer")
        }
        let kind = LayerRegistry.kind(name: options.layer, entry: entry)
        if let unsupported = kind as? UnsupportedKind { throw unsupported.error ?? options.unsupported("a wrapped \(innerClass) (\(unsupported.description))") }
        guard let recurrent = kind as? RecurrentLayer else { throw options.unsupported("a wrapped layer that is not SimpleRNN, LSTM or GRU") }
        inner = recurrent
        switch options.value("merge_mode") {
        case nil:
            // Absent: Keras' default; written as null: no merge, two outputs.
            guard options.config["merge_mode"] == nil else { throw options.unsupported("merge_mode None") }
            mode = "concat"
        case let .string(mode)? where ["concat", "sum", "mul", "ave"].contains(mode): self.mode = mode
        case let other?: throw options.unsupported("merge_mode \(other)")
        }
        // Keras 3 always serialises the backward layer; accepted when it mirrors the forward one.
        if let backward = options.value("backward_layer") {
            let backwardKind = LayerRegistry.kind(name: options.layer, entry: backward)
            guard backward["class_name"]?.stringValue == innerClass, let mirror = backwardKind as? RecurrentLayer, mirror.sameComputation(as: recurrent) else {
                throw options.unsupported("a backward_layer that differs from the forward layer")
            }
        }
    }

    public var weights: [WeightSpec] { inner.weights.map { $0.prefixed("forward/") } + inner.weights.map { $0.prefixed("backward/") } }

    public var keras3VariableGroups: [String] { ["forward_layer/cell/vars", "backward_layer/cell/vars"] }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == 3 else { throw .shapeMismatch(layer: layer, reason: "Bidirectional needs (batch, time, features) input") }
        let width = mode == "concat" ? inner.units * 2 : inner.units
        return inner.returnSequences ? [input[0], input[1], width] : [input[0], width]
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        for (name, shape) in inner.weightShapes(inputs) {
            shapes["forward/\(name)"] = shape
            shapes["backward/\(name)"] = shape
        }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try BidirectionalOp(context, layer: self) }

    /// Both directions skip masked steps, and output 0 at them when they return sequences;
    /// the input's mask passes on then, as for ``RecurrentLayer``.
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool {
        inner.returnSequences && masked.first == true
    }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? { masks.first ?? nil }
}

/// Bidirectional's computation.
struct BidirectionalOp: Op {
    let name: String
    let forwardLayer: RecurrentOp
    let backwardLayer: RecurrentOp
    let mode: String

    init(_ context: OpContext, layer: BidirectionalLayer) throws(EngineError) {
        name = context.layer.name
        var forwardLayer = try RecurrentOp(context, layer: layer.inner, prefix: "forward/")
        var backwardLayer = try RecurrentOp(context, layer: layer.inner, prefix: "backward/")
        forwardLayer.zeroOutputForMask = layer.inner.returnSequences
        backwardLayer.zeroOutputForMask = layer.inner.returnSequences
        self.forwardLayer = forwardLayer
        self.backwardLayer = backwardLayer
        mode = layer.mode
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try forward(tensors, masks: [nil], workspace: workspace)
    }

    func forward(_ tensors: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor {
        let mask = masks.first ?? nil
        let forward = try forwardLayer.run(tensors[0], reverse: forwardLayer.goBackwards, mask: mask)
        // Re-align the backward sequence with time.
        let backward = Self.reversedInTime(try backwardLayer.run(tensors[0], reverse: !forwardLayer.goBackwards, mask: mask))
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
        try forwardTraining(inputs, masks: [nil], random: &random, workspace: workspace)
    }

    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let mask = masks.first ?? nil
        let (forward, forwardTrace) = try forwardLayer.trace(inputs[0], reverse: forwardLayer.goBackwards, mask: mask)
        var (backward, backwardTrace) = try backwardLayer.trace(inputs[0], reverse: !forwardLayer.goBackwards, mask: mask)
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
