import Foundation
import LAQEngine
import LAQFormat
import Testing

/// Shared layers (one layer called more than once): each call is a node of the graph, ordered
/// by its inputs rather than by the config's list, and bad connections are refused by name.
@Suite struct SharedLayerTests {
    /// A tf.keras-style Functional config: `layers` as (class, name, config, inbound nodes).
    static func architecture(_ layers: [(String, String, JSONValue, [[[JSONValue]]])], inputs: [String], output: JSONValue) -> JSONValue {
        let entries: [JSONValue] = layers.map { className, name, config, nodes in
            guard case var .object(members) = config else { return .null }
            members["name"] = .string(name)
            let inbound: JSONValue = .array(nodes.map { node in .array(node.map { .array($0 + [[:]]) }) })
            return ["class_name": .string(className), "name": .string(name), "config": .object(members), "inbound_nodes": inbound]
        }
        return ["class_name": "Functional", "config": [
            "name": "m", "layers": .array(entries),
            "input_layers": .array(inputs.map { [.string($0), 0, 0] }), "output_layers": [output],
        ]]
    }

    static func input(_ name: String, width: Int64) -> (String, String, JSONValue, [[[JSONValue]]]) {
        ("InputLayer", name, ["batch_shape": [nil, .int(width)]], [])
    }

    static func dense(_ name: String, units: Int64, calls: [[[JSONValue]]]) -> (String, String, JSONValue, [[[JSONValue]]]) {
        ("Dense", name, ["units": .int(units), "activation": "linear", "use_bias": true], calls)
    }

    static func model(_ architecture: JSONValue, seed: Float = 0.1) throws -> Model {
        let graph = try KerasArchitecture.parse(architecture)
        var model = Model(name: "m", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, architecture: architecture)
        let shapes = try model.callShapes()
        for layer in graph.layers {
            let expected = model.inputShapes(of: layer, in: shapes).first.map(layer.kind.weightShapes) ?? [:]
            for short in layer.weightNames {
                let shape = expected[short]!
                let values = (0..<shape.reduce(1, *)).map { Float($0 % 7) * seed - 0.3 }
                model.weights.append(Weight(layer: layer.name, shortName: short, shape: shape, values: values, trainable: true))
            }
        }
        return model
    }

    @Test("a Dense applied to its own output, listed before the input its second call consumes: calls run in dependency order")
    func ownOutputAndOrder() throws {
        // d is listed first; its call 1 consumes b, listed after it; the output is d's call 2.
        let architecture = Self.architecture([
            Self.input("a", width: 3),
            Self.dense("d", units: 3, calls: [[["a", 0, 0]], [["d", 0, 0]], [["sum", 0, 0]]]),
            Self.input("b", width: 3),
            ("Add", "sum", [:], [[["d", 1, 0], ["b", 0, 0]]]),
        ], inputs: ["a", "b"], output: ["d", 2, 0])
        let model = try Self.model(architecture)
        try model.validate()
        #expect(try model.calls().map { "\(model.layers[$0.layer].name)#\($0.node)" } == ["a#0", "d#0", "d#1", "b#0", "sum#0", "d#2"])
        let a: [Float] = [0.5, -1, 2], b: [Float] = [1, 0.25, -0.5]
        let kernel = try #require(model.weight(named: "d/kernel")).values, bias = try #require(model.weight(named: "d/bias")).values
        func dense(_ x: [Float]) -> [Float] {
            (0..<3).map { n in (0..<3).reduce(bias[n]) { $0 + x[$1] * kernel[$1 * 3 + n] } }
        }
        let expected = dense(zip(dense(dense(a)), b).map(+))
        let output = try Executor(model: model).predict([Tensor(shape: [1, 3], data: a), Tensor(shape: [1, 3], data: b)])[0]
        #expect(zip(output.data, expected).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(output.data) vs \(expected)")
        let activations = try Executor(model: model).activations([Tensor(shape: [1, 3], data: a), Tensor(shape: [1, 3], data: b)])
        #expect(Set(activations.keys) == ["a", "b", "d", "d[1][0]", "d[2][0]", "sum"])
    }

    @Test("connections that form a cycle are refused, naming a layer on it")
    func cycle() throws {
        let architecture = Self.architecture([
            Self.input("a", width: 2),
            Self.dense("x", units: 2, calls: [[["y", 0, 0]]]),
            Self.dense("y", units: 2, calls: [[["x", 0, 0]]]),
        ], inputs: ["a"], output: ["y", 0, 0])
        #expect { try KerasArchitecture.parse(architecture) } throws: { error in
            (error as? ModelError)?.description.contains("the connections of 'x' form a cycle") == true
        }
    }

    @Test("a call that does not exist, or a layer's second output, is refused by name")
    func badReferences() throws {
        let missingNode = Self.architecture([
            Self.input("a", width: 2),
            Self.dense("d", units: 2, calls: [[["a", 0, 0]]]),
            Self.dense("e", units: 2, calls: [[["d", 1, 0]]]),
        ], inputs: ["a"], output: ["e", 0, 0])
        #expect { try KerasArchitecture.parse(missingNode) } throws: { error in
            (error as? ModelError)?.description == "layer 'e' consumes 'd[1][0]', which no layer produces"
        }
        let secondOutput = Self.architecture([
            Self.input("a", width: 2),
            Self.dense("d", units: 2, calls: [[["a", 0, 0]]]),
            Self.dense("e", units: 2, calls: [[["d", 0, 1]]]),
        ], inputs: ["a"], output: ["e", 0, 0])
        #expect { try KerasArchitecture.parse(secondOutput) } throws: { error in
            (error as? ModelError)?.description.contains("output 1 of a layer") == true
        }
        let missingOutput = Self.architecture([
            Self.input("a", width: 2),
            Self.dense("d", units: 2, calls: [[["a", 0, 0]]]),
        ], inputs: ["a"], output: ["d", 3, 0])
        #expect(throws: ModelError.self) { try KerasArchitecture.parse(missingOutput) }
    }

    @Test("a shared layer called on inputs that imply other weight shapes is refused, naming the call")
    func mismatchedCalls() throws {
        let architecture = Self.architecture([
            Self.input("a", width: 3),
            Self.input("b", width: 4),
            Self.dense("d", units: 2, calls: [[["a", 0, 0]], [["b", 0, 0]]]),
            ("Concatenate", "cat", [:], [[["d", 0, 0], ["d", 1, 0]]]),
        ], inputs: ["a", "b"], output: ["cat", 0, 0])
        let model = try Self.model(architecture)
        #expect { try model.validate() } throws: { error in
            (error as? ModelError)?.description.contains("call 1 takes inputs of shape (None, 4), which imply weight 'kernel' of shape [4, 2], the first call [3, 2]") == true
        }
    }
}
