// `laq-bench --train MODEL.h5 [--batch 100] [--steps 200] [--data BATCH.npz] [--json]`: training
// throughput of laq's engine (forward in training mode, backward, Keras' Adam) on one batch,
// sparse categorical cross-entropy over the output classes: `x` and `y` from BATCH.npz (their
// first `batch` rows), or random data shaped for the model's input. tools/bench/compare_tf.py
// runs it beside TensorFlow's own loop on the same model and batch.
import Foundation
import LAQData
import LAQEngine
import LAQExamples
import LAQImport

func trainBenchmark(path: String, batch: Int, steps: Int, data: String?, json: Bool) throws {
    var model = try KerasImporter(includeOptimizer: false).importModel(path: path).model
    let executor = try Executor(model: model)
    let inputShape = try model.outputShapes()[model.inputs[0].layer] ?? []
    let features = inputShape.dropFirst().map { $0 ?? 1 }.reduce(1, *)
    var random = SeededGenerator(seed: 3)
    var x = Tensor(shape: [batch] + inputShape.dropFirst().map { $0 ?? 1 },
                   data: (0..<(batch * features)).map { _ in Float(random.next() % 1000) / 1000 })
    let classes = try executor.predict([x.rows(0..<1)])[0].lastDimension
    var labels = (0..<batch).map { _ in Float(random.next() % UInt64(classes)) }
    if let data {
        let arrays = try DataFile.load(data)
        guard let images = arrays["x"], let classes = arrays["y"], images.shape.first ?? 0 >= batch, classes.values.count >= batch,
              images.values.count / max(images.shape.first ?? 1, 1) == features else {
            throw BenchError("\(data): needs arrays x (at least \(batch) rows of \(features) values) and y")
        }
        x = Tensor(shape: x.shape, data: Array(images.values[0..<(batch * features)]))
        labels = Array(classes.values[0..<batch])
    }
    var adam = Adam(learningRate: 1e-3)
    var trainingRandom = TrainingRandom(seed: 1)
    // One workspace for the run: after the first step, steps reuse its buffers.
    let workspace = Workspace()
    func step() throws {
        let result = try Backpropagation.run(model: model, inputs: [x], labels: labels, loss: .sparseCategoricalCrossentropy(fromLogits: false),
                                             random: &trainingRandom, workspace: workspace)
        adam.step(&model.weights, gradients: result.gradients)
    }
    for _ in 0..<5 { try step() }  // warm-up
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<steps { try step() }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let rate = Double(steps * batch) / seconds
    // Buffers the run's steps did not reuse (all made in the first step when shapes stay the same).
    let buffers = workspace.allocations, retained = Double(workspace.retainedBytes) / 1_048_576
    if json {
        print("{\"samples_per_second\": \(rate), \"steps\": \(steps), \"batch\": \(batch), \"seconds\": \(seconds), \"workspace_buffers\": \(buffers)}")
    } else {
        print(String(format: "laq training: %d steps of batch %d in %.2f s: %.0f samples/s (workspace: %d buffers made, %.1f MiB free between steps)",
                     steps, batch, seconds, rate, buffers, retained))
    }
}

/// A benchmark's input that cannot be used, with the reason.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
