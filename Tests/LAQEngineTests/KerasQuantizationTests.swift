@testable import LAQEngine
import LAQFormat
import Testing

/// Keras' own quantization (spec/QUANTIZATION.md §11) beyond the fixtures: how configs are read,
/// the arithmetic on hand-made weights, and inputs Keras computes as NaN.
@Suite struct KerasQuantizationTests {
    static let int8Policy: JSONValue = ["class_name": "QuantizedDTypePolicy", "config": ["mode": "int8", "source_name": "float32"]]

    /// A model of one Dense (2 inputs, 3 units) with `config`'s options, codes k, scales s and bias b.
    static func dense(_ config: [String: JSONValue], codes: [Float] = [1, -2, 127, -128, 5, 0], scales: [Float] = [2, 4, 0.5],
                      bias: [Float] = [0.25, 0, -1]) throws -> Model {
        var members = config
        members["name"] = "d"
        members["units"] = 3
        let architecture: JSONValue = ["class_name": "Functional", "config": [
            "name": "m", "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]], "layers": [
                ["class_name": "InputLayer", "name": "in", "config": ["name": "in", "batch_shape": [nil, 2]], "inbound_nodes": []],
                ["class_name": "Dense", "name": "d", "config": .object(members), "inbound_nodes": [[["in", 0, 0, [:]]]]],
            ],
        ]]
        let graph = try KerasArchitecture.parse(architecture)
        return Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, weights: [
            Weight(layer: "d", shortName: "kernel", shape: [2, 3], values: codes, trainable: false),
            Weight(layer: "d", shortName: "bias", shape: [3], values: bias, trainable: true),
            Weight(layer: "d", shortName: "kernel_scale", shape: [3], values: scales, trainable: false),
        ])
    }

    static func quantization(_ model: Model) -> KerasQuantization? { (model.layers[1].kind as? DenseLayer)?.quantization }

    @Test("the dtype policy decides; a config's absent keys take Keras' from_config values (no input quantizer, int4 per channel)")
    func configs() throws {
        #expect(Self.quantization(try Self.dense(["dtype": Self.int8Policy])) == KerasQuantization(mode: .int8, inputs: KerasQuantization.defaultInputs))
        #expect(Self.quantization(try Self.dense(["dtype": "int8_from_float32"])) == KerasQuantization(mode: .int8, inputs: KerasQuantization.defaultInputs))
        let empty: JSONValue = ["class_name": "Int8QuantizationConfig", "config": [:]]
        #expect(Self.quantization(try Self.dense(["dtype": Self.int8Policy, "quantization_config": empty])) == KerasQuantization(mode: .int8, inputs: nil))
        // A float layer with a quantization config is a float layer, as in Keras.
        #expect(Self.quantization(try Self.dense(["quantization_config": empty])) == nil)
        let int4: JSONValue = ["class_name": "Int4DTypePolicy", "config": ["mode": "int4/-1", "source_name": "float32"]]
        let int4Config: JSONValue = ["class_name": "Int4QuantizationConfig", "config": ["weight_quantizer": nil]]
        #expect(Self.quantization(try Self.dense(["dtype": int4, "quantization_config": int4Config])) == KerasQuantization(mode: .int4(blockSize: nil), inputs: nil))
        #expect(throws: ModelError.self) {
            try Self.dense(["dtype": Self.int8Policy, "quantization_config": ["class_name": "Int8QuantizationConfig", "config": [
                "activation_quantizer": ["class_name": "AbsMaxQuantizer", "config": ["epsilon": 0]]]]])
        }
    }

    @Test("int8 with Keras' input quantizer: exact integer sums, de-scaled by s_x·s; a row with a NaN or an infinity is NaN, the others unchanged")
    func arithmetic() throws {
        let model = try Self.dense(["dtype": Self.int8Policy])
        let x: [Float] = [0.5, -1, .nan, 1, .infinity, 2, 0, 0]
        let y = try Executor(model: model).predict([Tensor(shape: [4, 2], data: x)])[0].data
        // Row 0: s_x = 127 / (1 + 1e-7) → q = round(63.5 − ε) = 63, −127.
        let scale = Float(127) / (Float(1) + Float(1e-7))
        let q = [(Float(0.5) * scale).rounded(.toNearestOrEven), (Float(-1) * scale).rounded(.toNearestOrEven)]
        let codes: [[Float]] = [[1, -2, 127], [-128, 5, 0]]
        let scales: [Float] = [2, 4, 0.5]
        let bias: [Float] = [0.25, 0, -1]
        for n in 0..<3 {
            let sum = q[0] * codes[0][n] + q[1] * codes[1][n]
            #expect(y[n] == sum / (scale * scales[n]) + bias[n], "unit \(n)")
        }
        #expect(y[3..<9].allSatisfy { $0.isNaN })
        // Row 3 is zero: it quantizes to 0, its output is the bias.
        #expect(Array(y[9..<12]) == bias)
    }
}
