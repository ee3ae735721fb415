extension Model {
    /// Checks everything the engine relies on, so that a model from any source (an import, a
    /// hand-edited `.laq`) either runs or fails here with an error naming the layer:
    /// inputs and outputs exist, every layer and option is executable (``LayerKind``), shapes
    /// fit together (``outputShapes()``), implicit masks reach only layers that handle them
    /// (``maskPlan()``), normalization runs over the last axis, and every weight
    /// is present with the shape its layer's config implies, and (unless `values` is false: a
    /// streamed import, whose weights went to the file as they were read) with its values.
    public func validate(values: Bool = true) throws(ModelError) {
        guard !inputs.isEmpty, !outputs.isEmpty else {
            throw .invalidConfig(path: "$.config", reason: "the model has no inputs or no outputs")
        }
        let inputNames = Set(inputs.map(\.layer))
        let unsupported = LayerRegistry.unsupported(layers)
        guard unsupported.isEmpty else { throw .unsupportedLayers(unsupported) }
        for layer in layers {
            if layer.inbound.isEmpty, !inputNames.contains(layer.name) {
                throw .danglingInput(layer: layer.name, input: "(nothing: it is not a model input)")
            }
            if inputNames.contains(layer.name), !(layer.kind is InputLayerKind) {
                throw .invalidConfig(path: "$.config.input_layers", reason: "'\(layer.name)' is not an InputLayer")
            }
        }
        let shapes = try callShapes()
        _ = try maskPlan()
        var byName: [String: Weight] = [:]
        for weight in weights { byName[weight.name] = weight }
        for layer in layers {
            let inputShapes = inputShapes(of: layer, in: shapes)
            // A shared layer's calls use one set of weights: each call's input must imply the
            // same shapes.
            let expected = inputShapes.first.map(layer.kind.weightShapes) ?? [:]
            for (node, other) in inputShapes.enumerated().dropFirst() {
                let implied = layer.kind.weightShapes(other)
                if let short = implied.keys.sorted().first(where: { expected[$0] != nil && implied[$0] != expected[$0] }) {
                    throw .shapeMismatch(layer: layer.name, reason: "call \(node) takes inputs of shape \(other.map(ShapeRules.describe).joined(separator: ", ")), which imply weight '\(short)' of shape \(implied[short]!), the first call \(expected[short]!)")
                }
            }
            for short in layer.weightNames {
                guard let weight = byName["\(layer.name)/\(short)"] else {
                    throw .weight(layer: layer.name, "weight '\(short)' is missing")
                }
                if let shape = expected[short], shape != weight.shape {
                    throw .weight(layer: layer.name, "weight '\(short)' has shape \(weight.shape), the config implies \(shape)")
                }
                if values, weight.packed == nil, weight.values.count != weight.shape.reduce(1, *) {
                    throw .weight(layer: layer.name, "weight '\(short)' has \(weight.values.count) values for shape \(weight.shape)")
                }
            }
        }
    }
}
