import Foundation
import LAQData
import LAQEngine
import LAQImport
import LAQModel
import LAQTestSupport
import Testing

/// Three Adam steps on fixed batches reproduce the weights Keras itself recorded after each step
/// (tools/fixtures/make_keras_fixtures.py, `adam_trajectory`): forward in training mode (batch
/// statistics), backward, Keras' Adam, and BatchNormalization's moving averages.
@Suite struct AdamTrajectoryTests {
    @Test func matchesKeras() throws {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_adam_initial.h5").path).model
        let trajectory = try Numpy.load(path: TestPaths.testdata("keras/k3_adam_trajectory.npz").path)
        let x = try #require(trajectory["x"])
        let y = try #require(trajectory["y"])
        let loss = try #require(Loss(model.training["loss"]))
        var adam = Adam(learningRate: 0.01)
        var random = TrainingRandom(seed: 1)
        for step in 1...3 {
            let batch = Tensor(shape: x.shape, data: x.values).rows(((step - 1) * 8)..<(step * 8))
            let labels = Array(y.values[((step - 1) * 8)..<(step * 8)])
            let result = try Backpropagation.run(model: model, inputs: [batch], labels: labels, loss: loss, random: &random)
            adam.step(&model.weights, gradients: result.gradients)
            for index in model.weights.indices {
                if let update = result.stateUpdates[model.weights[index].name] { model.weights[index].values = update }
            }
            for weight in model.weights {
                let keras = try #require(trajectory["step\(step)/\(weight.name)"], "step \(step): \(weight.name)")
                let error = zip(weight.values, keras.values).map { abs($0 - $1) }.max() ?? 0
                let scale = max(keras.values.map(abs).max() ?? 1, 1e-3)
                #expect(error <= 1e-5 * scale + 1e-7, "step \(step) \(weight.name): max |Δ| \(error)")
            }
        }
        #expect(adam.iterations == 3)
    }
}
