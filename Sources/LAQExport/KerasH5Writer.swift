import Foundation
import LAQFormat
import LAQHDF5
import LAQEngine

/// Keras' legacy full-model HDF5 layout (keras-hdf5.md §2), as `model.save("m.h5")` writes it:
///
/// - root attributes `model_config` (the architecture exactly as imported, JSON), `keras_version`
///   and `backend` (the source's), and `training_config` when the source was a legacy `.h5`
///   that had one (the other layouts keep a `compile_config` of a different shape);
/// - group `model_weights` with `layer_names` (every top-level layer, in order), `keras_version`,
///   `backend`; one group per top-level layer (a nested model is one group) with `weight_names`
///   and its float32 datasets, listed in the order Keras' loader reads them by position
///   (``KerasWeightGroup/groups(_:)``).
///
/// Dataset names are laq's weight names (unique even where Keras' own repeat), with `:0`
/// appended for tf.keras 2.x sources as tf.keras writes them. The architecture is written as
/// imported, so a file loads in the Keras generation that wrote the original.
enum KerasH5Writer {
    /// The file's bytes; `name` (the destination) is used in error messages.
    static func image(_ model: Model, name: String) throws -> [UInt8] {
        let architecture = try json(model.architecture)
        let version = model.source.kerasVersion ?? "3.0.0"
        let backend = model.source.backend ?? "tensorflow"
        let suffix = version.hasPrefix("2.") ? ":0" : ""
        let weights = Dictionary(uniqueKeysWithValues: model.weights.map { ($0.name, $0) })
        let layers = Dictionary(uniqueKeysWithValues: model.layers.map { ($0.name, $0) })
        let groups = KerasWeightGroup.groups(model.layers)
        return try H5File.image(name: name) { root in
            try root.setAttribute("model_config", string: architecture)
            try root.setAttribute("keras_version", string: version)
            try root.setAttribute("backend", string: backend)
            if model.source.format == "keras-h5", model.training != .null {
                try root.setAttribute("training_config", string: try json(model.training))
            }
            let container = try root.createGroup("model_weights")
            try container.setAttribute("layer_names", strings: groups.map(\.name))
            try container.setAttribute("backend", string: backend)
            try container.setAttribute("keras_version", string: version)
            for group in groups {
                let layerGroup = try container.createGroup(group.name)
                var names: [String] = []
                for entry in group.weights {
                    let name = "\(entry.layer)/\(layers[entry.layer]!.weightNames[entry.index])"
                    guard let weight = weights[name] else {
                        throw ExportError.noArchitecture(reason: "layer '\(entry.layer)' has no weight '\(name)' in the file")
                    }
                    names.append(name + suffix)
                    try layerGroup.createDataset(name + suffix, shape: weight.shape, values: weight.values)
                }
                try layerGroup.setAttribute("weight_names", strings: names)
            }
        }
    }

    static func json(_ value: JSONValue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
