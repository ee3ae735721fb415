import CLAQKernels
import Foundation
import LAQData
import LAQExamples
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing
@testable import LAQEngine

/// Inference fusion (``Fusion``): which layers fuse, and that fused predictions are bit for bit
/// those of the layers run one by one.
struct FusionTests {
    /// The fused ops by layer: "epilogue" for a product that absorbed what follows it (an
    /// ``EpilogueOp``, or a (depthwise) convolution that applies a normalization itself), "pass" for an
    /// absorbed layer, "padded" for a convolution that does a ZeroPadding2D's work.
    static func plan(_ executor: Executor) -> [String: String] {
        executor.fused.mapValues { op in
            absorbs(op) ? "epilogue" : op is PassOp ? "pass" : op is ConvolutionOp || op is DepthwiseOp ? "padded" : "other"
        }
    }

    static func absorbs(_ op: any Op) -> Bool {
        op is EpilogueOp || (op as? ConvolutionOp)?.normalization != nil || (op as? DepthwiseOp)?.normalization != nil
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
        // The depthwise convolution's reader is a Rescaling and the other products have activations
        // of their own. Two ZeroPadding2D layers are done by the convolutions that read them (the
        // third is read by a Cropping2D).
        #expect(Self.plan(executor) == ["conv": "epilogue", "bn": "pass", "relu6": "pass", "pad_pairs": "pass", "pad_one": "pass", "depthwise": "padded"])
        // The convolution applies the normalization and the ReLU6 itself.
        let conv = try #require(executor.fused["conv"] as? ConvolutionOp)
        #expect(conv.normalization?.scale.count == conv.filters)
        #expect(conv.padding == FoldedPadding(rows: .init(before: 0, after: 1), columns: .init(before: 2, after: 1)))
        #expect((executor.fused["depthwise"] as? DepthwiseOp)?.padding == FoldedPadding(rows: .init(before: 1, after: 1), columns: .init(before: 1, after: 1)))
        #expect(executor.fusedInto["pad_pairs"] == "conv" && executor.fusedInto["pad_one"] == "depthwise")
        let io = try Numpy.load(path: TestPaths.testdata("keras/k3_coverage.io.npz").path)
        try Self.checkSameBits(executor, KerasParityTests.inputs(io), "k3_coverage")
    }

