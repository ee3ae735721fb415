/// How a tensor's decoded payload represents its values (spec/FORMAT.md §6).
public enum Encoding: Equatable, Hashable, Sendable {
    case float32
    case float16
    case bfloat16
    /// Codes into tables of levels: every quantized tensor (§6.2).
    case codebook(CodebookLayout)

    /// The encoding's name as in `encoding.type`.
    public var typeName: String {
        switch self {
        case .float32: "float32"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .codebook: "codebook"
        }
    }

    /// The exact decoded payload size for `count` elements of a tensor of `shape` (rule 5.6),
    /// or nil on overflow.
    public func decodedLength(shape: [UInt64], count: UInt64) -> UInt64? {
        switch self {
        case .float32: return multiply(count, 4)
        case .float16, .bfloat16: return multiply(count, 2)
        case let .codebook(layout):
            guard let groups = layout.groupCount(shape: shape),
                let table = multiply(groups, UInt64(layout.levelCount)).flatMap({ multiply($0, 4) }),
                let codes = layout.packedLength(count: count)
            else { return nil }
            let (sum, overflow) = table.addingReportingOverflow(codes)
            return overflow ? nil : sum
        }
    }

    /// The JSON object of `encoding` (§6).
    var json: [String: JSONValue] {
        switch self {
        case .float32, .float16, .bfloat16:
            return ["type": .string(typeName)]
        case let .codebook(layout):
            var object: [String: JSONValue] = [
                "type": "codebook", "packing": .string(layout.packing.rawValue),
                "levels": .int(Int64(layout.levelCount)),
            ]
            if layout.packing == .bits { object["bits"] = .int(Int64(layout.bits)) }
            if let axis = layout.axis { object["axis"] = .int(Int64(axis)) }
            return object
        }
    }

    /// Interprets an `encoding` object. Returns nil for a type this reader does not know
    /// (the tensor is then not decodable, rule 8.1); throws for a known type that is malformed,
    /// including unknown keys or packings, which a later version must announce as features (§8).
    static func parse(_ object: [String: JSONValue], rank: Int, tensor: String) throws(FormatError) -> Encoding? {
        guard case let .string(type)? = object["type"] else {
            throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "missing string \"type\"")
        }
        func checkKeys(_ allowed: Set<String>) throws(FormatError) {
            if let extra = object.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "unknown key '\(extra)' in a \(type) encoding, and no feature announces it")
            }
        }
        switch type {
        case "float32", "float16", "bfloat16":
            try checkKeys(["type"])
            return type == "float32" ? .float32 : type == "float16" ? .float16 : .bfloat16
        case "codebook":
            try checkKeys(["type", "packing", "bits", "levels", "axis"])
            guard case let .string(packingName)? = object["packing"] else {
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "codebook needs a string \"packing\"")
            }
            guard let packing = CodePacking(rawValue: packingName) else {
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "unknown packing '\(packingName)', and no feature announces it")
            }
            let bits: Int
            switch (packing, object["bits"]) {
            case let (.bits, .int(value)?):
                guard (1...8).contains(value) else {
                    throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "bits \(value) is outside 1…8")
                }
                bits = Int(value)
            case (.bits, _):
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "bits packing needs an integer \"bits\"")
            case (.base3, nil):
                bits = 2
            case (.base3, _):
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "base3 packing has no \"bits\"")
            }
            guard case let .int(levels)? = object["levels"] else {
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "codebook needs an integer \"levels\"")
            }
            let maxLevels = packing == .base3 ? 3 : 1 << bits
            guard levels >= 1, levels <= maxLevels else {
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "levels \(levels) is outside 1…\(maxLevels)")
            }
            var axis: Int?
            switch object["axis"] {
            case nil, .null?: axis = nil
            case let .int(value)?:
                guard value >= 0, value < rank else {
                    throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "axis \(value) is outside 0…\(rank - 1)")
                }
                axis = Int(value)
            default:
                throw .invalidEncoding(tensor: tensor, offset: Layout.manifestOffset, reason: "axis must be an integer or null")
            }
            return .codebook(CodebookLayout(packing: packing, bits: bits, levelCount: Int(levels), axis: axis))
        default:
            return nil
        }
    }
}

/// How codes are packed into bytes (§6.3, §6.4).
public enum CodePacking: String, Sendable, Hashable, CaseIterable {
    /// k-bit codes in one little-endian bit stream.
    case bits
    /// Five 3-level codes per byte.
    case base3
}

/// The shape of a codebook encoding: packing, code width, levels per group and group axis.
public struct CodebookLayout: Equatable, Hashable, Sendable {
    public var packing: CodePacking
    /// Code width k (1…8) for `bits` packing; 2 for `base3` (the width it replaces).
    public var bits: Int
    /// L: levels per group.
    public var levelCount: Int
    /// nil: one table for the tensor; otherwise one table per index along this dimension.
    public var axis: Int?

    public init(packing: CodePacking = .bits, bits: Int, levelCount: Int, axis: Int? = nil) {
        self.packing = packing
        self.bits = packing == .base3 ? 2 : bits
        self.levelCount = levelCount
        self.axis = axis
    }

    /// k-bit codes with up to 2^k levels.
    public static func bits(_ k: Int, levels: Int? = nil, axis: Int? = nil) -> CodebookLayout {
        CodebookLayout(packing: .bits, bits: k, levelCount: levels ?? (1 << k), axis: axis)
    }

    /// Ternary codes packed five per byte.
    public static func base3(levels: Int = 3, axis: Int? = nil) -> CodebookLayout {
        CodebookLayout(packing: .base3, bits: 2, levelCount: levels, axis: axis)
    }

    /// G: the number of level tables.
    public func groupCount(shape: [UInt64]) -> UInt64? {
        guard let axis else { return 1 }
        return axis < shape.count ? shape[axis] : nil
    }

    /// Bytes of packed codes for `count` elements.
    public func packedLength(count: UInt64) -> UInt64? {
        switch packing {
        case .bits:
            guard let bitCount = multiply(count, UInt64(bits)) else { return nil }
            return bitCount / 8 + (bitCount % 8 == 0 ? 0 : 1)
        case .base3:
            return count / 5 + (count % 5 == 0 ? 0 : 1)
        }
    }

    /// Storage bits per weight for the codes alone (1.6 for base3).
    public var bitsPerCode: Double { packing == .base3 ? 1.6 : Double(bits) }

    /// Checks the layout is valid for a tensor of `rank` dimensions (writer side).
    func validate(rank: Int) -> String? {
        if packing == .bits, !(1...8).contains(bits) { return "bits \(bits) is outside 1…8" }
        let maxLevels = packing == .base3 ? 3 : 1 << bits
        if !(1...maxLevels).contains(levelCount) { return "levels \(levelCount) is outside 1…\(maxLevels)" }
        if let axis, !(0..<rank).contains(axis) { return "axis \(axis) is outside 0…\(rank - 1)" }
        return nil
    }
}

func multiply(_ a: UInt64, _ b: UInt64) -> UInt64? {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : product
}

/// The element count of `shape` (1 for a scalar), or nil if it overflows the manifest's integer range.
public func elementCount(_ shape: [UInt64]) -> UInt64? {
    if shape.contains(0) { return 0 }
    var count: UInt64 = 1
    for dim in shape {
        guard let next = multiply(count, dim) else { return nil }
        count = next
    }
    return count <= Layout.maxInteger ? count : nil
}
