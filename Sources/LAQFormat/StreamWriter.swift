/// Writes a `.laq` file from tensors that arrive one at a time and are not kept (`laq import`
/// of a model larger than the memory it should take).
///
/// Each tensor is checked, encoded, compressed and checksummed when added, and its stored bytes
/// are appended to a nameless spool file beside the destination (``SpoolFile``): memory holds
/// the tensor being added, not the model. ``finish(order:)`` lays out the manifest, which must
/// precede the payloads and holds their lengths and checksums, then copies the spool into the
/// file in the kernel while another core hashes it, atomically (spec/FORMAT.md §10). The file
/// is byte for byte what ``LAQWriter`` writes for the same tensors in the same order.
///
/// The destination's directory needs room for the file twice until it is written.
public final class LAQStreamWriter {
    public var model: ModelInfo
    public var provenance: [ProvenanceRecord]
    public var metadata: [String: JSONValue]
    public var requiredFeatures: [String]
    public let path: String
    public let options: WriteOptions

    private let spool: SpoolFile
    private var heads: [LAQWriter.TensorHeadAndPayload] = []
    private var indexByName: [String: Int] = [:]

    /// Starts a file to be written to `path` (nothing appears there before ``finish(order:)``).
    public init(
        path: String, model: ModelInfo = ModelInfo(), provenance: [ProvenanceRecord] = [], metadata: [String: JSONValue] = [:],
        requiredFeatures: [String] = [], options: WriteOptions = WriteOptions()
    ) throws {
        self.path = path
        self.model = model
        self.provenance = provenance
        self.metadata = metadata
        self.requiredFeatures = requiredFeatures
        self.options = options
        spool = try SpoolFile(beside: path)
    }

    /// Checks, encodes and stores `record`, whose values are then no longer needed.
    ///
    /// - Throws: ``FormatError/invalidArgument(_:)`` naming the tensor and the problem, or an I/O
    ///   error of the spool file.
    public func add(_ record: TensorRecord) throws {
        try LAQWriter.check(record) { name in indexByName[name].map { heads[$0].head.role } }
        let stored = LAQWriter.store(record, options: options)
        let offset = try stored.withStoredBytes { try spool.append($0) }
        indexByName[record.name] = heads.count
        heads.append(.init(head: record.head, payload: stored.summary, spoolOffset: offset))
    }

    /// Writes the file atomically with the tensors in `order` (their names; nil: as added). The
    /// order must name every added tensor once, and an optimizer slot after its weight.
    public func finish(order: [String]? = nil) throws {
        var tensors = heads
        if let order {
            guard order.count == heads.count, Set(order).count == order.count else {
                throw FormatError.invalidArgument("the tensor order names \(order.count) tensors (\(Set(order).count) distinct), \(heads.count) were added")
            }
            tensors = try order.map { name in
                guard let index = indexByName[name] else { throw FormatError.invalidArgument("the tensor order names '\(name)', which was not added") }
                return heads[index]
            }
            var placed: Set<String> = []
            for tensor in tensors {
                if case let .optimizer(weight, _) = tensor.head.role, !placed.contains(weight) {
                    throw FormatError.invalidArgument("tensor '\(tensor.head.name)': the order puts it before its weight '\(weight)'")
                }
                placed.insert(tensor.head.name)
            }
        }
        var manifest = Manifest()
        manifest.requiredFeatures = requiredFeatures
        manifest.model = model
        manifest.provenance = provenance
        manifest.metadata = metadata
        let (header, manifestBytes) = try LAQWriter.layout(manifest, tensors: tensors.map { ($0.head, $0.payload) })
        let payloads = tensors.map { LAQWriter.Prepared.PayloadBytes.spool(spool, offset: $0.spoolOffset, count: $0.payload.storedLength) }
        try LAQWriter.Prepared(header: header, manifestBytes: manifestBytes, payloads: payloads).write(to: path)
    }
}

extension LAQWriter {
    /// A streamed tensor: its manifest entry but for the offset, and where its bytes are in the spool.
    struct TensorHeadAndPayload {
        var head: TensorHead
        var payload: PayloadSummary
        var spoolOffset: Int64
    }
}
