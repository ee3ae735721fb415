/// The compressions of §7.
public enum Compression: String, Sendable, Hashable {
    /// `"none"`: the stored bytes are the decoded payload. (Not named `none`, which would read
    /// as `nil` when compared with an optional.)
    case stored = "none"
    case zlib
}

/// One validated tensor table entry (§5), as the reader presents it.
public struct TensorInfo: Sendable, Equatable {
    /// Position in the table.
    public let index: Int
    public let name: String
    /// Row-major, outermost first; every dimension ≤ 2^53 − 1.
    public let shape: [Int]
    /// The product of the dimensions (checked: ≤ 2^53 − 1; 0 when any dimension is 0).
    public let elementCount: Int
    public let axes: [String]?
    public let dtype: String
    /// nil when this reader does not know the encoding (see ``unsupportedReason``).
    public let encoding: Encoding?
    /// The encoding object as stored.
    public let encodingJSON: [String: JSONValue]
    /// nil when this reader does not know the compression.
    public let compression: Compression?
    public let compressionName: String
    public let offset: UInt64
    public let storedLength: UInt64
    public let decodedLength: UInt64
    public let crc32: UInt32
    public let role: TensorRole
    public let features: [String]
    /// Why this reader cannot decode the tensor (rule 8.1), or nil when it can.
    public let unsupportedReason: String?
    /// Whether this reader knows the tensor's encoding, compression and features, so that every
    /// rule about its bytes can be checked, even when a file-level feature forbids decoding (§5).
    public let isCheckable: Bool

    public var isDecodable: Bool { unsupportedReason == nil }

    /// A short human summary of the encoding: `float32`, `2-bit L3 ax1` (codes, levels, group
    /// axis), `base3`, or the unknown type.
    public var encodingSummary: String {
        guard let encoding else {
            return (encodingJSON["type"]?.stringValue ?? "?") + " (unknown)"
        }
        switch encoding {
        case .float32, .float16, .bfloat16: return encoding.typeName
        case let .codebook(layout):
            let fullTable = layout.levelCount == (layout.packing == .base3 ? 3 : 1 << layout.bits)
            let width = layout.packing == .base3 ? "base3" : "\(layout.bits)-bit"
            let levels = fullTable ? "" : " L\(layout.levelCount)"
            let groups = layout.axis.map { " ax\($0)" } ?? ""
            return width + levels + groups
        }
    }

    /// Storage bits per element of the decoded payload (levels included); nil for empty tensors.
    public var bitsPerElement: Double? {
        elementCount == 0 ? nil : Double(decodedLength) * 8 / Double(elementCount)
    }
}
