import LAQFormat

/// One group of Keras' legacy HDF5 weight layout (`model_weights/<name>` in a full-model file):
/// a top-level layer, or a whole nested model.
public struct KerasWeightGroup: Sendable, Equatable {
    /// The top-level layer's name (for a nested model, the first component of its layers' scope).
    public var name: String
    /// The group's weights in the order its `weight_names` lists them, as (flattened layer name,
    /// index into that layer's `weightNames`).
    public var weights: [Entry]

    public struct Entry: Sendable, Equatable {
        public var layer: String
        public var index: Int
    }
}

extension KerasWeightGroup {
    /// Keras' legacy HDF5 weight groups of a flattened graph, in layer order. A top-level layer
    /// lists its own weights in order. A nested model's group lists them as Keras'
    /// `trainable_weights + non_trainable_weights` of the nested model: every trainable weight of
    /// its layers in layer order, then every other one (BatchNormalization's moving statistics,
    /// frozen layers). Keras' loader reads a group's weights by position (their names can be
    /// ambiguous two levels down), and so do laq's importer and exporter.
    public static func groups(_ layers: [Layer]) -> [KerasWeightGroup] {
        var groups: [KerasWeightGroup] = []
        var nested: [String: [Layer]] = [:]
        for layer in layers {
            let top = layer.scope.first ?? layer.name
            if layer.scope.first != nil {
                if nested[top] == nil { groups.append(KerasWeightGroup(name: top, weights: [])) }
                nested[top, default: []].append(layer)
            } else {
                // Keras' `trainable_weights + non_trainable_weights`: the kind's order, but for a
                // layer Keras quantized (its frozen int8 kernel comes after its bias).
                let specs = layer.kind.weights
                groups.append(KerasWeightGroup(name: top, weights: (specs.indices.filter { specs[$0].trainable } + specs.indices.filter { !specs[$0].trainable })
                    .map { .init(layer: layer.name, index: $0) }))
            }
        }
        for index in groups.indices {
            guard let members = nested[groups[index].name] else { continue }
            for trainablePass in [true, false] {
                for layer in members {
                    // Each layer's weights trainable first (a frozen layer's `weights`, too).
                    let frozen = layer.config["trainable"] == .bool(false)
                    let specs = layer.kind.weights
                    for weight in specs.indices.filter({ specs[$0].trainable }) + specs.indices.filter({ !specs[$0].trainable })
                    where (specs[weight].trainable && !frozen) == trainablePass {
                        groups[index].weights.append(.init(layer: layer.name, index: weight))
                    }
                }
            }
        }
        return groups
    }
}
