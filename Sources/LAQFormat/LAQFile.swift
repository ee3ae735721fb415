import Foundation

/// A `.laq` file opened for reading (spec/FORMAT.md).
///
/// Opening maps the file and checks everything that does not need a pass over the payloads:
/// header, end magic, manifest checksum and content, the tensor table and the byte layout
/// (rules 2.x, 3.1, 4.x, 5.1–5.4, 5.6, 5.7, 6.2, 7.1). Payload checksums (5.5) are checked
/// when a tensor is decoded, and the whole-file SHA-256 (3.2) by ``verify()``.
///
/// Every length and offset is checked before it is used. Errors are ``FormatError``s.
public final class LAQFile: @unchecked Sendable {
    /// Features this reader knows (§8: none in 1.0).
    public static let knownFeatures: Set<String> = []

    public let header: Header
    public let manifest: Manifest
    public let tensors: [TensorInfo]
    /// The path it was opened from, if any.
    public let path: String?
    /// Unknown names in `required_features`: when not empty, no tensor is decodable.
    public let unsupportedFeatures: [String]
    let storage: ByteStorage
    let limits: ReaderLimits
    private let index: [String: Int]

    /// Maps and opens the file at `path`.
    public convenience init(path: String, limits: ReaderLimits = ReaderLimits()) throws {
        try self.init(storage: ByteStorage(mapping: path), path: path, limits: limits)
    }

    /// Opens a file held in memory (the bytes are copied).
    public convenience init(bytes: [UInt8], limits: ReaderLimits = ReaderLimits()) throws {
        try self.init(storage: ByteStorage(copying: bytes), path: nil, limits: limits)
    }

