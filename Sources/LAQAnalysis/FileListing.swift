import LAQFormat

/// What `laq inspect` lists: every tensor of a file, with the statistics of the ones this laq
/// decodes. A damaged payload does not stop the listing: its problem is kept instead.
public struct FileListing: Sendable {
    public let laq: LAQFile
    public let rows: [(tensor: TensorInfo, statistics: TensorStatistics?)]
    /// The problem of each tensor whose payload fails to decode, by name.
    public let damaged: [String: FormatError]

    public init(_ laq: LAQFile) {
        var damaged: [String: FormatError] = [:]
        rows = laq.tensors.map { tensor -> (TensorInfo, TensorStatistics?) in
            guard tensor.isDecodable else { return (tensor, nil) }
            do {
                return (tensor, try laq.statistics(of: tensor))
            } catch {
                damaged[tensor.name] = error as? FormatError ?? .invalidArgument("\(error)")
                return (tensor, nil)
            }
        }
        self.laq = laq
        self.damaged = damaged
    }

    /// `laq inspect --json` (spec/EXPORT.md): the header, manifest and every tensor, with the
    /// statistics of the ones that decode and the problem of the damaged ones; `path` as given.
    public func json(path file: String) throws -> JSONValue {
        let manifest = laq.manifest
        let tensors: [JSONValue] = rows.map { tensor, statistics in
            var object: [String: JSONValue] = [
                "name": .string(tensor.name),
                "shape": .array(tensor.shape.map { .int(Int64($0)) }),
                "dtype": .string(tensor.dtype),
                "encoding": .object(tensor.encodingJSON),
                "compression": .string(tensor.compressionName),
                "offset": .int(Int64(tensor.offset)),
                "stored_length": .int(Int64(tensor.storedLength)),
                "decoded_length": .int(Int64(tensor.decodedLength)),
                "float32_bytes": (Double(tensor.elementCount) * 4).jsonNumber,
                "crc32": .int(Int64(tensor.crc32)),
                "elements": .int(Int64(tensor.elementCount)),
                "bits_per_element": tensor.bitsPerElement?.jsonNumber ?? .null,
                "decodable": .bool(tensor.isDecodable),
            ]
            if let axes = tensor.axes { object["axes"] = .array(axes.map { .string($0) }) }
            switch tensor.role {
            case .weight: object["role"] = "weight"
            case let .optimizer(of, slot):
                object["role"] = "optimizer"
                object["of"] = .string(of)
                object["slot"] = .string(slot)
            }
            if !tensor.features.isEmpty { object["features"] = .array(tensor.features.map { .string($0) }) }
            if let reason = tensor.unsupportedReason { object["unsupported"] = .string(reason) }
            if let problem = damaged[tensor.name] { object["problem"] = .string(problem.description) }
            if let statistics {
                var stats: [String: JSONValue] = [
                    "zero_fraction": statistics.zeroFraction.jsonNumber,
                    "min": statistics.minimum.jsonNumber, "max": statistics.maximum.jsonNumber,
                ]
                if let groups = statistics.groups { stats["groups"] = .int(Int64(groups)) }
                if let levels = statistics.levels { stats["levels"] = .array(levels.map(\.jsonNumber)) }
                if let low = statistics.levelMinimum { stats["level_min"] = low.jsonNumber }
                if let high = statistics.levelMaximum { stats["level_max"] = high.jsonNumber }
                object["statistics"] = .object(stats)
            }
            return .object(object)
        }
        let totalStored = laq.tensors.reduce(0.0) { $0 + Double($1.storedLength) }
        let totalRaw = laq.tensors.reduce(0.0) { $0 + Double($1.elementCount) * 4 }
        return [
            "file": .string(file),
            "version": .string("\(laq.header.major).\(laq.header.minor)"),
            "file_size": .int(Int64(laq.fileSize)),
            "sha256_stored": .string(SHA256.hex(laq.storedSHA256)),
            "required_features": .array(manifest.requiredFeatures.map { .string($0) }),
            "unsupported_features": .array(laq.unsupportedFeatures.map { .string($0) }),
            "model": try JSONValue(encoding: manifest.model),
            "provenance": try JSONValue(encoding: manifest.provenance),
            "metadata": .object(manifest.metadata),
            "tensors": .array(tensors),
            "totals": [
                "tensors": .int(Int64(laq.tensors.count)),
                "float32_bytes": totalRaw.jsonNumber,
                "stored_bytes": totalStored.jsonNumber,
                "compression_ratio": (totalRaw / Double(laq.fileSize)).jsonNumber,
            ],
        ]
    }
}
