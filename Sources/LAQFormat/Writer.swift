import Dispatch

/// A tensor to write: its name, shape, role and values in the chosen encoding.
public struct TensorRecord: Sendable {
    public var name: String
    /// Row-major shape, outermost first.
    public var shape: [Int]
    /// Optional name per dimension (`["in", "out"]`).
    public var axes: [String]?
    /// The logical dtype the model uses (`float32` unless the source said otherwise).
    public var dtype: String
    public var role: TensorRole
    /// Features a reader needs to decode this tensor (§8); empty for every 1.0 encoding.
    public var features: [String]
    public var data: TensorData

    public init(
        name: String, shape: [Int], axes: [String]? = nil, dtype: String = "float32",
        role: TensorRole = .weight, features: [String] = [], data: TensorData
    ) {
        self.name = name
        self.shape = shape
        self.axes = axes
        self.dtype = dtype
        self.role = role
        self.features = features
        self.data = data
    }
}

extension TensorRecord {
    /// The record without its values: what the manifest says of it besides its payload.
    var head: TensorHead {
        let encoding: [String: JSONValue]
        switch data {
        case let .float(_, storage): encoding = storage.encoding.json
        case let .codebook(layout, _, _): encoding = Encoding.codebook(layout).json
        case let .opaque(json, _): encoding = json
        }
        return TensorHead(name: name, shape: shape, axes: axes, dtype: dtype, role: role, features: features, encoding: encoding)
    }
}

/// A tensor's manifest entry but for its payload's place, length and checksum.
struct TensorHead {
    var name: String
    var shape: [Int]
    var axes: [String]?
    var dtype: String
    var role: TensorRole
    var features: [String]
    var encoding: [String: JSONValue]
}

/// A tensor's values, as the writer receives them.
public enum TensorData: Sendable {
    /// float32 values stored as float32, float16 or bfloat16 (rounded to nearest even).
    case float([Float], as: FloatStorage)
    /// One code per element (row-major) and the G × L level table (§6.2).
    case codebook(CodebookLayout, levels: [Float], codes: [UInt8])
    /// A decoded payload in an encoding given as its JSON object, written unchanged. This carries
    /// tensors through that this laq cannot decode (§8), and lets tests craft future encodings.
    case opaque(encoding: [String: JSONValue], payload: [UInt8])
}

/// The float encodings.
public enum FloatStorage: String, Sendable, CaseIterable {
    case float32, float16, bfloat16

    var encoding: Encoding {
        switch self {
        case .float32: .float32
        case .float16: .float16
        case .bfloat16: .bfloat16
        }
    }
}

/// Writer options.
public struct WriteOptions: Sendable {
    /// When to keep a zlib payload.
    public enum CompressionPolicy: Sendable, Equatable {
        /// Never compress: every payload can be memory-mapped.
        case none
        /// Keep zlib when it saves at least this fraction of the payload (0: whenever smaller, §7).
        /// With a fraction above 0, payloads of 256 KiB or more are first probed on eight 16 KiB
        /// windows spread over them, and not deflated when these save less than the fraction.
        case zlib(minimumSaving: Double)

        /// Keeps zlib whenever it is smaller (every payload is deflated once).
        public static let smallest = CompressionPolicy.zlib(minimumSaving: 0)
        /// Keeps zlib when it saves at least 10%: quantized codes and sparse tensors are
        /// compressed; float weights, which deflate by a few percent, stay stored and mappable,
        /// and are written at memory speed.
        public static let balanced = CompressionPolicy.zlib(minimumSaving: 0.1)
    }

    public var compression: CompressionPolicy = .zlib(minimumSaving: 0)
    /// zlib level; fixed so that files are reproducible (§9).
    public var zlibLevel: Int32 = 6

    public init(compression: CompressionPolicy = .zlib(minimumSaving: 0)) {
        self.compression = compression
    }
}

/// Builds `.laq` files (spec/FORMAT.md): collects tensors, then writes header, manifest,
/// aligned payloads and trailer in one pass, atomically when writing to a path.
public struct LAQWriter: Sendable {
    public var model: ModelInfo
    public var provenance: [ProvenanceRecord]
    public var metadata: [String: JSONValue]
    public var requiredFeatures: [String]
    public private(set) var records: [TensorRecord] = []
    public var options: WriteOptions

