import LAQFormat

extension Model {
    /// The model stored in a `.laq` file: its architecture, every weight decoded to float32
    /// (codebook tensors dequantized), and the optimizer state when the file has it.
    /// The model of a `.laq` file. With `packed`, quantized weights whose level tables are per
    /// tensor or per output channel (the last axis) stay packed (``Weight/packed``) for kernels
    /// that execute codes; every other tensor is decoded to float32. Without `optimizerState`,
    /// optimizer slots are not read (inference needs none of them).
    public init(file: LAQFile, packed: Bool = false, optimizerState: Bool = true) throws {
        let manifest = file.manifest
        let graph = try KerasArchitecture.parse(manifest.model.architecture)
        var weights: [Weight] = []
        var weightLayers: [String: (layer: String, short: String, trainable: Bool)] = [:]
        for layer in graph.layers {
            for spec in layer.kind.weights {
                weightLayers["\(layer.name)/\(spec.name)"] = (layer.name, spec.name, spec.trainable)
            }
        }
        var slots: [OptimizerSlot] = []
        for tensor in file.tensors {
            switch tensor.role {
            case .weight:
                guard let owner = weightLayers[tensor.name] else { continue }
                if packed, case let .codebook(layout)? = tensor.encoding, layout.axis == nil || layout.axis == tensor.shape.count - 1 {
                    var weight = Weight(layer: owner.layer, shortName: owner.short, shape: tensor.shape, values: [],
                                        trainable: owner.trainable, sourceDType: tensor.dtype)
                    weight.packed = try file.packedCodebook(tensor)
                    weights.append(weight)
                } else {
                    weights.append(Weight(layer: owner.layer, shortName: owner.short, shape: tensor.shape, values: try file.floats(tensor),
                                          trainable: owner.trainable, sourceDType: tensor.dtype))
                }
            case let .optimizer(of, slot):
                guard optimizerState else { continue }
                slots.append(OptimizerSlot(weight: of, slot: slot, values: try file.floats(tensor)))
            }
        }
        let metadata = manifest.metadata
        var optimizer: OptimizerState?
        if let description = metadata["optimizer"], !slots.isEmpty {
            func number(_ key: String) -> Double? {
                switch description[key] {
                case let .double(v)?: v
                case let .int(v)?: Double(v)
                default: nil
                }
            }
            let iterations: Int64? = { if case let .int(v)? = description["iterations"] { return v } else { return nil } }()
            optimizer = OptimizerState(
                className: description["class_name"]?.stringValue ?? "", config: description["config"] ?? .null,
                iterations: iterations, learningRate: number("learning_rate"), beta1: number("beta_1") ?? 0.9,
                beta2: number("beta_2") ?? 0.999, epsilon: number("epsilon") ?? 1e-7, slots: slots,
                scheme: description["scheme"]?.stringValue ?? "")
        }
        let source = metadata["source"]
        self.init(
            name: graph.name, layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, outputNames: graph.outputNames, weights: weights,
            optimizer: optimizer, architecture: manifest.model.architecture, training: manifest.model.training,
            source: ModelSource(format: source?["format"]?.stringValue ?? "laq", kerasVersion: source?["keras_version"]?.stringValue,
                                backend: source?["backend"]?.stringValue, file: source?["file"]?.stringValue))
    }
}
