import Foundation
import LAQData
import LAQExamples
import LAQFormat
import LAQImport
import LAQTestSupport
import Testing
@testable import LAQEngine

/// Inference fusion (``Fusion``): which layers fuse, and that fused predictions are bit for bit
/// those of the layers run one by one.
struct FusionTests {
    /// The fused ops by layer: "epilogue" for a product that absorbed what follows it, "pass"
    /// for an absorbed layer.
    static func plan(_ executor: Executor) -> [String: String] {
        executor.fused.mapValues { $0 is EpilogueOp ? "epilogue" : $0 is PassOp ? "pass" : "other" }
    }

    /// Predictions with fusion against every layer run on its own.
    static func checkSameBits(_ executor: Executor, _ inputs: [Tensor], _ name: String) throws {
        let fused = try executor.predict(inputs)
        let unfused = try executor.activations(inputs)
        for (ref, output) in zip(executor.model.outputs, fused) {
            let expected = try #require(unfused[TensorRef(layer: ref.layer, node: ref.node).description], "\(name): \(ref)")
            #expect(output.shape == expected.shape, "\(name)")
            #expect(output.data.map(\.bitPattern) == expected.data.map(\.bitPattern), "\(name): fused output differs")
        }
    }

    @Test("Conv2D → BatchNormalization → ReLU(6) fuses, and the fused prediction has the same bits")
    func convolutionBlock() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_coverage.h5").path).model
        let executor = try Executor(model: model)
        // The depthwise convolution's reader is a Rescaling and the other products have activations of their own.
        #expect(Self.plan(executor) == ["conv": "epilogue", "bn": "pass", "relu6": "pass"])
        let io = try Numpy.load(path: TestPaths.testdata("keras/k3_coverage.io.npz").path)
        try Self.checkSameBits(executor, KerasParityTests.inputs(io), "k3_coverage")
    }

    @Test("Dense → BatchNormalization → Activation fuses with packed kernels, with float32 and int8 activations")
    func packedDense() throws {
        let file = try LAQFile(bytes: try ExampleModels.demoMLP().encoded())
        let model = try Model(file: file)
        var random = SplitMix64(seed: 5)
        let inputs = [Tensor(shape: [3, 784], data: (0..<(3 * 784)).map { _ in random.uniform() })]
        for precision in [ActivationPrecision.float32, .int8] {
            let executor = try Executor(model: model, activations: precision)
            #expect(Self.plan(executor) == ["dense_1": "epilogue", "batch_normalization": "pass", "activation": "pass"])
            try Self.checkSameBits(executor, inputs, "demo MLP, \(precision)")
        }
    }

    @Test("Every Keras fixture predicts the same bits fused and unfused", arguments: KerasParityTests.fixtures)
    func fixtures(_ fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(KerasParityTests.ioName(fixture))").path)
        try Self.checkSameBits(try Executor(model: model), KerasParityTests.inputs(io), fixture)
    }

    @Test("Nothing fuses where another layer reads the intermediate tensor or it is a model output")
    func sharedIntermediates() throws {
        // k3_branches reads some outputs twice; every fused layer must have a single reader.
        for fixture in ["k3_branches.h5", "k3_shared.h5", "k3_fmnist_cnn.keras"] {
            let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
            let executor = try Executor(model: model)
            let calls = try model.calls()
            let outputs = Set(model.outputs.map { TensorRef(layer: $0.layer, node: $0.node) })
            for (name, op) in executor.fused where op is EpilogueOp {
                let index = try #require(model.layers.firstIndex { $0.name == name })
                let ref = TensorRef(layer: name)
                #expect(!outputs.contains(ref), "\(fixture): \(name) is a model output")
                #expect(calls.filter { $0.layer == index }.count == 1, "\(fixture): \(name) is shared")
                #expect(calls.filter { model.inputs(of: $0).contains(ref) }.count == 1, "\(fixture): \(name) has several readers")
            }
        }
    }

    @Test("A prediction lets every tensor go after its last reader: only the model's outputs remain",
          arguments: ["k3_coverage.h5", "k3_branches.h5", "k3_shared.keras", "k3_masking.keras", "k3_attention.keras"])
    func intermediatesReleased(_ fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let executor = try Executor(model: model)
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(KerasParityTests.ioName(fixture))").path)
        let inputs = KerasParityTests.inputs(io)
        #expect(Set(try executor.callOutputs(inputs).keys) == executor.outputRefs, "\(fixture)")
        #expect(try executor.callOutputs(inputs, fused: false, keepAll: true).count >= model.layers.count, "\(fixture)")
    }
}
