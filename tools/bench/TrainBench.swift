// `laq-bench --train MODEL.h5 [--batch 100] [--steps 200] [--json]`: training throughput of laq's
// engine (forward in training mode, backward, Keras' Adam) on random data shaped for the model's
// input, sparse categorical cross-entropy over its output classes. tools/bench/compare_tf.py runs
// it beside TensorFlow's own loop on the same model.
import Foundation
import LAQEngine
import LAQExamples
import LAQImport
import LAQModel

func trainBenchmark(path: String, batch: Int, steps: Int, json: Bool) throws {
    // As the laq command sets it up: freed arrays stay in the heap for the next step.
    EngineMemory.keepFreedBlocks()
    var model = try KerasImporter(includeOptimizer: false).importModel(path: path).model
    let executor = try Executor(model: model)
    let inputShape = try model.outputShapes()[model.inputs[0].layer] ?? []
    let features = inputShape.dropFirst().map { $0 ?? 1 }.reduce(1, *)
    var random = SeededGenerator(seed: 3)
    let x = Tensor(shape: [batch] + inputShape.dropFirst().map { $0 ?? 1 },
                   data: (0..<(batch * features)).map { _ in Float(random.next() % 1000) / 1000 })
    let classes = try executor.predict([x.rows(0..<1)])[0].lastDimension
    let labels = (0..<batch).map { _ in Float(random.next() % UInt64(classes)) }
    var adam = Adam(learningRate: 1e-3)
    var trainingRandom = TrainingRandom(seed: 1)
    func step() throws {
        let result = try Backpropagation.run(model: model, inputs: [x], labels: labels, loss: .sparseCategoricalCrossentropy(fromLogits: false),
                                             random: &trainingRandom)
        adam.step(&model.weights, gradients: result.gradients)
    }
    for _ in 0..<5 { try step() }  // warm-up
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<steps { try step() }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let rate = Double(steps * batch) / seconds
    if json {
        print("{\"samples_per_second\": \(rate), \"steps\": \(steps), \"batch\": \(batch), \"seconds\": \(seconds)}")
    } else {
        print(String(format: "laq training: %d steps of batch %d in %.2f s: %.0f samples/s", steps, batch, seconds, rate))
    }
}