    public init(
        model: ModelInfo = ModelInfo(), provenance: [ProvenanceRecord] = [], metadata: [String: JSONValue] = [:],
        requiredFeatures: [String] = [], options: WriteOptions = WriteOptions()
    ) {
        self.model = model
        self.provenance = provenance
        self.metadata = metadata
        self.requiredFeatures = requiredFeatures
        self.options = options
    }

    /// Adds a tensor after checking it against the format's rules.
    ///
    /// - Throws: ``FormatError/invalidArgument(_:)`` naming the tensor and the problem.
    public mutating func add(_ record: TensorRecord) throws {
        let records = self.records
        try Self.check(record) { name in records.first(where: { $0.name == name })?.role }
        self.records.append(record)
    }

    /// Writes the file to `path` atomically (§10).
    public func write(to path: String) throws {
        try prepare().write(to: path)
    }

    /// The whole file as bytes.
    public func encoded() throws -> [UInt8] {
        try prepare().encoded()
    }

    // MARK: - Preparation

    /// A laid-out file: its header and manifest, and where each payload's stored bytes are.
    struct Prepared: Sendable {
        var header: Header
        var manifestBytes: [UInt8]
        var payloads: [PayloadBytes]

        /// Where a payload's stored bytes are: in memory, or in a spool file (``LAQStreamWriter``).
        enum PayloadBytes: Sendable {
            case memory(StoredPayload)
            case spool(SpoolFile, offset: Int64, count: Int)
        }

        func write(to path: String) throws {
            try AtomicFile.write(to: path) { sink in
                try emit(put: { try sink.write($0) }, copy: { spool, offset, count in try sink.copy(from: spool, offset: offset, count: count) })
            }
        }

