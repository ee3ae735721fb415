import LAQFormat

extension Model {
    /// The manifest's model description: architecture as imported, inputs and outputs with shapes.
    public func modelInfo() -> ModelInfo {
        let shapes = (try? callShapes()) ?? [:]
        func describe(_ refs: [TensorRef], names: [String]) -> [TensorDescription] {
            zip(refs, names).map { ref, name in
                let layer = layer(named: ref.layer)
                let dtype = layer?.config["dtype"]?.stringValue ?? "float32"
                return TensorDescription(name: name, shape: shapes[TensorRef(layer: ref.layer, node: ref.node)], dtype: dtype)
            }
        }
        return ModelInfo(name: name, framework: "keras", architecture: architecture, inputs: describe(inputs, names: inputs.map(\.layer)),
                         outputs: describe(outputs, names: outputNames), training: training)
    }

    /// Integer codes (Keras' int8 kernels) as an 8-bit table of −128…127 (code = value + 128),
    /// or nil when a value is not such an integer.
    static func integerCodes(_ values: [Float]) -> TensorData? {
        var codes = [UInt8](repeating: 0, count: values.count)
        for (index, value) in values.enumerated() {
            guard let code = Int8(exactly: value) else { return nil }
            codes[index] = UInt8(Int(code) + 128)
        }
        return .codebook(CodebookLayout(bits: 8, levelCount: 256), levels: (-128...127).map(Float.init), codes: codes)
    }

    /// A writer holding every weight as float32 and, unless `includeOptimizer` is false, the
    /// optimizer's moments as optional tensors tied to their weights (`optimizer/m/<weight>`,
    /// `optimizer/v/<weight>`), with the optimizer's class, hyperparameters and step count in
    /// the metadata under `optimizer`.
    ///
    /// - Parameters:
    ///   - replacing: encodings for some weights (quantized codebooks), by weight name.
    ///   - floatStorage: the encoding of the other weights.
    public func laqWriter(
        provenance: [ProvenanceRecord], includeOptimizer: Bool = true, replacing: [String: TensorData] = [:],
        floatStorage: FloatStorage = .float32
    ) throws -> LAQWriter {
        var writer = LAQWriter(model: modelInfo(), provenance: provenance, metadata: fileMetadata(includeOptimizer: includeOptimizer))
        for weight in weights {
            try writer.add(Self.record(of: weight, layer: layer(named: weight.layer), replacing: replacing[weight.name], floatStorage: floatStorage))
        }
        if includeOptimizer, let optimizer {
            for slot in optimizer.slots {
                guard let weight = weight(named: slot.weight) else { continue }
                try writer.add(Self.record(of: slot, shape: weight.shape))
            }
        }
        return writer
    }

    /// The names of the tensors ``laqWriter(provenance:includeOptimizer:replacing:floatStorage:)``
    /// writes, in its order: a streamed import's order (``LAQStreamWriter/finish(order:)``).
    public func tensorNames(includeOptimizer: Bool = true) -> [String] {
        var names = weights.map(\.name)
        if includeOptimizer, let optimizer {
            names += optimizer.slots.filter { weight(named: $0.weight) != nil }.map { "optimizer/\($0.slot)/\($0.weight)" }
        }
        return names
    }

    /// The tensor laq stores for `weight` of `layer`: `replacing` when given; its packed codes;
    /// Keras' integer codes as an 8-bit table where the layer's spec says so and the values are
    /// integers; else its values as `floatStorage`.
    public static func record(of weight: Weight, layer: Layer?, replacing: TensorData? = nil, floatStorage: FloatStorage = .float32) -> TensorRecord {
        let spec = layer?.kind.weights.first(where: { $0.name == weight.shortName })
        let dtype = weight.sourceDType.hasPrefix("float") || weight.sourceDType == "bfloat16" ? weight.sourceDType : "float32"
        return TensorRecord(
            name: weight.name, shape: weight.shape,
            axes: spec?.axes.flatMap { $0.count == weight.shape.count ? $0 : nil },
            dtype: dtype, data: replacing ?? weight.packed.map { .codebook($0.layout, levels: $0.levels, codes: $0.unpacked()) }
                ?? (spec?.integerCodes == true ? integerCodes(weight.values) : nil)
                ?? .float(weight.values, as: floatStorage))
    }

    /// The optional tensor laq stores for an optimizer slot of a weight of shape `shape`.
    public static func record(of slot: OptimizerSlot, shape: [Int]) -> TensorRecord {
        TensorRecord(
            name: "optimizer/\(slot.slot)/\(slot.weight)", shape: shape,
            role: .optimizer(of: slot.weight, slot: slot.slot), data: .float(slot.values, as: .float32))
    }

    /// The manifest's metadata: the source file, and the optimizer's class, hyperparameters and
    /// step count unless `includeOptimizer` is false.
    public func fileMetadata(includeOptimizer: Bool = true) -> [String: JSONValue] {
        var metadata: [String: JSONValue] = [:]
        if includeOptimizer, let optimizer {
            var description: [String: JSONValue] = [
                "class_name": .string(optimizer.className), "config": optimizer.config,
                "beta_1": .double(optimizer.beta1), "beta_2": .double(optimizer.beta2), "epsilon": .double(optimizer.epsilon),
                "scheme": .string(optimizer.scheme),
            ]
            description["iterations"] = optimizer.iterations.map { .int($0) } ?? .null
            description["learning_rate"] = optimizer.learningRate.map { .double($0) } ?? .null
            metadata["optimizer"] = .object(description)
        }
        var source: [String: JSONValue] = ["format": .string(self.source.format)]
        if let file = self.source.file { source["file"] = .string(file) }
        if let version = self.source.kerasVersion { source["keras_version"] = .string(version) }
        if let backend = self.source.backend { source["backend"] = .string(backend) }
        metadata["source"] = .object(source)
        return metadata
    }
}
