import Foundation
import LAQData
import LAQEngine
import LAQImport
import LAQTestSupport
import Testing

/// Three optimizer steps on fixed batches reproduce the weights Keras itself recorded after each
/// step (tools/fixtures/make_keras_fixtures.py, `adam_trajectory`, `sgd_trajectory`): forward in
/// training mode (batch statistics), backward, Keras' update, and BatchNormalization's moving
/// averages.
@Suite struct AdamTrajectoryTests {
    static func follow(_ trajectoryFile: String, step optimizer: (inout [Weight], [String: [Float]]) -> Void) throws {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_adam_initial.h5").path).model
        let trajectory = try Numpy.load(path: TestPaths.testdata("keras/\(trajectoryFile)").path)
        let x = try #require(trajectory["x"])
        let y = try #require(trajectory["y"])
        let loss = try #require(Loss(model.training["loss"]))
        var random = TrainingRandom(seed: 1)
        for step in 1...3 {
            let batch = Tensor(shape: x.shape, data: x.values).rows(((step - 1) * 8)..<(step * 8))
            let labels = Array(y.values[((step - 1) * 8)..<(step * 8)])
            let result = try Backpropagation.run(model: model, inputs: [batch], labels: labels, loss: loss, random: &random)
            optimizer(&model.weights, result.gradients)
            for index in model.weights.indices {
                if let update = result.stateUpdates[model.weights[index].name] { model.weights[index].values = update }
            }
            for weight in model.weights {
                let keras = try #require(trajectory["step\(step)/\(weight.name)"], "step \(step): \(weight.name)")
                let error = zip(weight.values, keras.values).map { abs($0 - $1) }.max() ?? 0
                let scale = max(keras.values.map(abs).max() ?? 1, 1e-3)
                #expect(error <= 1e-5 * scale + 1e-7, "\(trajectoryFile) step \(step) \(weight.name): max |Δ| \(error)")
            }
        }
    }

    @Test("Adam(0.01) follows Keras' weights step by step")
    func matchesKeras() throws {
        var adam = Adam(learningRate: 0.01)
        try Self.follow("k3_adam_trajectory.npz") { adam.step(&$0, gradients: $1) }
        #expect(adam.iterations == 3)
    }

    @Test("SGD(0.05, momentum 0.9, Nesterov, global_clipnorm 0.5) follows Keras' weights step by step")
    func sgdMatchesKeras() throws {
        var sgd = SGD(learningRate: 0.05, momentum: 0.9, nesterov: true)
        sgd.globalClipNorm = 0.5
        try Self.follow("k3_sgd_trajectory.npz") { sgd.step(&$0, gradients: $1) }
        #expect(sgd.iterations == 3)
    }
}
