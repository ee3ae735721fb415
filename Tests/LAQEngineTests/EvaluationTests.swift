import Foundation
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQTestSupport
import Testing

/// Losses and metrics against Keras' own `model.evaluate` (`<name>.eval.json`) and closed forms.
@Suite struct EvaluationTests {
    @Test("loss and accuracy equal Keras' evaluate on the real-data fixtures", arguments: ["k3_fmnist_mlp", "k3_fmnist_cnn", "k3_char_lstm"])
    func matchesKeras(name: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(name).keras").path).model
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(name).io.npz").path)
        let keras = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: TestPaths.testdata("keras/\(name).eval.json")))
        let x = try #require(io["x"])
        let labels = try #require(io["labels"])
        let output = try Executor(model: model).predict([Tensor(shape: x.shape, data: x.values)])[0]
        let loss = try #require(Loss(model.training["loss"]))
        let result = Evaluation.evaluate(outputs: output.data, labels: labels.values, width: output.lastDimension, sparse: true, loss: loss, k: 5)
        #expect(abs(result.loss! - keras["loss"]!) < 1e-5 * max(1, keras["loss"]!))
        #expect(result.accuracy == keras["accuracy"])
    }

    @Test("a NaN or infinite output never counts as correct, and is counted; the first layer producing one is found")
    func nonFinite() throws {
        // Three rows of 3 classes, all labelled 0: finite and right, NaN, infinite.
        let outputs: [Float] = [0.9, 0.05, 0.05, .nan, 0, 0, .infinity, 0, 0]
        let result = Evaluation.evaluate(outputs: outputs, labels: [0, 0, 0], width: 3, sparse: true, loss: nil, k: 2)
        #expect(result.accuracy == 1.0 / 3 && result.nonFinite == 2)
        let binary = Evaluation.evaluate(outputs: [.nan, 0.9], labels: [0, 1], width: 1, sparse: false, loss: nil, k: 5)
        #expect(binary.accuracy == 0.5 && binary.nonFinite == 1)
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let finite = try Executor(model: model)
        let io = try Numpy.load(path: TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path)
        let x = try #require(io["x"])
        let sample = [Tensor(shape: x.shape, data: x.values).rows(0..<1)]
        #expect(try finite.firstNonFiniteLayer(sample) == nil)
        let index = try #require(model.weights.lastIndex { $0.shortName == "bias" })
        model.weights[index].values[0] = .nan
        #expect(try Executor(model: model).firstNonFiniteLayer(sample) == model.weights[index].layer)
    }

    @Test("cross-entropy from logits equals it from the softmax of the logits")
    func logits() {
        let logits: [Float] = [2, -1, 0.5, 0.1, 3, -2]
        var probabilities = logits
        Activation.softmax.apply(&probabilities, width: 3)
        let fromLogits = Loss.sparseCategoricalCrossentropy(fromLogits: true).perSample(outputs: logits, labels: [0, 1], width: 3)
        let fromProbabilities = Loss.sparseCategoricalCrossentropy(fromLogits: false).perSample(outputs: probabilities, labels: [0, 1], width: 3)
        for (a, b) in zip(fromLogits, fromProbabilities) { #expect(abs(a - b) < 1e-5) }
        let binary = Loss.binaryCrossentropy(fromLogits: true).perSample(outputs: [0.3], labels: [1], width: 1)[0]
        #expect(abs(binary - -logf(1 / (1 + expf(-0.3)))) < 1e-6)
    }

    @Test("MSE, squared hinge and top-k by hand")
    func closedForms() {
        #expect(Loss.meanSquaredError.perSample(outputs: [1, 2], labels: [0, 0], width: 2) == [2.5])
        #expect(Loss.squaredHinge.perSample(outputs: [0.5, -2], labels: [1, -1], width: 2) == [0.125])
        let result = Evaluation.evaluate(outputs: [0.1, 0.7, 0.2, 0.5, 0.3, 0.2], labels: [2, 0], width: 3, sparse: true, loss: nil, k: 2)
        #expect(result.accuracy == 0.5)
        #expect(result.topK?.accuracy == 1)  // class 2 is second in the first row
        #expect(Evaluation.evaluate(outputs: [0.4, 0.6], labels: [1], width: 2, sparse: true, loss: nil, k: 2).topK == nil)  // k ≥ classes
        let top2 = Evaluation.evaluate(outputs: [0.1, 0.7, 0.2, 0.05, 0.5, 0.3, 0.2, 0, 0.4, 0.3, 0.2, 0.1], labels: [2, 3, 1], width: 4, sparse: true, loss: nil, k: 2)
        #expect(top2.topK?.accuracy == 2.0 / 3)
    }

    @Test("squared hinge reads 0/1 labels as ±1, as Keras does (its docstring example: 1.86)")
    func hingeLabels() {
        let losses = Loss.squaredHinge.perSample(outputs: [0.6, 0.4, 0.4, 0.6], labels: [0, 1, 0, 0], width: 2)
        #expect(abs((losses[0] + losses[1]) / 2 - 1.86) < 1e-5)
    }

    @Test("out-of-range class indices give NaN losses and no accuracy credit, never a trap")
    func badLabels() {
        #expect(Loss.sparseCategoricalCrossentropy(fromLogits: false).perSample(outputs: [0.5, 0.5], labels: [7], width: 2)[0].isNaN)
        #expect(Evaluation.evaluate(outputs: [0.5, 0.5], labels: [-3], width: 2, sparse: true, loss: nil, k: 1).accuracy == 0)
    }

    @Test("Keras training configs name their losses as strings or objects")
    func lossNames() {
        #expect(Loss("sparse_categorical_crossentropy") == .sparseCategoricalCrossentropy(fromLogits: false))
        #expect(Loss(["class_name": "CategoricalCrossentropy", "config": ["from_logits": true]]) == .categoricalCrossentropy(fromLogits: true))
        #expect(Loss("mse") == .meanSquaredError)
        #expect(Loss("kl_divergence") == nil)
    }
}