        func encoded() throws -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(header.fileSize))
            try emit(put: { bytes.append(contentsOf: $0) }, copy: { spool, offset, count in
                try spool.read(offset: offset, count: count) { bytes.append(contentsOf: $0) }
            })
            return bytes
        }

        /// Emits every byte of the file in order: `put` passes bytes, `copy` a spool's range. The
        /// bytes before the trailer are hashed on another core while they are written (SHA-256
        /// takes about as long as the writes), then the digest and end magic close the file.
        func emit(put: (UnsafeRawBufferPointer) throws -> Void, copy: (SpoolFile, Int64, Int) throws -> Void) throws {
            let digest = BackgroundValue { () -> Result<[UInt8], any Error> in
                let hasher = SHA256()
                do {
                    try self.body(put: { hasher.update($0) }, copy: { spool, offset, count in
                        try spool.read(offset: offset, count: count) { hasher.update($0) }
                    })
                } catch { return .failure(error) }
                return .success(hasher.finalize())
            }
            // Joined before returning or throwing: the hashing thread reads the payloads.
            defer { _ = digest.wait() }
            try body(put: put, copy: copy)
            try digest.wait().get().withUnsafeBytes { try put($0) }
            try Layout.endMagic.withUnsafeBytes { try put($0) }
        }

        /// Every byte before the trailer: header, manifest, padding, aligned payloads.
        func body(put: (UnsafeRawBufferPointer) throws -> Void, copy: (SpoolFile, Int64, Int) throws -> Void) throws {
            let zeros = [UInt8](repeating: 0, count: Layout.alignment)
            func pad(_ count: Int) throws {
                if count > 0 { try zeros.withUnsafeBytes { try put(UnsafeRawBufferPointer(rebasing: $0[0..<count])) } }
            }
            try header.encoded().withUnsafeBytes { try put($0) }
            try manifestBytes.withUnsafeBytes { try put($0) }
            var position = UInt64(Layout.headerSize + manifestBytes.count)
            try pad(Int(header.dataOffset - position))
            position = header.dataOffset
            for payload in payloads {
                switch payload {
                case let .memory(stored):
                    try stored.withStoredBytes { try put($0) }
                    position += UInt64(stored.storedLength)
                case let .spool(spool, offset, count):
                    try copy(spool, offset, count)
                    position += UInt64(count)
                }
                let aligned = Layout.align(position)!
                try pad(Int(aligned - position))
                position = aligned
            }
            precondition(position == header.trailerOffset)
        }
    }

    /// A payload ready to store: its decoded form, and the zlib stream when that was kept.
    struct StoredPayload: @unchecked Sendable {
        var decoded: DecodedBytes
        var compressed: [UInt8]?
        /// CRC-32 of the stored bytes, computed once (the manifest is laid out more than once).
        var crc32: UInt32 = 0
        var storedLength: Int { compressed?.count ?? decoded.count }

        /// What the manifest says of it.
        var summary: PayloadSummary {
            PayloadSummary(storedLength: storedLength, decodedLength: decoded.count, compressed: compressed != nil, crc32: crc32)
        }

        func withStoredBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            if let compressed { return try compressed.withUnsafeBytes(body) }
            return try decoded.withBytes(body)
        }
    }

    /// What the manifest says of a stored payload, besides where it is.
    struct PayloadSummary {
        var storedLength: Int
        var decodedLength: Int
        var compressed: Bool
        var crc32: UInt32
    }

    /// Decoded payload bytes; float32 tensors are written straight from their arrays.
    enum DecodedBytes {
        case bytes([UInt8])
        case floats([Float])

        var count: Int {
            switch self {
            case let .bytes(bytes): bytes.count
            case let .floats(floats): floats.count * 4
            }
        }

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case let .bytes(bytes): try bytes.withUnsafeBytes(body)
            case let .floats(floats): try floats.withUnsafeBytes(body)
            }
        }
    }

    /// Encodes and compresses every payload; tensors are independent, so this uses every core.
    func storePayloads() -> [StoredPayload] {
        let records = self.records
        let options = self.options
        let results = ResultSlots<StoredPayload>(count: records.count)
        DispatchQueue.concurrentPerform(iterations: records.count) { index in
            results[index] = Self.store(records[index], options: options)
        }
        return results.values(count: records.count)
    }

    func prepare() throws -> Prepared {
        let payloads = storePayloads()
        var manifest = Manifest()
        manifest.requiredFeatures = requiredFeatures
        manifest.model = model
        manifest.provenance = provenance
        manifest.metadata = metadata
        let (header, manifestBytes) = try Self.layout(manifest, tensors: zip(records, payloads).map { ($0.head, $1.summary) })
        return Prepared(header: header, manifestBytes: manifestBytes, payloads: payloads.map { .memory($0) })
    }

    /// The header and manifest bytes of a file holding `manifest` (its tensor table is filled
    /// here) and these tensors' payloads in order.
    static func layout(_ manifest: Manifest, tensors: [(head: TensorHead, payload: PayloadSummary)]) throws -> (Header, [UInt8]) {
        var manifest = manifest
        // What every reader checks (rule 4.1), checked before anything is written.
        guard tensors.count <= Layout.maxTensorCount else {
            throw FormatError.tooManyTensors(count: tensors.count, limit: Layout.maxTensorCount)
        }
        // Offsets are absolute and the data section starts after the manifest, whose length
        // depends on the offsets' digits: iterate to the fixed point (monotone, a few rounds).
        var dataOffset = UInt64(Layout.headerSize)
        var manifestBytes: [UInt8] = []
        var dataEnd: UInt64 = 0
        while true {
            var position = dataOffset
            manifest.tensors = tensors.map { head, payload in
                let entry = Self.entry(head, payload, offset: position)
                position = Layout.align(position + UInt64(payload.storedLength))!
                return entry
            }
            dataEnd = position
            manifestBytes = try manifest.canonicalJSON()
            guard UInt64(manifestBytes.count) <= Layout.maxManifestLength else {
                throw FormatError.manifestTooLarge(length: UInt64(manifestBytes.count), limit: Layout.maxManifestLength)
            }
            try manifestBytes.withUnsafeBytes { try LAQFile.checkDepth($0, limit: Layout.maxManifestDepth) }
            let needed = Layout.align(UInt64(Layout.headerSize + manifestBytes.count))!
            if needed == dataOffset { break }
            dataOffset = max(needed, dataOffset + UInt64(Layout.alignment))
        }
        let header = Header(
            manifestLength: UInt64(manifestBytes.count), dataOffset: dataOffset, dataLength: dataEnd - dataOffset,
            manifestCRC32: Zlib.crc32(manifestBytes))
        return (header, manifestBytes)
    }

    static func store(_ record: TensorRecord, options: WriteOptions) -> StoredPayload {
        let decoded: DecodedBytes
        switch record.data {
        case let .float(values, storage):
            switch storage {
            case .float32:
                decoded = .floats(values)
            case .float16:
                decoded = .bytes(halfBytes(values, HalfPrecision.float16Bits))
            case .bfloat16:
                decoded = .bytes(halfBytes(values, HalfPrecision.bfloat16Bits))
            }
        case let .codebook(layout, levels, codes):
            var bytes = [UInt8]()
            bytes.reserveCapacity(levels.count * 4 + Int(layout.packedLength(count: UInt64(codes.count))!))
            levels.withUnsafeBytes { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: layout.pack(codes))
            decoded = .bytes(bytes)
        case let .opaque(_, payload):
            decoded = .bytes(payload)
        }
        var compressed: [UInt8]?
        if case let .zlib(minimumSaving) = options.compression, decoded.count > 0 {
            let limit = Int((Double(decoded.count) * (1 - minimumSaving)).rounded(.down))
            compressed = decoded.withBytes { bytes -> [UInt8]? in
                // With a required saving, a large payload is probed first: when windows spread over
                // it do not deflate by the required fraction, the whole payload is not deflated
                // (float weights save 5-9%), which would cost ~40 MB/s per core. Payloads within a
                // few tenths of a point of the threshold can go either way.
                if minimumSaving > 0, bytes.count >= Self.probeThreshold, !Self.probe(bytes, saving: minimumSaving, level: options.zlibLevel) {
                    return nil
                }
                return Zlib.compress(bytes, level: options.zlibLevel, limit: min(limit, decoded.count))
            }
        }
        var payload = StoredPayload(decoded: decoded, compressed: compressed)
        payload.crc32 = payload.withStoredBytes { Zlib.crc32($0) }
        return payload
    }

    // 8 windows of 16 KiB: on real weights and Adam moments within 0.002 of the whole payload's
    // saving (0.08 under it on moments with runs of dead units, still far above 10%); deflating
    // them costs a fifth of 4 windows of 64 KiB (zlib's time per byte grows with the window).
    static let probeBytes = 16 << 10
    static let probeWindows = 8
    static let probeThreshold = 256 << 10

    /// Whether `probeWindows` windows of `probeBytes`, evenly spaced over `bytes`, deflate
    /// together by at least the fraction `saving`.
    static func probe(_ bytes: UnsafeRawBufferPointer, saving: Double, level: Int32) -> Bool {
        let stride = (bytes.count - probeBytes) / (probeWindows - 1)
        // The windows deflate on every core (a streamed import stores one payload at a time).
        let sizes = ResultSlots<Int>(count: probeWindows)
        let base = UInt(bitPattern: bytes.baseAddress)
        DispatchQueue.concurrentPerform(iterations: probeWindows) { window in
            let sample = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: base)! + window * stride, count: probeBytes)
            // Not smaller than the window: count it whole (the payload will not deflate there).
            sizes[window] = Zlib.compress(sample, level: level, limit: probeBytes)?.count ?? probeBytes
        }
        let compressed = sizes.values(count: probeWindows).reduce(0, +)
        return Double(compressed) <= Double(probeWindows * probeBytes) * (1 - saving)
    }

    static func halfBytes(_ values: [Float], _ convert: (Float) -> UInt16) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: values.count * 2) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: convert(value).littleEndian, toByteOffset: index * 2, as: UInt16.self)
            }
            initialized = values.count * 2
        }
    }

    static func entry(_ head: TensorHead, _ payload: PayloadSummary, offset: UInt64) -> TensorEntry {
        var role: String?
        var of: String?
        var slot: String?
        if case let .optimizer(weight, slotName) = head.role {
            role = "optimizer"
            of = weight
            slot = slotName
        }
        return TensorEntry(
            name: head.name, shape: head.shape.map { UInt64($0) }, axes: head.axes, dtype: head.dtype,
            encoding: head.encoding, compression: payload.compressed ? "zlib" : "none", offset: offset,
            storedLength: UInt64(payload.storedLength), decodedLength: UInt64(payload.decodedLength),
            crc32: payload.crc32, role: role, of: of, slot: slot,
            features: head.features.isEmpty ? nil : head.features)
    }

    // MARK: - Checks

    /// Checks `record` against the format's rules; `roleOf` gives the role of a tensor already
    /// added under a name (nil: none).
    static func check(_ record: TensorRecord, roleOf: (String) -> TensorRole?) throws {
        func fail(_ reason: String) -> FormatError { .invalidArgument("tensor '\(record.name)': \(reason)") }
        if let reason = TensorRules.nameProblem(record.name) { throw fail(reason) }
        // Canonical equivalence (Swift's String equality and hashing), as the reader (whose
        // duplicateName points into a file's manifest).
        if roleOf(record.name) != nil { throw fail("the name is already in the file") }
        guard Layout.dtypes.contains(record.dtype) else { throw fail("dtype '\(record.dtype)' is not one of \(Layout.dtypes.sorted())") }
        guard record.shape.count <= Layout.maxRank else { throw fail("rank \(record.shape.count) exceeds \(Layout.maxRank)") }
        guard record.shape.allSatisfy({ $0 >= 0 && UInt64($0) <= Layout.maxInteger }) else {
            throw fail("dimensions must be in 0…2^53 − 1, got \(record.shape)")
        }
        guard let count = elementCount(record.shape.map { UInt64($0) }) else { throw fail("element count overflows") }
        if let axes = record.axes, axes.count != record.shape.count {
            throw fail("\(axes.count) axis names for \(record.shape.count) dimensions")
        }
        switch record.data {
        case let .float(values, _):
            guard values.count == Int(count) else { throw fail("\(values.count) values for shape \(record.shape)") }
        case let .codebook(layout, levels, codes):
            if let problem = layout.validate(rank: record.shape.count) { throw fail(problem) }
            guard codes.count == Int(count) else { throw fail("\(codes.count) codes for shape \(record.shape)") }
            let groups = Int(layout.groupCount(shape: record.shape.map { UInt64($0) })!)
            guard levels.count == groups * layout.levelCount else {
                throw fail("\(levels.count) levels, expected \(groups) groups × \(layout.levelCount)")
            }
            guard levels.allSatisfy({ $0.isFinite }) else { throw fail("levels must be finite") }
            if let bad = codes.firstIndex(where: { Int($0) >= layout.levelCount }) {
                throw fail("code \(codes[bad]) at element \(bad) is ≥ \(layout.levelCount) levels")
            }
        case let .opaque(encoding, payload):
            guard case .string? = encoding["type"] else { throw fail("opaque encoding needs a string \"type\"") }
            if let known = try? Encoding.parse(encoding, rank: record.shape.count, tensor: record.name) {
                let expected = known.decodedLength(shape: record.shape.map { UInt64($0) }, count: count)
                guard expected == UInt64(payload.count) else {
                    throw fail("payload is \(payload.count) bytes, the encoding implies \(expected.map(String.init) ?? "overflow")")
                }
            }
        }
        if case let .optimizer(weight, slot) = record.role {
            guard !slot.isEmpty else { throw fail("optimizer slot name is empty") }
            guard roleOf(weight) == .weight else {
                throw fail("optimizer slot of '\(weight)', which has not been added as a weight")
            }
        }
    }
}

/// Rules on tensor table entries shared by the writer and the reader.
enum TensorRules {
    /// Why `name` breaks rule 5.1, or nil.
    static func nameProblem(_ name: String) -> String? {
        let bytes = name.utf8.count
        if bytes == 0 { return "empty name" }
        if bytes > Layout.maxNameBytes { return "name is \(bytes) bytes, longer than \(Layout.maxNameBytes)" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "name contains a control character"
        }
        return nil
    }
}

/// Fixed slots that concurrent iterations fill, each its own index.
///
/// Invariant (why this is Sendable): each index is written by exactly one iteration, and the
/// slots are read only after all iterations have finished.
final class ResultSlots<T>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<T?>

    init(count: Int) {
        storage = .allocate(capacity: max(count, 1))
        storage.initialize(repeating: nil)
    }

    deinit {
        _ = storage.deinitialize()
        storage.deallocate()
    }

    subscript(index: Int) -> T? {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    func values(count: Int) -> [T] { (0..<count).map { storage[$0]! } }
}