    @Test("MobileNet blocks: a convolution on panels and a depthwise convolution each apply their BatchNormalization and ReLU(6) as they store, with the same bits")
    func mobileNetBlocks() throws {
        func relu(_ name: String, _ maxValue: Double?) -> JSONValue {
            ["class_name": "ReLU", "config": ["name": .string(name), "max_value": maxValue.map { .double($0) } ?? .null]]
        }
        func normalization(_ name: String) -> JSONValue { ["class_name": "BatchNormalization", "config": ["name": .string(name), "epsilon": 0.001]] }
        let config: JSONValue = ["class_name": "Sequential", "config": ["name": "m", "layers": [
            ["class_name": "InputLayer", "config": ["name": "x", "batch_shape": [nil, 11, 10, 3]]],
            ["class_name": "Conv2D", "config": ["name": "conv", "filters": 64, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "use_bias": false]],
            normalization("bn"), relu("relu6", 6),
            ["class_name": "DepthwiseConv2D", "config": ["name": "depthwise", "kernel_size": [3, 3], "padding": "same", "use_bias": true, "depth_multiplier": 1]],
            normalization("bn_depthwise"), relu("relu", nil),
            ["class_name": "Conv2D", "config": ["name": "project", "filters": 32, "kernel_size": [1, 1], "use_bias": true]],
            normalization("bn_project"),
            // Two kernels per channel: the depthwise kernel's scalar loop, then the epilogue.
            ["class_name": "DepthwiseConv2D", "config": ["name": "multiplied", "kernel_size": [3, 3], "padding": "same", "use_bias": false, "depth_multiplier": 2]],
            normalization("bn_multiplied"), relu("relu_multiplied", 6),
        ]]]
        let model = try GradientTests.model(architecture: config, seed: 3)
        let executor = try Executor(model: model)
        #expect(Self.plan(executor) == ["conv": "epilogue", "bn": "pass", "relu6": "pass", "depthwise": "epilogue", "bn_depthwise": "pass",
                                        "relu": "pass", "project": "epilogue", "bn_project": "pass", "multiplied": "epilogue",
                                        "bn_multiplied": "pass", "relu_multiplied": "pass"])
        if CPU.isa >= Int32(LAQ_ISA_AVX512) {
            // 64 and 32 filters: the panels, read in place.
            for name in ["conv", "project"] {
                guard case .panels = try #require(executor.fused[name] as? ConvolutionOp).kernelMatrix else {
                    Issue.record("\(name) multiplies without panels")
                    continue
                }
            }
        }
        var random = SplitMix64(seed: 8)
        let x = Tensor(shape: [3, 11, 10, 3], data: (0..<(3 * 11 * 10 * 3)).map { _ in random.uniform() * 4 - 2 })
        try Self.checkSameBits(executor, [x], "MobileNet blocks")
    }

    @Test("Residual connections: a convolution adds the Add's other input and applies the ReLU after it as it stores, in either order of the Add's inputs, with the same bits on 1, 2 and 3 threads")
    func residualBlocks() throws {
        func conv(_ filters: Int, _ kernel: Int, bias: Bool = false) -> JSONValue {
            ["filters": .int(Int64(filters)), "kernel_size": [.int(Int64(kernel)), .int(Int64(kernel))], "padding": "same", "use_bias": .bool(bias)]
        }
        let normalization: JSONValue = ["epsilon": 0.001]
        let model = try GradientTests.functional(input: [nil, 9, 10, 16], [
            ("Conv2D", conv(32, 1), ["in"]),                       // l0: the shortcut
            ("Conv2D", conv(32, 3), ["in"]), ("BatchNormalization", normalization, ["l1"]), ("Activation", ["activation": "relu"], ["l2"]),
            ("Conv2D", conv(32, 1), ["l3"]), ("BatchNormalization", normalization, ["l4"]),
            ("Add", [:], ["l0", "l5"]), ("Activation", ["activation": "relu"], ["l6"]),          // l6: shortcut + branch, l7 ReLU
            ("Conv2D", conv(32, 1, bias: true), ["l7"]), ("Add", [:], ["l8", "l7"]), ("ReLU", ["max_value": 6.0], ["l9"]),  // l9: branch + block input
            ("Conv2D", conv(40, 1), ["l10"]), ("Conv2D", conv(40, 3), ["l10"]), ("BatchNormalization", normalization, ["l12"]),
            ("Add", [:], ["l13", "l11"]), ("Activation", ["activation": "swish"], ["l14"]),       // 40 columns; a swish stays unfused
            ("GlobalAveragePooling2D", ["keepdims": true], ["l10"]), ("Conv2D", conv(32, 1), ["l10"]),
            ("Add", [:], ["l17", "l16"]),                                                          // a broadcast Add: after the convolution
            ("Conv2D", conv(40, 1), ["l18"]), ("Add", [:], ["l19", "l15"]),
            // ResNet's first block of a stage: the shortcut's normalization comes after the
            // branch's convolution, so the shortcut's block runs just before the Add.
            ("Conv2D", conv(32, 1), ["l20"]), ("Conv2D", conv(32, 3), ["l20"]), ("BatchNormalization", normalization, ["l21"]),
            ("BatchNormalization", normalization, ["l22"]), ("Add", [:], ["l23", "l24"]), ("Activation", ["activation": "relu"], ["l25"]),
        ])
        let executor = try Executor(model: model)
        let residual = { (name: String) in (executor.fused[name] as? ConvolutionOp)?.residual }
        #expect(residual("l4")?.first == true && residual("l4")?.activation != nil)
        #expect(residual("l8")?.first == false && residual("l8")?.relu.parameters.ceiling == 6)
        #expect(residual("l12")?.first == false && residual("l12")?.activation == nil)
        #expect(residual("l17") != nil && residual("l19") != nil)
        #expect(residual("l21")?.first == false && residual("l22") == nil)
        #expect(executor.fusedInto == ["l2": "l1", "l3": "l1", "l5": "l4", "l6": "l4", "l7": "l4", "l9": "l8", "l10": "l8", "l13": "l12", "l14": "l12",
                                       "l18": "l17", "l20": "l19", "l23": "l21", "l25": "l21", "l26": "l21", "l24": "l22"])
        let order = executor.plan.steps.map { executor.model.layers[$0.layer].name }
        #expect(order.suffix(6) == ["l22", "l24", "l21", "l23", "l25", "l26"])
        // An absorbed Add reads the block's output alone and passes it on.
        #expect((executor.fused["l6"] as? PassOp)?.input == 0 && (executor.fused["l9"] as? PassOp)?.input == 0)
        let steps = Dictionary(uniqueKeysWithValues: executor.plan.steps.map { (executor.model.layers[$0.layer].name, $0) })
        #expect(steps["l6"]?.fusedInputs.map { $0.map { executor.plan.refs[$0].description } } == ["l5"])
        // The fused convolutions write over the other input where they are its last reader: not
        // l8, whose other input is its own input too.
        #expect(["l4", "l12", "l17", "l19", "l21"].allSatisfy { steps[$0]?.overwrites == 1 })
        #expect(steps["l8"]?.overwrites == nil && steps["l1"]?.overwrites == nil)
        defer { Parallel.configure(threads: nil) }
        var random = SplitMix64(seed: 21)
        let x = Tensor(shape: [2, 9, 10, 16], data: (0..<(2 * 9 * 10 * 16)).map { _ in random.uniform() * 4 - 2 })
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads, environment: [:])
            try Self.checkSameBits(executor, [x], "residual blocks, \(threads) threads")
        }
    }

    @Test("A fused residual connection writes its output over the other tensor's values, in place when it holds them alone, with the bits of a new buffer; never over a tensor read later or a model output")
    func residualOverwrites() throws {
        let normalization: JSONValue = ["epsilon": 0.001]
        let conv: JSONValue = ["filters": 24, "kernel_size": [3, 3], "padding": "same", "use_bias": false]
        let model = try GradientTests.functional(input: [nil, 7, 9, 24], [
            ("Conv2D", ["filters": 24, "kernel_size": [1, 1]], ["in"]),                                 // l0: read by l3 and l5
            ("Conv2D", conv, ["in"]), ("BatchNormalization", normalization, ["l1"]), ("Add", [:], ["l2", "l0"]),
            ("Conv2D", conv, ["l3"]), ("Add", [:], ["l4", "l0"]),                                           // l0's last reader: l4
            ("Conv2D", conv, ["l5"]), ("Add", [:], ["l5", "l6"]),                                           // l5: a model output
        ], outputs: ["l7", "l5"])
        let executor = try Executor(model: model)
        let steps = Dictionary(uniqueKeysWithValues: executor.plan.steps.map { (executor.model.layers[$0.layer].name, $0) })
        #expect(steps["l1"]?.overwrites == nil && steps["l4"]?.overwrites == 1 && steps["l6"]?.overwrites == nil)
        var random = SplitMix64(seed: 41)
        let x = Tensor(shape: [2, 7, 9, 24], data: (0..<(2 * 7 * 9 * 24)).map { _ in random.uniform() * 4 - 2 })
        try Self.checkSameBits(executor, [x], "overwriting residuals")

        // The op: the output takes the other tensor's buffer when it holds it alone, else a copy;
        // the bits of the output in a new buffer either way.
        let op = try #require(executor.fused["l4"] as? ConvolutionOp)
        let input = Tensor(shape: [2, 7, 9, 24], data: (0..<(2 * 7 * 9 * 24)).map { _ in random.uniform() * 4 - 2 })
        let other = Tensor(shape: [2, 7, 9, 24], data: (0..<(2 * 7 * 9 * 24)).map { _ in random.uniform() * 4 - 2 })
        let expected = try op.forward([input, other], workspace: nil)
        let original = other.data.map(\.bitPattern)
        var shared = [input, other]
        let kept = try op.forward(overwriting: &shared)
        #expect(kept.data.map(\.bitPattern) == expected.data.map(\.bitPattern))
        #expect(other.data.map(\.bitPattern) == original, "the values the caller still holds are left as they were")
        var alone = [input, Tensor(shape: other.shape, data: other.data.map { $0 })]
        let address = alone[1].data.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        let inPlace = try op.forward(overwriting: &alone)
        #expect(inPlace.data.map(\.bitPattern) == expected.data.map(\.bitPattern))
        // (In place where the convolution runs on panels or by Winograd's transforms, AVX2 or
        // AVX-512; else the Add's op adds after the product.)
        let onPanels: Bool
        if case .panels = op.kernelMatrix { onPanels = true } else { onPanels = op.winograd != nil }
        if onPanels {
            #expect(inPlace.data.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } == address, "written over the values in place")
        }
    }

    @Test("Residual connections on every convolution path: im2col (a short inner dimension), Conv1D on panels, packed kernels with float32 and int8 activations, the same bits as the layers one by one")
    func residualPaths() throws {
        let normalization: JSONValue = ["epsilon": 0.001]
        // l1's 8 input channels and 32 filters take the short-inner kernel with AVX-512, so the
        // im2col path adds the shortcut (the Add's first input) after the product; with AVX2 the
        // panels' epilogue adds it.
        let image = try GradientTests.functional(input: [nil, 10, 12, 8], [
            ("Conv2D", ["filters": 32, "kernel_size": [1, 1], "use_bias": true], ["in"]),
            ("Conv2D", ["filters": 32, "kernel_size": [1, 1], "use_bias": false], ["in"]), ("BatchNormalization", normalization, ["l1"]),
            ("Add", [:], ["l0", "l2"]), ("Activation", ["activation": "relu"], ["l3"]),
            ("Conv2D", ["filters": 32, "kernel_size": [3, 3], "padding": "same", "use_bias": false], ["l4"]), ("BatchNormalization", normalization, ["l5"]),
            ("Add", [:], ["l4", "l6"]),
            ("Conv2D", ["filters": 20, "kernel_size": [3, 3], "strides": [2, 2], "use_bias": true], ["l7"]), ("BatchNormalization", normalization, ["l8"]),
            ("ReLU", ["max_value": 6.0], ["l9"]),
        ])
        let sequence = try GradientTests.functional(input: [nil, 20, 16], [
            ("Conv1D", ["filters": 16, "kernel_size": 3, "padding": "same", "use_bias": false], ["in"]), ("BatchNormalization", normalization, ["l0"]),
            ("Add", [:], ["in", "l1"]), ("ReLU", ["max_value": 6.0], ["l2"]),
        ])
        var random = SplitMix64(seed: 31)
        let x = Tensor(shape: [2, 10, 12, 8], data: (0..<(2 * 10 * 12 * 8)).map { _ in random.uniform() * 4 - 2 })
        let sequenceInput = Tensor(shape: [3, 20, 16], data: (0..<(3 * 20 * 16)).map { _ in random.uniform() * 4 - 2 })
        let executor = try Executor(model: image)
        #expect((executor.fused["l1"] as? ConvolutionOp)?.residual?.first == true && (executor.fused["l5"] as? ConvolutionOp)?.residual != nil)
        if CPU.isa >= Int32(LAQ_ISA_AVX512), case .panels = try #require(executor.fused["l1"] as? ConvolutionOp).kernelMatrix {
            Issue.record("l1 multiplies on panels")
        }
        try Self.checkSameBits(executor, [x], "residual on im2col")
        let sequenceExecutor = try Executor(model: sequence)
        #expect((sequenceExecutor.fused["l0"] as? ConvolutionOp)?.residual?.first == true)
        try Self.checkSameBits(sequenceExecutor, [sequenceInput], "Conv1D residual")
        // Packed: float32 activations (decoded panels) and int8 (im2col rows on the dot planes,
        // whose epilogue the int8 kernels apply): lat2a's one-hot planes, lata's ±α pairs and
        // 3-bit LAQ's codes.
        let methods: [(Method, Bool)] = [(.lat2a, false), (.lata, true), (.laq(bits: 3, levels: .linear, alpha: .exact), true)]
        for (method, perChannel) in methods {
            let results = try ModelQuantizer.quantize(image, settings: QuantizationSettings(method: method, perChannel: perChannel))
            let writer = try image.laqWriter(provenance: [], includeOptimizer: false,
                                             replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
            let packed = try Model(file: try LAQFile(bytes: try writer.encoded()), packed: true)
            for precision in [ActivationPrecision.float32, .int8] {
                let packedExecutor = try Executor(model: packed, activations: precision)
                let op = try #require(packedExecutor.fused["l5"] as? ConvolutionOp)
                #expect(op.residual != nil && (packedExecutor.fused["l8"] as? ConvolutionOp)?.normalization != nil)
                if case let .packed(matrix) = op.kernelMatrix {
                    #expect(matrix.planes?.int8Activations == (precision == .int8), "\(method): dot planes")
                } else {
                    Issue.record("\(method): l5 is not packed")
                }
                try Self.checkSameBits(packedExecutor, [x], "packed residual, \(method), \(precision)")
            }
        }
    }

    @Test("A ZeroPadding2D folds into a valid max pooling (ResNet's pool1_pad): the margins' zeros take part, with the same bits; not into a same one")
    func paddingFoldsIntoMaxPooling() throws {
        for same in [false, true] {
            let model = try GradientTests.functional(input: [nil, 9, 8, 5], [
                ("ZeroPadding2D", ["padding": [[1, 2], [1, 1]]], ["in"]),
                ("MaxPooling2D", ["pool_size": [3, 3], "strides": [2, 2], "padding": .string(same ? "same" : "valid")], ["l0"]),
            ])
            let executor = try Executor(model: model)
            #expect((executor.fusedInto["l0"] == "l1") == !same, "same \(same)")
            var random = SplitMix64(seed: 41)
            // Mostly negative values: the margins' zeros are often the maximum.
            let x = Tensor(shape: [2, 9, 8, 5], data: (0..<(2 * 9 * 8 * 5)).map { _ in random.uniform() * 3 - 2.5 })
            try Self.checkSameBits(executor, [x], "padded max pooling, same \(same)")
        }
    }

    @Test("A convolution on panels and a depthwise convolution over an input with no positions, padded by a folded ZeroPadding2D: the bias, normalized, everywhere")
    func emptyPaddedInput() throws {
        for depthwise in [false, true] {
            let product: JSONValue = depthwise
                ? ["class_name": "DepthwiseConv2D", "config": ["name": "c", "kernel_size": [3, 3], "padding": "valid", "use_bias": true, "depth_multiplier": 11]]
                : ["class_name": "Conv2D", "config": ["name": "c", "filters": 32, "kernel_size": [3, 3], "padding": "valid", "use_bias": true]]
            let config: JSONValue = ["class_name": "Sequential", "config": ["name": "m", "layers": [
                ["class_name": "InputLayer", "config": ["name": "x", "batch_shape": [nil, 0, 2, 3]]],
                ["class_name": "ZeroPadding2D", "config": ["name": "pad", "padding": [[2, 2], [1, 1]]]],
                product,
                ["class_name": "BatchNormalization", "config": ["name": "bn", "epsilon": 0.001]],
                ["class_name": "ReLU", "config": ["name": "relu", "max_value": 6.0]],
            ]]]
            let model = try GradientTests.model(architecture: config, seed: 2)
            let executor = try Executor(model: model)
            #expect(executor.fusedInto["pad"] == "c" && executor.fusedInto["bn"] == "c", "depthwise \(depthwise)")
            let x = Tensor(shape: [2, 0, 2, 3], data: [])
            let output = try executor.predict([x])[0]
            #expect(output.shape == [2, 2, 2, 32] || output.shape == [2, 2, 2, 33], "depthwise \(depthwise): \(output.shape)")
            let finite = output.data.allSatisfy { $0.isFinite }
            #expect(finite, "depthwise \(depthwise)")
            try Self.checkSameBits(executor, [x], "empty input, depthwise \(depthwise)")
        }
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
            for (name, op) in executor.fused where Self.absorbs(op) {
                let index = try #require(model.layers.firstIndex { $0.name == name })
                let ref = TensorRef(layer: name)
                #expect(!outputs.contains(ref), "\(fixture): \(name) is a model output")
                #expect(calls.filter { $0.layer == index }.count == 1, "\(fixture): \(name) is shared")
                #expect(calls.filter { model.inputs(of: $0).contains(ref) }.count == 1, "\(fixture): \(name) has several readers")
            }
        }
    }

    @Test("A ZeroPadding2D folds into every stride, dilation and margin of a convolution and a depthwise convolution with the same bits; not into a depthwise kernel with an infinite weight")
    func paddingFolds() throws {
        var random = SplitMix64(seed: 11)
        for (kernel, strides, dilation, margins, depthwise) in [
            ([3, 3], [2, 2], [1, 1], [[0, 1], [2, 1]], false), ([3, 3], [2, 2], [1, 1], [[0, 1], [0, 1]], true),
            ([1, 1], [1, 1], [1, 1], [[1, 1], [1, 1]], false), ([3, 2], [1, 1], [2, 1], [[3, 0], [1, 2]], true), ([3, 2], [1, 2], [1, 1], [[3, 0], [1, 2]], true),
            ([5, 5], [1, 1], [1, 1], [[2, 2], [2, 2]], true), ([2, 2], [3, 3], [1, 1], [[1, 2], [0, 0]], false),
        ] as [([Int], [Int], [Int], [[Int]], Bool)] {
            let convolution: JSONValue = depthwise
                ? ["class_name": "DepthwiseConv2D", "config": ["name": "c", "kernel_size": .array(kernel.map { .int(Int64($0)) }), "strides": .array(strides.map { .int(Int64($0)) }),
                                                                 "dilation_rate": .array(dilation.map { .int(Int64($0)) }), "padding": "valid", "use_bias": true, "depth_multiplier": 2]]
                : ["class_name": "Conv2D", "config": ["name": "c", "filters": 5, "kernel_size": .array(kernel.map { .int(Int64($0)) }), "strides": .array(strides.map { .int(Int64($0)) }),
                                                        "dilation_rate": .array(dilation.map { .int(Int64($0)) }), "padding": "valid", "use_bias": true]]
            let config: JSONValue = ["class_name": "Sequential", "config": ["name": "m", "layers": [
                ["class_name": "InputLayer", "config": ["name": "x", "batch_shape": [nil, 9, 8, 3]]],
                ["class_name": "ZeroPadding2D", "config": ["name": "pad", "padding": .array(margins.map { .array($0.map { .int(Int64($0)) }) })]],
                convolution,
            ]]]
            var model = try GradientTests.model(architecture: config, seed: 11)
            let x = Tensor(shape: [2, 9, 8, 3], data: (0..<(2 * 9 * 8 * 3)).map { i in i % 7 == 0 ? 0 : random.uniform() * 4 - 2 })
            let executor = try Executor(model: model)
            #expect(executor.fusedInto["pad"] == "c", "\(kernel) \(strides) \(margins)")
            try Self.checkSameBits(executor, [x], "\(depthwise ? "depthwise" : "conv") \(kernel) \(strides) \(dilation) \(margins)")
            if depthwise {
                model.weights[0].values[1] = .infinity
                #expect(try Executor(model: model).fusedInto["pad"] == nil)
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