    init(storage: ByteStorage, path: String?, limits: ReaderLimits) throws {
        self.storage = storage
        self.path = path
        self.limits = limits
        let file = storage.bytes
        let header = try Header.decode(file, maxManifestLength: limits.maxManifestLength)
        self.header = header
        let trailer = Int(header.trailerOffset)
        guard Array(file[(trailer + 32)..<(trailer + 40)]) == Layout.endMagic else { throw FormatError.badEndMagic }

        let manifestRange = Layout.headerSize..<(Layout.headerSize + Int(header.manifestLength))
        let manifestBytes = UnsafeRawBufferPointer(rebasing: file[manifestRange])
        let crc = Zlib.crc32(manifestBytes)
        guard crc == header.manifestCRC32 else {
            throw FormatError.manifestChecksumMismatch(stored: header.manifestCRC32, computed: crc)
        }
        if let bad = (manifestRange.upperBound..<Int(header.dataOffset)).first(where: { file[$0] != 0 }) {
            throw FormatError.nonZeroPadding(offset: UInt64(bad))
        }
        let manifest = try Self.decodeManifest(manifestBytes, maxDepth: limits.maxManifestDepth)
        self.manifest = manifest
        let unsupportedFeatures = manifest.requiredFeatures.filter { !Self.knownFeatures.contains($0) }
        self.unsupportedFeatures = unsupportedFeatures
        let tensors = try Self.validateTable(
            manifest, header: header, file: file, unsupportedFeatures: unsupportedFeatures, maxTensorCount: limits.maxTensorCount)
        self.tensors = tensors
        self.index = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.index) })
    }

    /// The tensor named `name`, or nil.
    public func tensor(named name: String) -> TensorInfo? {
        index[name].map { tensors[$0] }
    }

    /// The SHA-256 stored in the trailer.
    public var storedSHA256: [UInt8] {
        let start = Int(header.trailerOffset)
        return Array(storage.bytes[start..<(start + 32)])
    }

    /// The file's size in bytes.
    public var fileSize: UInt64 { header.fileSize }

    // MARK: - Manifest

    /// The manifest, read by the strict JSON reader (§4: RFC 8259, no byte-order mark, no
    /// duplicate keys, integers where §4.3–§5 say integer) and decoded as strictly.
    static func decodeManifest(_ bytes: UnsafeRawBufferPointer, maxDepth: Int) throws -> Manifest {
        let json: JSONValue
        do {
            json = try StrictJSON.parse(bytes, maxDepth: maxDepth)
        } catch {
            if error.tooDeep { throw FormatError.manifestTooDeep(limit: maxDepth) }
            throw FormatError.invalidManifest(path: "$", reason: "not valid JSON: \(error)")
        }
        do {
            let manifest = try JSONValueDecoder().decode(Manifest.self, from: json)
            guard manifest.format == "laq" else {
                throw FormatError.invalidManifest(path: "format", reason: "is \"\(manifest.format)\", expected \"laq\"")
            }
            return manifest
        } catch let error as FormatError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            throw FormatError.invalidManifest(path: codingPath(context.codingPath), reason: context.debugDescription)
        } catch let DecodingError.keyNotFound(key, context) {
            throw FormatError.invalidManifest(
                path: codingPath(context.codingPath + [key]), reason: "required key is missing")
        } catch let DecodingError.typeMismatch(type, context) {
            throw FormatError.invalidManifest(
                path: codingPath(context.codingPath), reason: "expected \(type): \(context.debugDescription)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw FormatError.invalidManifest(path: codingPath(context.codingPath), reason: "expected \(type), found null")
        } catch {
            throw FormatError.invalidManifest(path: "$", reason: "\(error)")
        }
    }

    static func codingPath(_ keys: [any CodingKey]) -> String {
        "$" + keys.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
    }

    /// Whether JSON text nests deeper than the limit (rule 4.1; the writer checks its own output).
    static func checkDepth(_ bytes: UnsafeRawBufferPointer, limit: Int) throws {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { throw FormatError.manifestTooDeep(limit: limit) }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }

    // MARK: - Tensor table

    static func validateTable(
        _ manifest: Manifest, header: Header, file: UnsafeRawBufferPointer, unsupportedFeatures: [String],
        maxTensorCount: Int
    ) throws -> [TensorInfo] {
        let entries = manifest.tensors
        guard entries.count <= maxTensorCount else {
            throw FormatError.tooManyTensors(count: entries.count, limit: maxTensorCount)
        }
        // Swift compares Strings by canonical equivalence, so uniqueness is checked that way, which
        // also covers byte equality (rule 5.1).
        var seen = Set<String>()
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(entries.count)
        let dataEnd = header.trailerOffset
        var previousEnd = header.dataOffset
        for (position, entry) in entries.enumerated() {
            let name = entry.name
            if let problem = TensorRules.nameProblem(name) { throw FormatError.invalidName(index: position, reason: problem) }
            guard seen.insert(name).inserted else { throw FormatError.duplicateName(name, offset: Layout.manifestOffset) }
            // Rule 5.2: rank, dimension range, element count.
            guard entry.shape.count <= Layout.maxRank else {
                throw FormatError.invalidShape(tensor: name, reason: "rank \(entry.shape.count) exceeds \(Layout.maxRank)")
            }
            guard entry.shape.allSatisfy({ $0 <= Layout.maxInteger }), let count = elementCount(entry.shape) else {
                throw FormatError.shapeOverflow(tensor: name, offset: Layout.manifestOffset)
            }
            guard Layout.dtypes.contains(entry.dtype) else {
                throw FormatError.invalidManifest(path: "$.tensors[\(position)].dtype", reason: "'\(entry.dtype)' is not float32, float16, bfloat16 or float64")
            }
            if let axes = entry.axes, axes.count != entry.shape.count {
                throw FormatError.invalidShape(
                    tensor: name, reason: "\(axes.count) axis names for \(entry.shape.count) dimensions")
            }
            for (field, value) in [("offset", entry.offset), ("stored_length", entry.storedLength), ("decoded_length", entry.decodedLength)]
            where value > Layout.maxInteger {
                throw FormatError.invalidManifest(path: "$.tensors[\(position)].\(field)", reason: "\(value) exceeds 2^53 − 1")
            }

            // Encoding, compression and features: unknown ones make the tensor undecodable (rule 8.1).
            // A tensor with an unknown feature may use anything a later version defines, so its
            // encoding and sizes are not interpreted; only the layout and CRC rules apply to it.
            var reasons: [String] = []
            let features = entry.features ?? []
            let unknownFeatures = features.filter { !knownFeatures.contains($0) }
            reasons += unknownFeatures.map { "feature '\($0)'" }
            var encoding: Encoding?
            var compression: Compression?
            if unknownFeatures.isEmpty {
                encoding = try Encoding.parse(entry.encoding, rank: entry.shape.count, tensor: name)
                if encoding == nil { reasons.append("encoding \(encodingDescription(entry.encoding))") }
                compression = Compression(rawValue: entry.compression)
                if compression == nil { reasons.append("compression '\(entry.compression)'") }
                try checkSizes(entry, name: name, count: count, encoding: encoding, compression: compression)
            }

            // Rule 5.3: payloads in table order, each at the aligned end of the previous one.
            let expectedOffset = Layout.align(previousEnd)!
            let (end, overflow) = entry.offset.addingReportingOverflow(entry.storedLength)
            guard !overflow, end <= dataEnd, entry.offset >= header.dataOffset else {
                throw FormatError.tensorOutOfBounds(tensor: name, end: overflow ? UInt64.max : end, limit: dataEnd)
            }
            if entry.offset < previousEnd {
                throw FormatError.tensorsOverlap(tensor: name, offset: entry.offset, previousEnd: previousEnd)
            }
            if entry.offset != expectedOffset {
                throw FormatError.unaccountedBytes(tensor: name, offset: entry.offset, expected: expectedOffset)
            }
            try checkZero(file, from: previousEnd, to: entry.offset)
            previousEnd = end

            let role: TensorRole
            switch entry.role {
            case nil, "weight"?:
                role = .weight
            case "optimizer"?:
                guard let of = entry.of, let slot = entry.slot, !slot.isEmpty else {
                    throw FormatError.invalidManifest(
                        path: "$.tensors[\(position)]", reason: "optimizer tensor needs \"of\" and \"slot\"")
                }
                role = .optimizer(of: of, slot: slot)
            case let other?:
                throw FormatError.invalidManifest(path: "$.tensors[\(position)].role", reason: "unknown role '\(other)'")
            }

            tensors.append(
                TensorInfo(
                    index: position, name: name, shape: entry.shape.map { Int($0) }, elementCount: Int(count), axes: entry.axes, dtype: entry.dtype,
                    encoding: encoding, encodingJSON: entry.encoding, compression: compression,
                    compressionName: entry.compression, offset: entry.offset, storedLength: entry.storedLength,
                    decodedLength: entry.decodedLength, crc32: entry.crc32, role: role, features: features,
                    unsupportedReason: (unsupportedFeatures.map { "file feature '\($0)'" } + reasons).first.map { _ in
                        (unsupportedFeatures.map { "file feature '\($0)'" } + reasons).joined(separator: ", ")
                    },
                    isCheckable: reasons.isEmpty))
        }
        let expectedEnd = Layout.align(previousEnd)!
        guard expectedEnd == dataEnd else {
            throw FormatError.unaccountedBytes(tensor: nil, offset: dataEnd, expected: expectedEnd)
        }
        try checkZero(file, from: previousEnd, to: dataEnd)

        // Rule 5.7: optimizer slots belong to weights in the file.
        let weights = Set(tensors.filter { $0.role == .weight }.map(\.name))
        for tensor in tensors {
            if case let .optimizer(of, _) = tensor.role, !weights.contains(of) {
                throw FormatError.danglingOptimizerSlot(tensor: tensor.name, of: of)
            }
        }
        return tensors
    }

    /// Rules 5.6 and 7.1: declared sizes, checked before anything is allocated.
    static func checkSizes(
        _ entry: TensorEntry, name: String, count: UInt64, encoding: Encoding?, compression: Compression?
    ) throws {
        if let encoding {
            guard let expected = encoding.decodedLength(shape: entry.shape, count: count), expected <= Layout.maxInteger else {
                throw FormatError.shapeOverflow(tensor: name, offset: Layout.manifestOffset)
            }
            guard expected == entry.decodedLength else {
                throw FormatError.decodedSizeMismatch(tensor: name, offset: Layout.manifestOffset, declared: entry.decodedLength, actual: expected)
            }
        }
        switch compression {
        case .stored?:
            guard entry.storedLength == entry.decodedLength else {
                throw FormatError.decodedSizeMismatch(tensor: name, offset: Layout.manifestOffset, declared: entry.decodedLength, actual: entry.storedLength)
            }
        case .zlib?:
            guard entry.storedLength < entry.decodedLength,
                entry.decodedLength <= entry.storedLength * Layout.maxInflateRatio + 64
            else {
                throw FormatError.compressionBomb(tensor: name, offset: Layout.manifestOffset, stored: entry.storedLength, decoded: entry.decodedLength)
            }
        case nil:
            break
        }
    }

    static func checkZero(_ file: UnsafeRawBufferPointer, from start: UInt64, to end: UInt64) throws {
        guard start < end else { return }
        if let bad = (Int(start)..<Int(end)).first(where: { file[$0] != 0 }) {
            throw FormatError.nonZeroPadding(offset: UInt64(bad))
        }
    }

    static func encodingDescription(_ object: [String: JSONValue]) -> String {
        let type = object["type"]?.stringValue ?? "?"
        return "'\(type)'"
    }
}

/// The reader's caps (rule 4.1). The defaults are the spec's; a caller may lower them
/// (an embedded reader, a fuzzer, a test) but raising them makes files other readers refuse.
public struct ReaderLimits: Sendable {
    public var maxManifestLength: UInt64 = Layout.maxManifestLength
    public var maxManifestDepth: Int = Layout.maxManifestDepth
    public var maxTensorCount: Int = Layout.maxTensorCount
    /// Largest tensor this reader decodes (elements), a memory bound rather than a format rule:
    /// a 1 MB zlib payload may legally declare billions of 1-bit codes.
    public var maxTensorElements: Int = 1 << 31

    public init(maxManifestLength: UInt64 = Layout.maxManifestLength, maxManifestDepth: Int = Layout.maxManifestDepth,
                maxTensorCount: Int = Layout.maxTensorCount, maxTensorElements: Int = 1 << 31) {
        self.maxManifestLength = maxManifestLength
        self.maxManifestDepth = maxManifestDepth
        self.maxTensorCount = maxTensorCount
        self.maxTensorElements = maxTensorElements
    }
}
