import LAQFormat
import LAQHDF5
import LAQEngine

/// Legacy HDF5 files (keras-hdf5.md §2): `model.save("m.h5")` from tf.keras 2.x and Keras 3,
/// and tf.keras `save_weights` files with the architecture from `--config`.
struct LegacyH5Reader {
    let file: H5File
    let path: String
    let outlet: TensorOutlet

    func importModel(includeOptimizer: Bool, configOverride: JSONValue?) throws -> KerasImporter.Result {
        let root = try file.root()
        let architecture: JSONValue
        if let configOverride {
            architecture = configOverride
        } else {
            guard let text = try root.stringAttribute("model_config") else { throw ImportError.missingArchitecture(path: path) }
            architecture = try KerasImporter.parseJSON(Array(text.utf8), path: path, what: "attribute model_config")
        }
        let training = try root.stringAttribute("training_config").map {
            try KerasImporter.parseJSON(Array($0.utf8), path: path, what: "attribute training_config")
        } ?? .null
        var (result, storedNames) = try importWeights(group: root.group("model_weights"), architecture: architecture, training: training, kind: .legacyModel)
        result.model.source.kerasVersion = try root.stringAttribute("keras_version")
        result.model.source.backend = try root.stringAttribute("backend")
        if includeOptimizer, let notice = OptimizerImport.quantizedByKeras(result.model), try root.kind(of: "optimizer_weights") == .group {
            result.notices.append(notice)
        } else if includeOptimizer, try root.kind(of: "optimizer_weights") == .group {
            let slots = try OptimizerImport(path: path, training: training, outlet: outlet)
            let (state, notices) = try slots.legacy(group: root.group("optimizer_weights"), model: result.model, storedNames: storedNames)
            result.model.optimizer = state
            result.notices += notices
        } else if includeOptimizer {
            result.notices.append("no optimizer state in the file (saved with include_optimizer=False?): no Hessian estimate; quantize with a calibration run, or one-shot with d = 1")
        }
        return result
    }

    func importWeightsOnly(config: JSONValue) throws -> KerasImporter.Result {
        let root = try file.root()
        var (result, _) = try importWeights(group: root, architecture: config, training: config["compile_config"] ?? .null, kind: .legacyWeights)
        result.model.source.kerasVersion = try root.stringAttribute("keras_version")
        result.model.source.backend = try root.stringAttribute("backend")
        result.notices.append("weights-only file: no optimizer state, so no Hessian estimate")
        return result
    }

    /// The model, and each laq weight name's variable name in the file (for matching optimizer slots).
    private func importWeights(
        group: H5Group, architecture: JSONValue, training: JSONValue, kind: KerasImporter.FileKind
    ) throws -> (KerasImporter.Result, [String: String]) {
        let graph: KerasArchitecture.Graph
        do { graph = try KerasArchitecture.parse(architecture) } catch { throw ImportError.model(path: path, error) }
        let layerNames = try group.stringsAttribute("layer_names") ?? []
        // Top-level names: a nested model's layers live in its group.
        let known = Set(graph.layers.map { $0.scope.first ?? $0.name })
        for name in layerNames where !known.contains(name) {
            let names = try group.kind(of: name) == .group ? (try group.group(name).stringsAttribute("weight_names") ?? []) : []
            if !names.isEmpty {
                throw ImportError.invalid(path: path, what: "layer '\(name)'", reason: "has weights in the file but is not in the architecture")
            }
        }
        // Weights are matched by their position in the group (KerasWeightGroup.groups): a nested
        // model's, and a layer's whose legacy order is not its kind's (a layer Keras quantized).
        var positions: [String: [Int]] = [:]
        var groupCounts: [String: Int] = [:]
        for layer in graph.layers {
            positions[layer.name] = [Int](repeating: 0, count: layer.weightNames.count)
        }
        for group in KerasWeightGroup.groups(graph.layers) {
            groupCounts[group.name] = group.weights.count
            for (position, entry) in group.weights.enumerated() { positions[entry.layer]![entry.index] = position }
        }
        var stored: [String: String] = [:]
        let weights = try WeightAssembler.assemble(graph: graph, path: path, outlet: outlet) { layer in
            let groupName = layer.scope.first ?? layer.name
            guard try group.kind(of: groupName) == .group else {
                if layer.weightNames.isEmpty { return [] }
                throw ImportError.missing(path: path, what: "weights of layer '\(layer.name)' (group \(group.fullPath)/\(groupName))")
            }
            let layerGroup = try group.group(groupName)
            var names = try layerGroup.stringsAttribute("weight_names") ?? []
            if let indices = positions[layer.name], let count = groupCounts[groupName] {
                if !layer.scope.isEmpty, names.count != count {
                    throw ImportError.invalid(path: path, what: "nested model '\(groupName)'", reason: "lists \(names.count) weights, its layers have \(count)")
                }
                // A top-level layer with the wrong count is reported by the assembler, names and all.
                if names.count == count { names = indices.map { names[$0] } }
            }
            return try names.enumerated().map { index, name in
                guard try layerGroup.kind(of: name) == .dataset else {
                    throw ImportError.missing(path: path, what: "dataset '\(name)' of layer '\(layer.name)'")
                }
                if index < layer.weightNames.count { stored["\(layer.name)/\(layer.weightNames[index])"] = name }
                return try Self.variable(layerGroup.dataset(name), storedName: name)
            }
        }
        let model = Model(name: graph.name, layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, outputNames: graph.outputNames,
                          weights: weights, architecture: architecture, training: training)
        return (KerasImporter.Result(model: model, kind: kind, notices: []), stored)
    }

    static func variable(_ dataset: H5Dataset, storedName: String) throws -> StoredVariable {
        let dtype: String
        switch dataset.numberClass {
        case let .float(bytes): dtype = bytes == 2 ? "float16" : bytes == 8 ? "float64" : "float32"
        case .integer: dtype = "int"
        case .other: dtype = "other"
        }
        return StoredVariable(storedName: storedName, shape: dataset.shape, dtype: dtype) { try dataset.read(as: Float.self) }
    }
}
