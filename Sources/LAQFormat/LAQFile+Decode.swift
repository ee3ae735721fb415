/// The values of a codebook tensor: its layout, level tables and one code per element.
public struct CodebookTensor: Sendable, Equatable {
    public var layout: CodebookLayout
    public var shape: [Int]
    /// G × L levels, row-major (§6.2).
    public var levels: [Float]
    /// One code per element, row-major.
    public var codes: [UInt8]

    public init(layout: CodebookLayout, shape: [Int], levels: [Float], codes: [UInt8]) {
        self.layout = layout
        self.shape = shape
        self.levels = levels
        self.codes = codes
    }

    /// `levels[group(i)][codes[i]]` for every element.
    public func dequantized() -> [Float] {
        [Float](unsafeUninitializedCapacity: codes.count) { output, initialized in
            codes.withUnsafeBufferPointer { codes in
                levels.withUnsafeBufferPointer { levels in
                    layout.dequantize(codes: codes, levels: levels, shape: shape, into: output)
                }
            }
            initialized = codes.count
        }
    }
}

/// A codebook tensor as stored: its layout, level tables and the packed code stream (§6.3–§6.4),
/// for kernels that execute codes without expanding them (about `bitsPerCode` bits per element).
public struct PackedCodebook: Sendable, Equatable {
    public var layout: CodebookLayout
    public var shape: [Int]
    /// G × L levels, row-major (§6.2).
    public var levels: [Float]
    /// The packed codes: `layout.packedLength(count:)` bytes.
    public var packed: [UInt8]
    /// True when this reader checked the sizes and every code (rules 6.3–6.5): a codebook read
    /// from a file; one built in memory is checked by whoever executes it.
    public internal(set) var isChecked = false

    public init(layout: CodebookLayout, shape: [Int], levels: [Float], packed: [UInt8]) {
        self.layout = layout
        self.shape = shape
        self.levels = levels
        self.packed = packed
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The same codebook: whether it was checked does not count.
    public static func == (lhs: PackedCodebook, rhs: PackedCodebook) -> Bool {
        lhs.layout == rhs.layout && lhs.shape == rhs.shape && lhs.levels == rhs.levels && lhs.packed == rhs.packed
    }

    /// One code per element; all zeros when the packed stream is not valid for the layout (a
    /// codebook read from a file was checked; one built in memory may not be).
    public func unpacked() -> [UInt8] {
        var codes = [UInt8](repeating: 0, count: elementCount)
        guard UInt64(packed.count) == layout.packedLength(count: UInt64(elementCount)) else { return codes }
        let valid = packed.withUnsafeBytes { bytes in
            codes.withUnsafeMutableBufferPointer { (try? layout.unpack(bytes, into: $0, tensor: "", offset: 0)) != nil }
        }
        if !valid { return [UInt8](repeating: 0, count: elementCount) }
        return codes
    }

    /// `levels[group(i)][code(i)]` for every element.
    public func dequantized() -> [Float] {
        CodebookTensor(layout: layout, shape: shape, levels: levels, codes: unpacked()).dequantized()
    }
}

extension LAQFile {
    /// The stored bytes of `tensor` (a view into the mapped file).
    func storedBytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer {
        let start = Int(tensor.offset)
        return UnsafeRawBufferPointer(rebasing: storage.bytes[start..<(start + Int(tensor.storedLength))])
    }

    /// Checks the payload's CRC-32 (rule 5.5).
    func checkCRC(_ tensor: TensorInfo) throws(FormatError) {
        let crc = Zlib.crc32(storedBytes(tensor))
        guard crc == tensor.crc32 else {
            throw .tensorChecksumMismatch(tensor: tensor.name, offset: tensor.offset, stored: tensor.crc32, computed: crc)
        }
    }

    /// Calls `body` with the decoded payload of `tensor`: after checking its CRC-32, straight from
    /// the memory map when stored, or inflated into a buffer of exactly `decoded_length` bytes.
    ///
    /// - Throws: ``FormatError/unsupported(tensor:what:)`` when this reader cannot decode it (rule 8.1).
    public func withDecodedPayload<R>(_ tensor: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let reason = tensor.unsupportedReason { throw FormatError.unsupported(tensor: tensor.name, what: reason) }
        return try withCheckedPayload(tensor, body)
    }

    /// The decoded payload of a tensor whose encoding and compression this reader knows, even
    /// when a file-level feature forbids decoding (for `verify`).
    func withCheckedPayload<R>(_ tensor: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        precondition(tensor.isCheckable)
        try checkCRC(tensor)
        guard tensor.elementCount <= limits.maxTensorElements else {
            throw FormatError.tooLarge(tensor: tensor.name, elements: UInt64(tensor.elementCount), limit: UInt64(limits.maxTensorElements))
        }
        // The inflated payload and the float32 values a caller makes of it: refused as an error
        // where the process cannot afford them (a memory limit), not left to abort.
        let needed = (tensor.compression == .zlib ? Int(tensor.decodedLength) : 0) + tensor.elementCount * 4
        guard Memory.canAllocate(needed) else {
            throw FormatError.io(path: path ?? "<memory>", operation: "allocate \(needed) bytes for tensor '\(tensor.name)'", reason: "out of memory")
        }
        switch tensor.compression! {
        case .stored: return try body(storedBytes(tensor))
        case .zlib: return try withInflated(tensor, body)
        }
    }

