import LAQFormat
import LAQHDF5
import LAQEngine

/// Keras 3 weights files (`.weights.h5`, and `model.weights.h5` inside a `.keras` archive;
/// keras-hdf5.md §3): variables under `layers/<snake_case class>[_n]/…/vars/<i>`, found by the
/// layer name stored in each `vars` group's `name` attribute; optimizer under `optimizer/vars`.
struct Keras3WeightsReader {
    let file: H5File
    let path: String
    let outlet: TensorOutlet

    func importModel(config: JSONValue, includeOptimizer: Bool, kind: KerasImporter.FileKind) throws -> KerasImporter.Result {
        let graph: KerasArchitecture.Graph
        do { graph = try KerasArchitecture.parse(config) } catch { throw ImportError.model(path: path, error) }
        let root = try file.root()
        guard try root.kind(of: "layers") == .group else { throw ImportError.missing(path: path, what: "group /layers") }
        let layersGroup = try root.group("layers")
        // A layer's group: the child of /layers whose vars/@name is its name; for a layer of a
        // nested model, the nested model's group and then its `layers` subgroup, level by level.
        // Each level's name → group table is read once.
        var tables: [String: [String: String]] = [:]
        func table(_ base: String) throws -> [String: String] {
            if let known = tables[base] { return known }
            var names: [String: String] = [:]
            if try root.kind(of: base) == .group {
                let parent = try root.group(base)
                for child in try parent.children() where try parent.kind(of: "\(child)/vars") == .group {
                    if let name = try parent.group("\(child)/vars").stringAttribute("name"), names[name] == nil { names[name] = "\(base)/\(child)" }
                }
            }
            tables[base] = names
            return names
        }
        func groupPath(_ names: [String]) throws -> String? {
            var base = "layers"
            var path: String?
            for name in names {
                if let found = path { base = "\(found)/layers" }
                guard let found = try table(base)[name] else { return nil }
                path = found
            }
            return path
        }
        let weights = try WeightAssembler.assemble(graph: graph, path: path, outlet: outlet) { layer in
            if layer.weightNames.isEmpty { return [] }
            // A layer inside a keras_hub block: in the block's group, under its attribute.
            let names = layer.attribute == nil ? layer.scope + [layer.localName] : layer.scope
            guard let found = try groupPath(names) else {
                throw ImportError.missing(path: path, what: "weights of layer '\(layer.name)' (no group under /layers has vars/@name = '\(names.last ?? layer.localName)')")
            }
            let groupPath = layer.attribute.map { "\(found)/\($0)" } ?? found
            let group = String(groupPath.dropFirst("layers/".count))
            let paths = layer.kind.keras3VariableGroups.map { "\(group)/\($0)" }
            var variables: [StoredVariable] = []
            for varsPath in paths {
                guard try layersGroup.kind(of: varsPath) == .group else {
                    throw ImportError.missing(path: path, what: "group /layers/\(varsPath) of layer '\(layer.name)'")
                }
                let vars = try layersGroup.group(varsPath)
                for key in try Self.numericKeys(vars, path: path) {
                    variables.append(try LegacyH5Reader.variable(vars.dataset(key), storedName: key))
                }
            }
            return variables
        }
        var model = Model(name: graph.name, layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, outputNames: graph.outputNames, weights: weights,
                          architecture: config, training: config["compile_config"] ?? .null)
        var notices: [String] = []
        if includeOptimizer, let notice = OptimizerImport.quantizedByKeras(model), try root.kind(of: "optimizer/vars") == .group {
            notices.append(notice)
        } else if includeOptimizer, try root.kind(of: "optimizer/vars") == .group {
            let vars = try root.group("optimizer/vars")
            let datasets = try Self.numericKeys(vars, path: path).map { try vars.dataset($0) }
            var training = model.training
            let optimizerName = try vars.stringAttribute("name")
            if training["optimizer"] == nil, let optimizerName {
                // No compile config (a .weights.h5 with a bare model config): infer the class from the variable scope name.
                // Keras names the scope after the class in snake case, with _1, _2 … for repeats.
                var scope = optimizerName.lowercased()
                if let underscore = scope.lastIndex(of: "_"), scope[scope.index(after: underscore)...].allSatisfy(\.isNumber) {
                    scope = String(scope[..<underscore])
                }
                let className = ["adam": "Adam", "adam_w": "AdamW", "adamw": "AdamW", "nadam": "Nadam", "adamax": "Adamax"][scope]
                training = ["optimizer": ["class_name": .string(className ?? optimizerName), "config": [:]]]
                notices.append("the config names no optimizer: taken to be \(className ?? optimizerName) (from the optimizer variables' name '\(optimizerName)') with Keras' default β1 = 0.9, β2 = 0.999, ε = 1e-7")
            }
            let (state, more) = try OptimizerImport(path: path, training: training, outlet: outlet).keras3(variables: datasets, model: model, optimizerName: optimizerName)
            model.optimizer = state
            notices += more
        } else if includeOptimizer {
            notices.append("no optimizer state in the file: no Hessian estimate; quantize with a calibration run, or one-shot with d = 1")
        }
        return KerasImporter.Result(model: model, kind: kind, notices: notices)
    }

    /// The dataset keys `0, 1, 2, …` of a vars group, in numeric order (HDF5 lists them as text).
    static func numericKeys(_ group: H5Group, path: String) throws -> [String] {
        let keys = try group.children()
        let numbers = keys.compactMap(Int.init).sorted()
        guard numbers.count == keys.count, numbers == Array(0..<numbers.count) else {
            throw ImportError.invalid(path: path, what: "group \(group.fullPath)", reason: "variable keys \(keys.sorted()) are not 0…n−1")
        }
        return numbers.map(String.init)
    }
}
