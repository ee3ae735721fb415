import LAQFormat
import LAQEngine

extension ModelDiff {
    /// The `laq diff --json` document (spec/EXPORT.md §5.4). Numbers that are not finite are null.
    public func json(fileA: String, fileB: String, shaA: String, shaB: String, data: String? = nil) -> JSONValue {
        func number(_ value: Double?) -> JSONValue { value.flatMap { $0.isFinite ? JSONValue.double($0) : nil } ?? .null }
        func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        func shape(_ value: [Int]?) -> JSONValue { value.map { .array($0.map { .int(Int64($0)) }) } ?? .null }
        func fields(_ changes: [FieldChange]) -> JSONValue {
            .array(changes.map { ["field": .string($0.field), "a": string($0.a), "b": string($0.b)] })
        }
        var document: [String: JSONValue] = [
            "same": .bool(isSame),
            "a": ["file": .string(fileA), "sha256": .string(shaA)],
            "b": ["file": .string(fileB), "sha256": .string(shaB)],
            "model": fields(model),
            "architecture": .array(architecture.map { ["layer": .string($0.layer), "change": .string($0.kind.rawValue), "detail": .string($0.detail)] }),
            "metadata": fields(metadata),
            "provenance": [
                "a": .array(provenanceA.map(JSONValue.string)), "b": .array(provenanceB.map(JSONValue.string)),
                "shared": .int(Int64(sharedProvenance)),
            ],
            "tensors": .array(tensors.map { tensor in
                let status = tensor.shapeB == nil ? "only_a" : tensor.shapeA == nil ? "only_b" : tensor.identical ? "same" : "changed"
                return [
                    "name": .string(tensor.name), "status": .string(status),
                    "shape_a": shape(tensor.shapeA), "shape_b": shape(tensor.shapeB),
                    "encoding_a": string(tensor.encodingA), "encoding_b": string(tensor.encodingB),
                    "max_abs_diff": number(tensor.maxAbsDifference), "relative_l2": number(tensor.relativeL2),
                    "codes_changed": number(tensor.codesChanged), "note": string(tensor.note),
                ]
            }),
            "only_in_a": .array(onlyInA.map(JSONValue.string)),
            "only_in_b": .array(onlyInB.map(JSONValue.string)),
            "data": .null,
        ]
        if let outputs {
            document["data"] = [
                "file": string(data), "samples": .int(Int64(outputs.samples)),
                "outputs": .array(outputs.outputs.map {
                    [
                        "output": .string($0.output), "rows": .int(Int64($0.rows)), "top1_agreement": number($0.top1Agreement),
                        "kl_divergence": number($0.klDivergence), "distribution": .string($0.distribution),
                        "max_abs_diff": number($0.maxAbsDifference), "note": string($0.note),
                        "non_finite": ["a": .int(Int64($0.nonFiniteA)), "b": .int(Int64($0.nonFiniteB)),
                                       "first_layer_a": string($0.firstNonFiniteLayerA), "first_layer_b": string($0.firstNonFiniteLayerB)],
                    ]
                }),
                "layers": .array(outputs.layers.map {
                    [
                        "layer": .string($0.layer), "activation_error": number($0.activationError),
                        "isolated_kl": number($0.isolatedKL), "isolated_error": number($0.isolatedError),
                    ]
                }),
                "most_hurt_layer": string(outputs.mostHurtLayer),
                "note": string(outputs.layerNote),
            ]
        }
        return .object(document)
    }

    /// Layers of `model` whose weights differ (changed, or missing from the other file), in
    /// layer order.
    public func changedLayers(in model: Model) -> [String] {
        let differing = Set(tensors.filter { !$0.identical }.map(\.name))
        let layers = Set(model.weights.filter { differing.contains($0.name) }.map(\.layer))
        return model.layers.map(\.name).filter { layers.contains($0) }
    }
}
