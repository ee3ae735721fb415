import Foundation
import LAQData
import LAQEngine
import LAQFormat
import LAQImport
import LAQTestSupport
import Testing

/// Every trainable layer's gradients against central finite differences of the loss.
@Suite struct GradientTests {
    /// A Sequential model from layer configs, with seeded random weights of the shapes the configs imply.
    static func model(input: [Int?], layers: [(String, JSONValue)], seed: UInt64 = 1) throws -> Model {
        var entries: [JSONValue] = [["class_name": "InputLayer", "config": ["name": "in", "batch_shape": .array(input.map { $0.map { .int(Int64($0)) } ?? .null })]]]
        for (index, (className, config)) in layers.enumerated() {
            guard case var .object(members) = config else { continue }
            members["name"] = .string("l\(index)")
            entries.append(["class_name": .string(className), "config": .object(members)])
        }
        return try model(architecture: ["class_name": "Sequential", "config": ["name": "t", "layers": .array(entries)]], seed: seed)
    }

    /// A Functional model of `(class, config, inputs)` layers after one input of shape `input`
    /// named "in"; each layer is named by its index (`l0`, `l1`, …), the last is the output.
    /// An input written `#v` is the constant v, as Keras 3 writes an operator's (`x + 3.0`):
    /// such a layer is one of `keras.src.ops.numpy`, its call in Keras 3's form.
    static func functional(input: [Int?], _ layers: [(String, JSONValue, [String])], outputs: [String] = []) throws -> Model {
        var entries: [JSONValue] = [["class_name": "InputLayer", "name": "in", "inbound_nodes": [],
                                     "config": ["name": "in", "batch_shape": .array(input.map { $0.map { .int(Int64($0)) } ?? .null })]]]
        for (index, (className, config, inputs)) in layers.enumerated() {
            guard case var .object(members) = config else { continue }
            members["name"] = .string("l\(index)")
            if inputs.contains(where: { $0.hasPrefix("#") }) {
                let args: [JSONValue] = inputs.map { input in
                    if input.hasPrefix("#") { return .double(Double(input.dropFirst())!) }
                    return ["class_name": "__keras_tensor__", "config": ["keras_history": [.string(input), 0, 0]]]
                }
                entries.append(["module": "keras.src.ops.numpy", "class_name": .string(className), "name": .string("l\(index)"),
                                "config": ["name": .string("l\(index)")], "inbound_nodes": [["args": .array(args), "kwargs": [:]]]])
                continue
            }
            entries.append(["class_name": .string(className), "name": .string("l\(index)"), "config": .object(members),
                            "inbound_nodes": [.array(inputs.map { [.string($0), 0, 0, [:]] })]])
        }
        return try model(architecture: ["class_name": "Functional", "config": [
            "name": "t", "layers": .array(entries), "input_layers": [["in", 0, 0]],
            "output_layers": .array((outputs.isEmpty ? ["l\(layers.count - 1)"] : outputs).map { [.string($0), 0, 0] }),
        ]])
    }

    /// The model of an architecture, with seeded random weights of the shapes its configs imply.
    static func model(architecture: JSONValue, seed: UInt64 = 1) throws -> Model {
        let graph = try KerasArchitecture.parse(architecture)
        var model = Model(name: "t", layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, architecture: architecture)
        let shapes = try model.outputShapes()
        var random = TrainingRandom(seed: seed)
        for layer in graph.layers {
            let inputShapes = layer.inbound.first.map { $0.compactMap { shapes[$0.layer] } } ?? []
            let expected = layer.kind.weightShapes(inputShapes)
            for (index, short) in layer.weightNames.enumerated() {
                let shape = expected[short]!
                let count = shape.reduce(1, *)
                var values = (0..<count).map { _ in random.uniform() - 0.5 }
                if short == "moving_variance" || short == "gamma" { values = values.map { 1 + $0 * 0.5 } }
                model.weights.append(Weight(layer: layer.name, shortName: short, shape: shape, values: values, trainable: layer.kind.weights[index].trainable))
            }
        }
        try model.validate()
        return model
    }

