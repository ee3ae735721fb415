import Foundation
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQTestSupport
import Testing

/// The engine against Keras itself: every fixture's stored predictions (`<name>.io.npz`, written
/// by Keras) are reproduced to 1e-4 of the output scale, from the imported model and from the
/// `.laq` file written for it.
@Suite struct KerasParityTests {
    static let fixtures = ["k3_tiny.h5", "k3_tiny.keras", "tfk_tiny.h5", "tfk_tiny_legacy_adam.h5", "k3_branches.h5",
                           "k3_conv1d.h5", "k3_image.keras", "k3_fmnist_mlp.h5", "k3_fmnist_cnn.keras", "k3_char_lstm.h5",
                           "tfk_fmnist_mlp.h5", "k3_nested.h5", "k3_nested.keras", "tfk_nested.h5",
                           "k3_shared.h5", "k3_shared.keras", "tfk_shared.h5", "k3_coverage.h5", "k3_coverage.keras",
                           "k3_attention.h5", "k3_attention.keras", "k3_masking.h5", "k3_masking.keras", "tfk_attention.h5", "tfk_masking.h5",
                           "k3_int8.h5", "k3_int8.keras", "k3_int8_weights.h5", "k3_int8_weights.keras",
                           "k3_int4.h5", "k3_int4.keras", "k3_int4_channel.h5", "k3_int4_channel.keras"]

    static func ioName(_ fixture: String) -> String {
        var name = fixture
        for suffix in [".keras", ".h5"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        return name + ".io.npz"
    }

    static func inputs(_ arrays: [String: NumpyArray]) -> [Tensor] {
        if let x = arrays["x"] { return [Tensor(shape: x.shape, data: x.values)] }
        return (0...).lazy.map { arrays["x\($0)"] }.prefix { $0 != nil }.map { Tensor(shape: $0!.shape, data: $0!.values) }
    }

    static func check(_ model: Model, fixture: String) throws {
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(ioName(fixture))").path)
        let expected = try #require(io["y"])
        let output = try Executor(model: model).predict(inputs(io))[0]
        #expect(output.shape == expected.shape, "\(fixture)")
        let scale = max(expected.values.map(abs).max() ?? 1, 1e-6)
        let error = zip(output.data, expected.values).map { abs($0 - $1) }.max() ?? 0
        #expect(error <= 1e-4 * scale, "\(fixture): max |Δ| = \(error), output scale \(scale)")
    }

    /// keras_hub backbones, and keras_hub's layers in a model of one's own (`hub_layers`), in the
    /// layouts Keras writes for them: a `.keras` archive, a legacy `.h5`, and a preset's weights
    /// file with its config.
    static let hubFixtures = ["bert", "distil_bert", "gpt2", "layers"].flatMap { name in [".keras", ".h5", ".weights.h5"].map { "hub_\(name)\($0)" } }
        + ["hub_sequential.keras", "hub_sequential.weights.h5"]

    /// A hub fixture's base name (`hub_bert`) and the model imported from it.
    static func hubModel(_ fixture: String) throws -> (base: String, model: Model) {
        let base = String(fixture.prefix { $0 != "." })
        let config = fixture.hasSuffix(".weights.h5") ? TestPaths.testdata("keras/\(base).config.json").path : nil
        return (base, try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path, configPath: config).model)
    }

    /// One tensor per model input, from the arrays named after the inputs.
    static func namedInputs(_ arrays: [String: NumpyArray], for model: Model) throws -> [Tensor] {
        try model.inputs.map { ref in
            let array = try #require(arrays[ref.layer], "no array for input \(ref.layer)")
            return Tensor(shape: array.shape, data: array.values)
        }
    }

    @Test("keras_hub backbones, rebuilt from their constructor arguments, reproduce every Keras output (padding on the right and left), also from the .laq file",
          arguments: hubFixtures)
    func hubBackbones(fixture: String) throws {
        let (base, imported) = try Self.hubModel(fixture)
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(base).io.npz").path)
        // Named outputs `y_<name>`, or one output `y`.
        let expectedNames = io.keys.filter { $0.hasPrefix("y_") }.map { String($0.dropFirst(2)) }.sorted()
        let reread = try Model(file: LAQFile(bytes: try imported.laqWriter(provenance: []).encoded()))
        #expect(reread.weights == imported.weights)
        for model in [imported, reread] {
            if !expectedNames.isEmpty { #expect(model.outputNames == expectedNames) }
            let inputs = try io["x"].map { [Tensor(shape: $0.shape, data: $0.values)] } ?? Self.namedInputs(io, for: model)
            let outputs = try Executor(model: model).predict(inputs)
            for (name, output) in zip(model.outputNames, outputs) {
                let expected = try #require(io["y_\(name)"] ?? io["y"])
                #expect(output.shape == expected.shape, "\(fixture) \(name)")
                let scale = max(expected.values.map(abs).max() ?? 1, 1e-6)
                let error = zip(output.data, expected.values).map { abs($0 - $1) }.max() ?? 0
                #expect(error <= 1e-4 * scale, "\(fixture) \(name): max |Δ| = \(error), output scale \(scale)")
            }
        }
        // Trainable weights in Keras' order (optimizer state is matched by it), named by its paths.
        let data = try Data(contentsOf: TestPaths.testdata("keras/\(base).variables.json"))
        // (A Sequential's paths start with the model's name.)
        let paths = try JSONDecoder().decode([String].self, from: data).map { $0.hasPrefix(imported.name + "/") ? String($0.dropFirst(imported.name.count + 1)) : $0 }
        #expect(imported.weights.filter(\.trainable).map(\.name) == paths)
    }

    @Test("imported models reproduce Keras' predictions", arguments: fixtures)
    func imported(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        try Self.check(model, fixture: fixture)
    }

    @Test("real data: the engine's accuracy on the bundled test samples equals Keras'",
          arguments: ["k3_fmnist_mlp.h5", "k3_fmnist_cnn.keras", "k3_char_lstm.h5", "tfk_fmnist_mlp.h5"])
    func accuracy(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(Self.ioName(fixture))").path)
        let labels = try #require(io["labels"]).values
        let keras = try #require(io["y"])
        let output = try Executor(model: model).predict(Self.inputs(io))[0]
        let classes = output.shape[1]
        func argmax(_ values: [Float], _ row: Int) -> Int {
            (0..<classes).max { values[row * classes + $0] < values[row * classes + $1] }!
        }
        let ours = (0..<labels.count).filter { Float(argmax(output.data, $0)) == labels[$0] }.count
        let theirs = (0..<labels.count).filter { Float(argmax(keras.values, $0)) == labels[$0] }.count
        #expect(ours == theirs)
        if fixture.contains("fmnist") { #expect(Double(ours) / Double(labels.count) > 0.7, "one epoch of Fashion-MNIST") }
    }

    @Test("models read back from .laq reproduce Keras' predictions", arguments: fixtures)
    func throughLAQFile(fixture: String) throws {
        let imported = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let file = try LAQFile(bytes: try imported.laqWriter(provenance: []).encoded())
        let model = try Model(file: file)
        // The format's dtypes are floats (spec/FORMAT.md §5): an integer variable (Normalization's
        // element count) is stored, exactly, as float32.
        #expect(model.weights == imported.weights.map { weight in
            var stored = weight
            if weight.sourceDType == "int" { stored.sourceDType = "float32" }
            return stored
        })
        #expect(model.optimizer?.slots == imported.optimizer?.slots)
        try Self.check(model, fixture: fixture)
    }
}