    /// Inflates a zlib payload into a buffer of exactly `decoded_length` bytes (rules 7.1, 7.2;
    /// the size was bounded by the stored length when the file was opened).
    func withInflated<R>(_ tensor: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(tensor.decodedLength), alignment: 64)
        defer { buffer.deallocate() }
        try Zlib.inflate(storedBytes(tensor), into: buffer, tensor: tensor.name, offset: tensor.offset)
        return try body(UnsafeRawBufferPointer(buffer))
    }

    /// The tensor's values as float32 (codebook tensors dequantized), after every check of §5–§7.
    public func floats(_ name: String) throws -> [Float] {
        guard let tensor = tensor(named: name) else { throw FormatError.noSuchTensor(name) }
        return try floats(tensor)
    }

    public func floats(_ tensor: TensorInfo) throws -> [Float] {
        let count = tensor.elementCount
        switch tensor.encoding {
        case .codebook?:
            return try codebook(tensor).dequantized()
        case let floatEncoding?:
            return try withDecodedPayload(tensor) { payload in
                [Float](unsafeUninitializedCapacity: count) { output, initialized in
                    switch floatEncoding {
                    case .float32:
                        if count > 0 { UnsafeMutableRawBufferPointer(output).copyMemory(from: payload) }
                    case .float16:
                        for index in 0..<count {
                            output[index] = HalfPrecision.float(fromFloat16: payload.loadLE(UInt16.self, at: index * 2))
                        }
                    case .bfloat16:
                        for index in 0..<count {
                            output[index] = HalfPrecision.float(fromBFloat16: payload.loadLE(UInt16.self, at: index * 2))
                        }
                    case .codebook:
                        preconditionFailure("handled above")
                    }
                    initialized = count
                }
            }
        case nil:
            throw FormatError.unsupported(tensor: tensor.name, what: tensor.unsupportedReason ?? "an unknown encoding")
        }
    }

    /// The levels and codes of a codebook tensor, with rule 6.5 checked.
    public func codebook(_ name: String) throws -> CodebookTensor {
        guard let tensor = tensor(named: name) else { throw FormatError.noSuchTensor(name) }
        return try codebook(tensor)
    }

    public func codebook(_ tensor: TensorInfo) throws -> CodebookTensor {
        if let reason = tensor.unsupportedReason { throw FormatError.unsupported(tensor: tensor.name, what: reason) }
        return try checkedCodebook(tensor)
    }

    /// The levels and packed codes of a codebook tensor, with rules 6.3–6.5 checked (the codes
    /// are unpacked once, transiently, to check them).
    public func packedCodebook(_ tensor: TensorInfo) throws -> PackedCodebook {
        if let reason = tensor.unsupportedReason { throw FormatError.unsupported(tensor: tensor.name, what: reason) }
        let (codebook, packed) = try checkedCodebook(tensor, keepPacked: true)
        var result = PackedCodebook(layout: codebook.layout, shape: codebook.shape, levels: codebook.levels, packed: packed ?? [])
        result.isChecked = true
        return result
    }

    func checkedCodebook(_ tensor: TensorInfo) throws -> CodebookTensor {
        try checkedCodebook(tensor, keepPacked: false).0
    }

    /// Decodes and checks a codebook tensor whose encoding this reader knows (rules 6.3–6.5);
    /// with `keepPacked`, also returns a copy of the packed code stream.
    func checkedCodebook(_ tensor: TensorInfo, keepPacked: Bool) throws -> (CodebookTensor, [UInt8]?) {
        guard case let .codebook(layout)? = tensor.encoding else {
            throw FormatError.invalidArgument("tensor '\(tensor.name)' is \(tensor.encodingSummary), not a codebook")
        }
        let count = tensor.elementCount
        return try withCheckedPayload(tensor) { payload in
            let levelCount = Int(layout.groupCount(shape: tensor.shape.map { UInt64($0) })!) * layout.levelCount
            let levels = [Float](unsafeUninitializedCapacity: levelCount) { output, initialized in
                if levelCount > 0 {
                    UnsafeMutableRawBufferPointer(output).copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[0..<(levelCount * 4)]))
                }
                initialized = levelCount
            }
            if let bad = levels.firstIndex(where: { !$0.isFinite }) {
                throw FormatError.invalidLevels(tensor: tensor.name, offset: tensor.offset, index: bad)
            }
            let packed = UnsafeRawBufferPointer(rebasing: payload[(levelCount * 4)...])
            var failure: FormatError?
            let codes = [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
                do throws(FormatError) {
                    try layout.unpack(
                        packed, into: UnsafeMutableBufferPointer(rebasing: output[0..<count]), tensor: tensor.name, offset: tensor.offset)
                } catch {
                    failure = error
                    output.initialize(repeating: 0)
                }
                initialized = count
            }
            if let failure { throw failure }
            return (CodebookTensor(layout: layout, shape: tensor.shape, levels: levels, codes: keepPacked ? [] : codes),
                    keepPacked ? [UInt8](packed) : nil)
        }
    }
}