    /// `tensor` with its samples (first axis) in reverse order.
    static func reversedRows(_ tensor: Tensor) -> Tensor {
        let samples = tensor.shape.first ?? 0
        let per = samples == 0 ? 0 : tensor.count / samples
        return Tensor(shape: tensor.shape, data: (0..<samples).reversed().flatMap { tensor.data[($0 * per)..<(($0 + 1) * per)] })
    }

    static func loss(_ model: Model, _ x: [Tensor], _ y: [Float]) throws -> Double {
        var random = TrainingRandom(seed: 9)
        return try Backpropagation.run(model: model, inputs: x, labels: y, loss: .meanSquaredError, random: &random).loss
    }

    /// Compares analytic and numeric gradients for a sample of coordinates of every trainable weight.
    static func check(_ model: Model, inputShape: [Int], step: Float = 1e-2, tolerance: Double = 2e-2) throws {
        var random = TrainingRandom(seed: 3)
        let x = Tensor(shape: inputShape, data: (0..<inputShape.reduce(1, *)).map { _ in random.uniform() * 2 - 1 })
        try check(model, inputs: [x], step: step, tolerance: tolerance)
    }

    /// The same, on given inputs (one tensor per model input).
    static func check(_ model: Model, inputs x: [Tensor], step: Float = 1e-2, tolerance: Double = 2e-2) throws {
        var random = TrainingRandom(seed: 4)
        let outputCount = try Executor(model: model).predict(x)[0].count
        let y = (0..<outputCount).map { _ in random.uniform() - 0.5 }
        // The analytic gradients come from a workspace whose buffers hold other values (two
        // earlier steps on the batch in reverse order, other labels, other dropout masks):
        // reused memory must not leak into a step.
        let workspace = Workspace()
        for scale: Float in [3, -2] {
            var other = TrainingRandom(seed: 10)
            _ = try Backpropagation.run(model: model, inputs: x.map(Self.reversedRows), labels: y.map { $0 * scale }, loss: .meanSquaredError,
                                        random: &other, workspace: workspace)
        }
        var again = TrainingRandom(seed: 9)
        let analytic = try Backpropagation.run(model: model, inputs: x, labels: y, loss: .meanSquaredError, random: &again, workspace: workspace)
        for (index, weight) in model.weights.enumerated() where weight.trainable {
            let gradient = try #require(analytic.gradients[weight.name], "no gradient for \(weight.name)")
            for coordinate in Set((0..<8).map { _ in Int(random.next() % UInt64(weight.values.count)) }) {
                var plus = model
                plus.weights[index].values[coordinate] += step
                var minus = model
                minus.weights[index].values[coordinate] -= step
                let numeric = (try loss(plus, x, y) - loss(minus, x, y)) / Double(2 * step)
                let difference = abs(numeric - Double(gradient[coordinate]))
                #expect(difference <= tolerance * max(abs(numeric), 1e-2), "\(weight.name)[\(coordinate)]: analytic \(gradient[coordinate]), numeric \(numeric)")
            }
        }
    }

