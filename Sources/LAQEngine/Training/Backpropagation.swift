import Foundation

/// Gradients of a model's loss on one batch: forward in training mode, then backward through
/// the graph, layer by layer in reverse order (gradients of tensors used twice are summed).
public struct Backpropagation {
    public struct Result: Sendable {
        /// Mean loss over the batch.
        public var loss: Double
        /// By weight name (`<layer>/<short name>`), for every trainable and non-trainable weight that got one.
        public var gradients: [String: [Float]]
        /// New values of non-trainable weights (moving statistics), by weight name.
        public var stateUpdates: [String: [Float]]
        public var outputs: Tensor
    }

    /// One batch: `inputs` per model input, `labels` as the loss expects them.
    ///
    /// `workspace`: the memory of the run's steps (``Workspace``): the result's outputs and
    /// gradients are then valid until the next step with the same workspace, whose buffers
    /// they become (a caller that keeps them costs a copy, never a changed value). Without
    /// one, every buffer is allocated anew.
    public static func run(
        model: Model, inputs: [Tensor], labels: [Float], loss: Loss, random: inout TrainingRandom, workspace: Workspace? = nil
    ) throws(EngineError) -> Result {
        let workspace = workspace ?? Workspace()
        let (executor, values, records) = try forward(model: model, inputs: inputs, random: &random, workspace: workspace)
        let outputRef = TensorRef(layer: model.outputs[0].layer, node: model.outputs[0].node)
        guard let output = values[outputRef] else { throw .badInput(name: "(model)", reason: "no output") }
        // The loss is the mean over every row of the last axis (samples, and time steps of
        // sequence outputs), as Keras reduces it.
        let width = output.lastDimension
        let rows = output.count / max(width, 1)
        let expectedLabels = loss.sparseLabels ? rows : output.count
        guard labels.count == expectedLabels else {
            throw .badInput(name: "labels", reason: "\(labels.count) values, the loss needs \(expectedLabels) for outputs of shape \(output.shape)")
        }
        if loss.sparseLabels, let bad = labels.firstIndex(where: { $0 < 0 || $0 >= Float(width) || $0 != $0.rounded() }) {
            throw .badInput(name: "labels", reason: "label \(labels[bad]) at sample \(bad) is not a class index in 0…\(width - 1)")
        }
        let lossValue = loss.meanLoss(outputs: output.data, labels: labels, width: width)
        var gradients: [TensorRef: Tensor] = [
            outputRef: Tensor(shape: output.shape, data: loss.gradient(outputs: output.data, labels: labels, width: width, workspace: workspace)),
        ]
        var weightGradients: [String: [Float]] = [:]
        var stateUpdates: [String: [Float]] = [:]
        // Backward in reverse call order. A shared layer's calls each add their weight gradients
        // (one set of weights, used several times); its state updates are those of its last call.
        for call in executor.calls.reversed() where !model.layers[call.layer].inbound.isEmpty {
            let layer = model.layers[call.layer]
            let record = records[call]!
            if call.node == layer.inbound.count - 1 {
                for (short, values) in record.stateUpdates { stateUpdates["\(layer.name)/\(short)"] = values }
            }
            guard let gradient = gradients[model.output(of: call)] else { continue }
            let op = executor.ops[layer.name] as! any TrainableOp
            let result = try op.backward(gradient, record, workspace: workspace)
            // Sums in place (a shared layer's weights, a tensor read by several layers).
            for (short, grad) in result.weights {
                let name = "\(layer.name)/\(short)"
                if weightGradients[name] != nil { Matrix.add(grad, to: &weightGradients[name]!) } else { weightGradients[name] = grad }
            }
            for (ref, grad) in zip(model.inputs(of: call), result.inputs) {
                guard let grad else { continue }
                if gradients[ref] != nil { Matrix.add(grad.data, to: &gradients[ref]!.data) } else { gradients[ref] = grad }
            }
        }
        // What the step produced goes back to the workspace at the next step's start: records
        // (outputs, pre-activations, im2col matrices, masks, max-pooling indices), tensor
        // gradients and weight gradients. Buffers lent twice (a reshape shares its input's) are
        // kept once.
        lend(records, to: workspace)
        for gradient in gradients.values { workspace.lend(gradient.data) }
        for gradient in weightGradients.values { workspace.lend(gradient) }
        return Result(loss: lossValue, gradients: weightGradients, stateUpdates: stateUpdates, outputs: output)
    }

