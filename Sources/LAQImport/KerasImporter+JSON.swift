import LAQEngine
import LAQFormat

extension KerasImporter.Result {
    /// `laq import --json`: the model's layers (as Keras' summary lists them), parameters,
    /// optimizer and notices, and the file written (`output`, `outputBytes`).
    public func json(output: String, outputBytes: UInt64) -> JSONValue {
        let model = self.model
        let counts = model.parameterCounts
        var object: [String: JSONValue] = [
            "model": .string(model.name), "kind": .string(kind.rawValue), "output": .string(output),
            "output_bytes": .int(Int64(outputBytes)), "source_bytes": .int(Int64(model.source.bytes ?? 0)),
            "source_sha256": .string(model.source.sha256 ?? ""),
            "trainable_params": .int(Int64(counts.trainable)), "non_trainable_params": .int(Int64(counts.nonTrainable)),
            "notices": .array(notices.map { .string($0) }),
            "layers": .array(model.summaryRows().map { row in
                [
                    "name": .string(row.layer), "class_name": .string(row.className), "params": .int(Int64(row.parameters)),
                    "output_shape": row.outputShape.map { .array($0.map { $0.map { .int(Int64($0)) } ?? .null }) } ?? .null,
                    "inputs": .array(row.inputs.map { .string($0) }),
                ]
            }),
        ]
        if let optimizer = model.optimizer {
            object["optimizer"] = [
                "class_name": .string(optimizer.className), "slots": .int(Int64(optimizer.slots.count)),
                "iterations": optimizer.iterations.map { .int($0) } ?? .null, "beta_2": .double(optimizer.beta2),
                "epsilon": .double(optimizer.epsilon), "scheme": .string(optimizer.scheme),
            ]
        } else {
            object["optimizer"] = .null
        }
        return .object(object)
    }
}
