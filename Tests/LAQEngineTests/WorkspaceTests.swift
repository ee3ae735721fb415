import LAQEngine
import Testing

/// A training run's memory (``Workspace``): after the first step, a step of the same shapes takes
/// every buffer from the step before, and reuse never changes a result.
@Suite struct WorkspaceTests {
    /// An MLP with dropout and a softmax output, and a CNN with padding, max pooling and batch
    /// normalization (the layers of the training benchmarks, and the buffers they keep), and
    /// models of every other non-recurrent layer that a Sequential model can hold.
    static func models() throws -> [(name: String, model: Model, input: [Int])] {
        [
            ("mlp", try GradientTests.model(input: [nil, 12], layers: [
                ("Dense", ["units": 16, "activation": "relu"]),
                ("Dropout", ["rate": 0.3]),
                ("Dense", ["units": 8, "activation": "tanh"]),
                ("Dense", ["units": 4, "activation": "softmax"]),
            ]), [6, 12]),
            ("cnn", try GradientTests.model(input: [nil, 8, 8, 2], layers: [
                ("Conv2D", ["filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"]),
                ("MaxPooling2D", ["pool_size": 2]),
                ("BatchNormalization", ["momentum": 0.9]),
                ("Conv2D", ["filters": 3, "kernel_size": 2]),
                ("Flatten", [:]),
                ("Dense", ["units": 4, "activation": "softmax"]),
            ]), [5, 8, 8, 2]),
            ("sequence", try GradientTests.model(input: [nil, 10, 3], layers: [
                ("Conv1D", ["filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"]),
                ("LayerNormalization", ["epsilon": 0.001]),
                ("AveragePooling1D", ["pool_size": 2, "padding": "same"]),
                ("Permute", ["dims": [2, 1]]),
                ("Permute", ["dims": [2, 1]]),
                ("ReLU", ["max_value": 1.5, "negative_slope": 0.1]),
                ("Activation", ["activation": "tanh"]),
                ("GlobalAveragePooling1D", [:]),
                ("BatchNormalization", ["momentum": 0.9]),
                ("Dense", ["units": 4, "activation": "softmax"]),
            ]), [6, 10, 3]),
            ("depthwise", try GradientTests.model(input: [nil, 6, 6, 2], layers: [
                ("DepthwiseConv2D", ["kernel_size": 2, "depth_multiplier": 2, "activation": "relu"]),
                ("GlobalMaxPooling2D", [:]),
                ("Dense", ["units": 4, "activation": "softmax"]),
            ]), [4, 6, 6, 2]),
        ]
    }

    static func batch(_ shape: [Int], seed: UInt64) -> (x: Tensor, labels: [Float]) {
        var random = TrainingRandom(seed: seed)
        let x = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform() * 2 - 1 })
        return (x, (0..<shape[0]).map { _ in Float(random.next() % 4) })
    }

    static func step(_ model: Model, _ batch: (x: Tensor, labels: [Float]), seed: UInt64, workspace: Workspace?) throws -> Backpropagation.Result {
        var random = TrainingRandom(seed: seed)
        return try Backpropagation.run(model: model, inputs: [batch.x], labels: batch.labels, loss: .sparseCategoricalCrossentropy(fromLogits: false),
                                       random: &random, workspace: workspace)
    }

    /// Every value of a step's result, bit for bit.
    static func expectSame(_ a: Backpropagation.Result, _ b: Backpropagation.Result, _ context: String) {
        #expect(a.loss == b.loss, "\(context): loss")
        #expect(a.outputs == b.outputs, "\(context): outputs")
        #expect(a.gradients == b.gradients, "\(context): gradients")
        #expect(a.stateUpdates == b.stateUpdates, "\(context): state updates")
    }

    @Test("after the first step, a step of the same shapes allocates no buffer, and gives the bits of a step without a workspace")
    func reuse() throws {
        for (name, model, shape) in try Self.models() {
            let workspace = Workspace()
            var afterFirst = 0
            for step in 1...4 {
                let batch = Self.batch(shape, seed: UInt64(step))
                let result = try Self.step(model, batch, seed: UInt64(100 + step), workspace: workspace)
                if step == 1 {
                    afterFirst = workspace.allocations
                    #expect(afterFirst > 0)
                } else {
                    #expect(workspace.allocations == afterFirst, "\(name): step \(step) allocated \(workspace.allocations - afterFirst) buffers")
                }
                Self.expectSame(result, try Self.step(model, batch, seed: UInt64(100 + step), workspace: nil), "\(name) step \(step)")
            }
        }
    }

    @Test("recurrent layers, whose traces are still allocated by the layer: reuse around them gives the bits of fresh steps")
    func recurrent() throws {
        let model = try GradientTests.model(input: [nil, 5, 3], layers: [
            ("LSTM", ["units": 3, "return_sequences": true]),
            ("GRU", ["units": 2]),
            ("Dense", ["units": 4, "activation": "softmax"]),
        ])
        let workspace = Workspace()
        for step in 1...3 {
            let batch = Self.batch([4, 5, 3], seed: UInt64(step))
            Self.expectSame(try Self.step(model, batch, seed: UInt64(step), workspace: workspace),
                            try Self.step(model, batch, seed: UInt64(step), workspace: nil), "step \(step)")
        }
    }

    @Test("a result kept past the next step keeps its values (its buffers are copied, not overwritten)")
    func keptResult() throws {
        for (name, model, shape) in try Self.models() {
            let workspace = Workspace()
            let first = Self.batch(shape, seed: 1)
            let kept = try Self.step(model, first, seed: 7, workspace: workspace)
            let before = workspace.allocations
            _ = try Self.step(model, Self.batch(shape, seed: 2), seed: 8, workspace: workspace)
            Self.expectSame(kept, try Self.step(model, first, seed: 7, workspace: nil), name)
            #expect(workspace.allocations > before, "\(name): the kept buffers were copied")
        }
    }

    @Test("steps of alternating batch sizes keep only what a step uses: the retained memory does not grow")
    func changingShapes() throws {
        for (name, model, shape) in try Self.models() {
            let workspace = Workspace()
            var retained: [Int] = []
            for step in 0..<8 {
                var batchShape = shape
                batchShape[0] = step % 2 == 0 ? 3 : 7
                let batch = Self.batch(batchShape, seed: UInt64(step))
                let result = try Self.step(model, batch, seed: UInt64(step), workspace: workspace)
                Self.expectSame(result, try Self.step(model, batch, seed: UInt64(step), workspace: nil), "\(name) step \(step)")
                retained.append(workspace.retainedBytes)
            }
            #expect(Array(retained[4...]) == Array(retained[2..<6]), "\(name): retained bytes by step \(retained)")
        }
    }
}