    /// The population statistics of the model's BatchNormalization layers on `batches` batches
    /// (`inputs(i)`, each one tensor per model input): a training-mode forward pass per batch (no
    /// backward), each layer's batch moments combined as one population of N values,
    /// mean = Σ n·μ / N and variance = Σ n·(σ² + μ²) / N − mean² (biased, as Keras' moving
    /// variance). A layer called several times pools its calls. By weight name
    /// (`<layer>/moving_mean`, `<layer>/moving_variance`); empty for a model without such layers.
    /// A layer that saw fewer than `minimumCount` values per channel is left out: from a few
    /// values (a 1×1 feature map of one sample) the variance is no estimate, and a near-zero one
    /// would amplify every other input by 1/√ε.
    ///
    /// This is what the moving statistics estimate, without their lag: after the weights change
    /// (quantized), an exponential average of momentum 0.99 needs hundreds of steps to forget
    /// the old activations, and inference normalizes with the stale ones.
    public static func populationStatistics(
        model: Model, batches: Int, inputs: (Int) -> [Tensor], random: inout TrainingRandom, minimumCount: Int = 1
    ) throws(EngineError) -> [String: [Float]] {
        var sums: [String: (count: Double, mean: [Double], square: [Double])] = [:]
        let workspace = Workspace()
        for index in 0..<batches {
            let (executor, _, records) = try forward(model: model, inputs: inputs(index), random: &random, workspace: workspace)
            for call in executor.calls {
                guard let moments = records[call]?.batchMoments else { continue }
                let layer = model.layers[call.layer].name
                var sum = sums[layer] ?? (0, [Double](repeating: 0, count: moments.mean.count), [Double](repeating: 0, count: moments.mean.count))
                guard sum.mean.count == moments.mean.count else { continue }
                let n = Double(moments.count)
                sum.count += n
                for c in moments.mean.indices {
                    sum.mean[c] += n * moments.mean[c]
                    sum.square[c] += n * (moments.variance[c] + moments.mean[c] * moments.mean[c])
                }
                sums[layer] = sum
            }
            lend(records, to: workspace)
            // A model without normalization layers has nothing to estimate: one pass says so.
            if sums.isEmpty { break }
        }
        var statistics: [String: [Float]] = [:]
        for (layer, sum) in sums where sum.count > 0 && sum.count >= Double(minimumCount) {
            let mean = sum.mean.map { $0 / sum.count }
            statistics["\(layer)/moving_mean"] = mean.map { Float($0) }
            statistics["\(layer)/moving_variance"] = zip(sum.square, mean).map { Float(max($0 / sum.count - $1 * $1, 0)) }
        }
        return statistics
    }

    /// The training-mode forward pass: every call's record, and the tensors computed.
    private static func forward(
        model: Model, inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace
    ) throws(EngineError) -> (Executor, [TensorRef: Tensor], [LayerCall: ForwardRecord]) {
        workspace.beginStep(keeping: inputs)
        if let packed = model.weights.first(where: { $0.packed != nil }) {
            throw .invalidModel("weight '\(packed.name)' is packed: training needs float32 weights (read the file with Model(file:) without packed)")
        }
        let executor = try Executor(model: model, training: true)
        guard model.outputs.count == 1 else { throw .unsupported(layer: "(model)", reason: "training supports single-output models") }
        var values: [TensorRef: Tensor] = [:]
        var masks: [TensorRef: Tensor] = [:]
        var records: [LayerCall: ForwardRecord] = [:]
        let modelInputs = Set(model.inputs.map { TensorRef(layer: $0.layer) })
        for (ref, tensor) in zip(model.inputs, inputs) { values[TensorRef(layer: ref.layer)] = tensor }
        for step in executor.plan.steps where !model.layers[step.layer].inbound.isEmpty {
            let call = step.call
            let layer = model.layers[call.layer]
            guard let op = executor.ops[layer.name] as? any TrainableOp else {
                throw .unsupported(layer: layer.name, reason: "training a \(layer.className) is not implemented yet")
            }
            var arguments: [Tensor] = []
            for ref in model.inputs(of: call) {
                guard let value = values[ref] else { throw .badInput(name: layer.name, reason: "its input '\(ref)' was not computed") }
                arguments.append(value)
            }
            let refs = executor.plan.refs
            let inputMasks = try executor.inputMasks(step, value: { values[refs[$0]] }, mask: { masks[refs[$0]] })
            var record = if let inputMasks {
                try op.forwardTraining(arguments, masks: inputMasks, random: &random, workspace: workspace)
            } else {
                try op.forwardTraining(arguments, random: &random, workspace: workspace)
            }
            record.inputsNeedGradients = !model.inputs(of: call).allSatisfy(modelInputs.contains)
            values[model.output(of: call)] = record.output
            if step.carriesMask { masks[model.output(of: call)] = try executor.outputMask(step, inputs: arguments, masks: inputMasks) }
            records[call] = record
        }
        return (executor, values, records)
    }

    /// The records' buffers, back to the workspace for the next step.
    private static func lend(_ records: [LayerCall: ForwardRecord], to workspace: Workspace) {
        for record in records.values {
            workspace.lend(record.output.data)
            if let z = record.preActivation { workspace.lend(z) }
            workspace.lend(record.extra)
            workspace.lend(record.indices)
        }
    }

}