    @Test("shared layers: a weight used by several calls gets the sum of their gradients (k3_shared: siamese Dense, a Dense on its own output, a shared LSTM)")
    func sharedLayers() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_shared.h5").path).model
        #expect(model.layers.filter { $0.inbound.count > 1 }.map(\.name) == ["enc", "square", "seq", "lstm"])
        let io = try Numpy.load(path: TestPaths.testdata("keras/k3_shared.io.npz").path)
        let inputs = KerasParityTests.inputs(io).map { $0.rows(0..<4) }
        try Self.check(model, inputs: inputs, step: 5e-3)
    }

    @Test("Dense (2-D and 3-D input) with smooth activations")
    func dense() throws {
        try Self.check(try Self.model(input: [nil, 5], layers: [("Dense", ["units": 4, "activation": "tanh"]), ("Dense", ["units": 3, "activation": "softmax"])]), inputShape: [3, 5])
        try Self.check(try Self.model(input: [nil, 2, 5], layers: [("Dense", ["units": 4, "activation": "sigmoid"]), ("Dense", ["units": 2, "activation": "gelu"])]), inputShape: [3, 2, 5])
        try Self.check(try Self.model(input: [nil, 5], layers: [("Dense", ["units": 4, "activation": "gelu_approximate"])]), inputShape: [3, 5])
        try Self.check(try Self.model(input: [nil, 6], layers: [
            ("Dense", ["units": 5, "activation": "hard_swish"]), ("Dense", ["units": 5, "activation": "mish"]),
            ("Dense", ["units": 4, "activation": "leaky_relu"]), ("Dense", ["units": 4, "activation": "relu6"]),
            ("Normalization", ["axis": -1, "mean": [0.5, -1, 0, 2], "variance": [4, 0.25, 1, 9]]),
            ("Normalization", ["axis": [-1], "mean": 0.5, "variance": 2, "invert": true]),
            ("Dense", ["units": 2, "activation": "hard_silu"]),
        ]), inputShape: [3, 6])
    }

    @Test("Conv1D, Conv2D, depthwise and separable: strides, dilation, same and valid padding")
    func convolutions() throws {
        try Self.check(try Self.model(input: [nil, 9, 3], layers: [
            ("Conv1D", ["filters": 4, "kernel_size": 3, "dilation_rate": 2, "activation": "tanh"]),
            ("Conv1D", ["filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "activation": "swish"]),
        ]), inputShape: [2, 9, 3])
        try Self.check(try Self.model(input: [nil, 7, 6, 2], layers: [
            ("Conv2D", ["filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "elu"]),
            ("DepthwiseConv2D", ["kernel_size": 2, "depth_multiplier": 2, "activation": "softplus"]),
            ("SeparableConv2D", ["filters": 3, "kernel_size": 2, "depth_multiplier": 2, "padding": "same", "activation": "tanh"]),
            ("Flatten", [:]),
            ("Dense", ["units": 2]),
        ]), inputShape: [2, 7, 6, 2])
    }

    @Test("pooling, normalization in training mode, reshape, permute")
    func structure() throws {
        try Self.check(try Self.model(input: [nil, 6, 6, 3], layers: [
            ("AveragePooling2D", ["pool_size": 2, "strides": 1, "padding": "same"]),
            ("BatchNormalization", ["epsilon": 0.001, "momentum": 0.9]),
            ("MaxPooling2D", ["pool_size": 2]),
            ("Permute", ["dims": [2, 1, 3]]),
            ("Reshape", ["target_shape": [9, 3]]),
            ("LayerNormalization", ["epsilon": 0.001]),
            ("GlobalAveragePooling1D", [:]),
            ("Dense", ["units": 2, "activation": "selu"]),
        ]), inputShape: [4, 6, 6, 3])
    }

    @Test("merges of inputs that broadcast: squeeze-and-excitation's Multiply, Add, Subtract, Average, Maximum, Minimum")
    func broadcastingMerges() throws {
        try Self.check(try Self.functional(input: [nil, 4, 3, 2], [
            ("Conv2D", ["filters": 3, "kernel_size": 1, "activation": "tanh"], ["in"]),                     // l0 (n, 4, 3, 3)
            ("GlobalAveragePooling2D", ["keepdims": true], ["l0"]),                                          // l1 (n, 1, 1, 3)
            ("Dense", ["units": 3, "activation": "sigmoid"], ["l1"]),                                        // l2
            ("Multiply", [:], ["l0", "l2"]),                                                                 // l3 (n, 4, 3, 3)
            ("Conv2D", ["filters": 3, "kernel_size": [1, 3], "activation": "tanh"], ["l3"]),                 // l4 (n, 4, 1, 3)
            ("Add", [:], ["l3", "l4", "l2"]),                                                                // l5
            ("Subtract", [:], ["l2", "l5"]),                                                                 // l6
            ("Maximum", [:], ["l6", "l4"]),                                                                  // l7
            ("Minimum", [:], ["l7", "l3"]),                                                                  // l8
            ("Average", [:], ["l8", "l2", "l0"]),                                                            // l9
            ("Flatten", [:], ["l9"]),
            ("Dense", ["units": 2], ["l10"]),
        ]), inputShape: [3, 4, 3, 2])
    }

    @Test("attention and masks (Keras' own graphs): MultiHeadAttention with padding masks, causal mask, attention_mask, sliding window, key ≠ value and dropout; EinsumDense; Masking into recurrent layers; masked pooling",
          arguments: ["k3_attention.h5", "tfk_attention.h5", "k3_masking.keras", "tfk_masking.h5"])
    func attentionAndMasks(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(KerasParityTests.ioName(fixture))").path)
        // A small step: LayerNormalization of embeddings near Keras' ±0.05 initialization is
        // strongly curved, and a step of 5e-3 already moves the difference quotient by 10 %.
        try Self.check(model, inputs: KerasParityTests.inputs(io).map { $0.rows(0..<6) }, step: 5e-4)
    }

    @Test("models Keras quantized (int8 weights only, int4 in groups): the frozen codes pass the input's gradient through the dequantized kernel; biases train",
          arguments: ["k3_int8_weights", "k3_int4"])
    func kerasQuantized(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture).keras").path).model
        #expect(model.weights.filter(\.trainable).map(\.name) == ["per_token/bias", "hidden/bias", "classifier/bias"])
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(fixture).io.npz").path)
        try Self.check(model, inputs: KerasParityTests.inputs(io).map { $0.rows(0..<6) }, step: 1e-3)
    }

    @Test("keras_hub backbones: position embeddings, encoder and causal decoder blocks with padding masks, GELU's tanh form, BERT's first-token pooling (GetItem)",
          arguments: ["hub_bert.keras", "hub_distil_bert.keras", "hub_gpt2.keras", "hub_layers.keras"])
    func hubBackbones(fixture: String) throws {
        var (base, model) = try KerasParityTests.hubModel(fixture)
        // BERT's loss on its pooled output, through x[:, 0, :].
        model.outputs = [model.outputs[0]]
        let io = try Numpy.load(path: TestPaths.testdata("keras/\(base).io.npz").path)
        let inputs = try io["x"].map { [Tensor(shape: $0.shape, data: $0.values)] } ?? KerasParityTests.namedInputs(io, for: model)
        try Self.check(model, inputs: inputs, step: 5e-4)
    }

    @Test("keras.applications' own layers and operators: grouped convolution (one group per channel), LayerScale, CustomScaleLayer, x + c, c − x, x·c, x/c, c/x")
    func applicationLayers() throws {
        try Self.check(try Self.functional(input: [nil, 5, 4, 3], [
            ("Conv2D", ["filters": 6, "kernel_size": 3, "groups": 3, "padding": "same", "activation": "tanh"], ["in"]),  // l0
            ("LayerScale", ["projection_dim": 6, "init_values": 0.5], ["l0"]),                                            // l1
            ("Add", [:], ["l1", "#3.0"]),                                                                                // l2
            ("Subtract", [:], ["#0.5", "l2"]),                                                                           // l3
            ("Multiply", [:], ["l3", "#0.25"]),                                                                          // l4
            ("Divide", [:], ["l4", "#1.5"]),                                                                             // l5
            ("Conv2D", ["filters": 6, "kernel_size": 1, "activation": "sigmoid"], ["l5"]),                              // l6
            ("TrueDivide", [:], ["#1.0", "l6"]),                                                                         // l7
            ("CustomScaleLayer", ["scale": 0.17], ["l7", "l1"]),                                                          // l8
            ("Flatten", [:], ["l8"]),
            ("Dense", ["units": 2], ["l9"]),
        ]), inputShape: [2, 5, 4, 3])
    }

    @Test("zero padding and cropping, 1-D and 2-D, in every form of their margins; rescaling per channel")
    func paddingAndCropping() throws {
        try Self.check(try Self.model(input: [nil, 5, 4, 2], layers: [
            ("ZeroPadding2D", ["padding": [[1, 2], [0, 3]]]),
            ("Conv2D", ["filters": 2, "kernel_size": 3, "activation": "tanh"]),
            ("Rescaling", ["scale": [0.5, -2.0], "offset": 0.25]),
            ("Cropping2D", ["cropping": [[1, 0], [2, 1]]]),
            ("ZeroPadding2D", ["padding": 1]),
            ("Cropping2D", ["cropping": [2, 1]]),
            ("Flatten", [:]),
            ("Dense", ["units": 2]),
        ]), inputShape: [2, 5, 4, 2])
        try Self.check(try Self.model(input: [nil, 6, 3], layers: [
            ("ZeroPadding1D", ["padding": [2, 1]]),
            ("Conv1D", ["filters": 2, "kernel_size": 2, "activation": "swish"]),
            ("Cropping1D", ["cropping": [1, 2]]),
            ("Flatten", [:]),
            ("Dense", ["units": 2]),
        ]), inputShape: [2, 6, 3])
    }

    @Test("recurrent layers through time: SimpleRNN, LSTM, GRU (both reset_after), Bidirectional, go_backwards")
    func recurrent() throws {
        try Self.check(try Self.model(input: [nil, 4, 3], layers: [
            ("SimpleRNN", ["units": 3, "return_sequences": true, "activation": "tanh"]),
            ("LSTM", ["units": 2, "return_sequences": true, "go_backwards": true]),
            ("GRU", ["units": 2, "reset_after": true]),
        ]), inputShape: [2, 4, 3])
        try Self.check(try Self.model(input: [nil, 3, 2], layers: [
            ("GRU", ["units": 3, "reset_after": false, "return_sequences": true]),
            ("Bidirectional", ["merge_mode": "concat", "layer": ["class_name": "LSTM", "config": ["name": "f", "units": 2, "return_sequences": true]]]),
            ("Bidirectional", ["merge_mode": "sum", "layer": ["class_name": "GRU", "config": ["name": "g", "units": 2]]]),
        ]), inputShape: [2, 3, 2])
    }

    @Test("the training forward of recurrent layers equals the inference forward")
    func recurrentForwardsAgree() throws {
        let model = try Self.model(input: [nil, 5, 3], layers: [
            ("LSTM", ["units": 4, "return_sequences": true]),
            ("GRU", ["units": 3, "reset_after": false, "return_sequences": true, "go_backwards": true]),
            ("Bidirectional", ["layer": ["class_name": "GRU", "config": ["name": "g", "units": 2, "return_sequences": true]]]),
            ("SimpleRNN", ["units": 2]),
        ])
        var random = TrainingRandom(seed: 5)
        let x = Tensor(shape: [3, 5, 3], data: (0..<45).map { _ in random.uniform() - 0.5 })
        let inference = try Executor(model: model).predict([x])[0]
        let training = try Backpropagation.run(model: model, inputs: [x], labels: [Float](repeating: 0, count: inference.count), loss: .meanSquaredError, random: &random).outputs
        for (a, b) in zip(inference.data, training.data) { #expect(abs(a - b) < 1e-5) }
    }

    @Test("Keras' moving statistics: m·momentum + batch·(1 − momentum), biased variance")
    func movingStatistics() throws {
        let model = try Self.model(input: [nil, 2], layers: [("BatchNormalization", ["momentum": 0.9])])
        var random = TrainingRandom(seed: 1)
        let x = Tensor(shape: [4, 2], data: [1, 2, 3, 4, 5, 6, 7, 8])
        let result = try Backpropagation.run(model: model, inputs: [x], labels: [Float](repeating: 0, count: 8), loss: .meanSquaredError, random: &random)
        let oldMean = model.weight(named: "l0/moving_mean")!.values
        let oldVariance = model.weight(named: "l0/moving_variance")!.values
        let mean = try #require(result.stateUpdates["l0/moving_mean"])
        let variance = try #require(result.stateUpdates["l0/moving_variance"])
        #expect(abs(mean[0] - (oldMean[0] * 0.9 + 4 * 0.1)) < 1e-5)  // batch mean of 1,3,5,7
        #expect(abs(variance[1] - (oldVariance[1] * 0.9 + 5 * 0.1)) < 1e-5)  // biased variance of 2,4,6,8
    }

    @Test("population statistics: batches of different sizes pooled into one population's mean and biased variance")
    func populationStatistics() throws {
        // Dense then BatchNormalization: the statistics are of the Dense outputs, in training mode.
        let model = try Self.model(input: [nil, 3], layers: [("Dense", ["units": 2, "activation": "tanh"]), ("BatchNormalization", ["momentum": 0.99])])
        var draw = SplitMix64(seed: 5)
        let batches = [5, 3, 4].map { rows in Tensor(shape: [rows, 3], data: (0..<(rows * 3)).map { _ in draw.uniform() * 4 - 2 }) }
        var random = TrainingRandom(seed: 1)
        let statistics = try Backpropagation.populationStatistics(model: model, batches: 3, inputs: { [batches[$0]] }, random: &random)
        #expect(Set(statistics.keys) == ["l1/moving_mean", "l1/moving_variance"])
        // The reference: the Dense outputs of all 12 rows at once.
        let all = Tensor(shape: [12, 3], data: batches.flatMap(\.data))
        let dense = try Self.model(input: [nil, 3], layers: [("Dense", ["units": 2, "activation": "tanh"])])
        let outputs = try Executor(model: dense).predict([all])[0].data
        for channel in 0..<2 {
            let column = stride(from: channel, to: outputs.count, by: 2).map { Double(outputs[$0]) }
            let mean = column.reduce(0, +) / 12
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12
            #expect(abs(Double(statistics["l1/moving_mean"]![channel]) - mean) < 1e-6)
            #expect(abs(Double(statistics["l1/moving_variance"]![channel]) - variance) < 1e-6)
        }
        // 12 values per channel are fewer than a minimum of 13: the layer is left out.
        var again = TrainingRandom(seed: 1)
        #expect(try Backpropagation.populationStatistics(model: model, batches: 3, inputs: { [batches[$0]] }, random: &again, minimumCount: 13).isEmpty)
        #expect(try Backpropagation.populationStatistics(model: model, batches: 3, inputs: { [batches[$0]] }, random: &again, minimumCount: 12).count == 2)
        // Without normalization layers there is nothing to estimate, after one pass.
        var passes = 0
        let none = try Backpropagation.populationStatistics(model: dense, batches: 3, inputs: { passes += 1; return [batches[$0]] }, random: &random)
        #expect(none.isEmpty && passes == 1)
    }

    @Test("cross-entropy gradients against finite differences of the loss itself",
          arguments: [Loss.sparseCategoricalCrossentropy(fromLogits: false), .sparseCategoricalCrossentropy(fromLogits: true),
                      .categoricalCrossentropy(fromLogits: false), .binaryCrossentropy(fromLogits: false), .binaryCrossentropy(fromLogits: true), .squaredHinge])
    func lossGradients(loss: Loss) {
        let outputs: [Float] = [0.2, 0.5, 0.3, 0.6, 0.1, 0.3]
        let labels: [Float]
        switch loss {
        case .sparseCategoricalCrossentropy: labels = [1, 0]
        case .squaredHinge: labels = [1, -1, 1, -1, 1, -1]
        default: labels = [0, 1, 0, 1, 0, 0]
        }
        let analytic = loss.gradient(outputs: outputs, labels: labels, width: 3)
        for i in outputs.indices {
            var plus = outputs
            plus[i] += 1e-3
            var minus = outputs
            minus[i] -= 1e-3
            let mean = { (values: [Float]) in Double(loss.perSample(outputs: values, labels: labels, width: 3).reduce(0, +)) / 2 }
            let numeric = (mean(plus) - mean(minus)) / 2e-3
            #expect(abs(numeric - Double(analytic[i])) < 2e-2 * max(1, abs(numeric)), "\(loss) [\(i)]: \(analytic[i]) vs \(numeric)")
        }
    }
}
