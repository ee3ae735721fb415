import Dispatch

/// The result of ``LAQFile/verify()``: every problem found, and what was checked.
public struct VerificationReport: Sendable {
    public struct Problem: Sendable, Equatable {
        /// The spec rule broken, e.g. `"5.5"`.
        public var rule: String?
        public var tensor: String?
        /// The file byte offset the problem points at, when known (``FormatError/offset``).
        public var offset: UInt64?
        public var message: String
        public var error: FormatError

        public init(_ error: FormatError, tensor: String? = nil) {
            self.rule = error.rule
            self.tensor = tensor
            self.offset = error.offset
            self.message = error.description
            self.error = error
        }
    }

    public var problems: [Problem] = []
    /// Tensors this reader cannot decode (not problems: rule 8.1); their checksums were checked.
    public var undecodable: [String] = []
    /// Float tensors holding NaN or infinity, with how many values (not problems: the format
    /// stores any float; a model computing with them gives NaN; codebook levels must be finite).
    public var nonFinite: [(tensor: String, count: Int)] = []
    public var tensorsChecked = 0
    public var bytesChecked: UInt64 = 0
    /// The SHA-256 the file's content hashes to, when the file could be opened.
    public var sha256: String?
    /// False when the file could not be opened: `problems` then holds the one error that stopped it.
    public internal(set) var opened = false
    public var isValid: Bool { problems.isEmpty }

    /// The exit status `laq verify` ends with for this report: 0 valid; 1 invalid (the file
    /// breaks the format, whether or not it could be opened); 2 when it could not be read at all
    /// (an I/O error: missing file, permission), which says nothing about the file's validity.
    public var exitStatus: Int32 {
        if isValid { return 0 }
        if !opened, let problem = problems.first, problem.error.exitStatus == 2 { return 2 }
        return 1
    }

    /// `laq verify --json`: the file (`path` as given; `file` when it opened), whether it is
    /// valid, what was checked, and every problem with its spec rule.
    public func json(path: String, file: LAQFile?) -> JSONValue {
        [
            "file": .string(path),
            "valid": .bool(isValid),
            "version": file.map { .string("\($0.header.major).\($0.header.minor)") } ?? .null,
            "sha256": sha256.map { .string($0) } ?? .null,
            "bytes": .int(Int64(bytesChecked)),
            "tensors": .int(Int64(tensorsChecked)),
            "undecodable": .array(undecodable.map { .string($0) }),
            "non_finite": .array(nonFinite.map { ["tensor": .string($0.tensor), "count": .int(Int64($0.count))] }),
            "problems": .array(problems.map { problem in
                [
                    "rule": problem.rule.map { .string($0) } ?? .null,
                    "tensor": problem.tensor.map { .string($0) } ?? .null,
                    "offset": problem.offset.map { .int(Int64($0)) } ?? .null,
                    "message": .string(problem.message),
                ]
            }),
        ]
    }
}

extension LAQFile {
    /// Opens and fully verifies the file at `path`; never throws: an unreadable file is a report
    /// with one problem. `laq verify` is this, then ``VerificationReport/exitStatus``.
    public static func verify(path: String) -> (file: LAQFile?, report: VerificationReport) {
        verify(opening: { try LAQFile(path: path) }, describedAs: path)
    }

    /// ``verify(path:)`` for a file held in memory (the bytes are copied): the same checks and
    /// the same report, so a test can take many damaged files through `laq verify`'s decision
    /// without writing each one to disk.
    public static func verify(bytes: [UInt8]) -> (file: LAQFile?, report: VerificationReport) {
        verify(opening: { try LAQFile(bytes: bytes) }, describedAs: "(memory)")
    }

    private static func verify(opening open: () throws -> LAQFile, describedAs path: String) -> (file: LAQFile?, report: VerificationReport) {
        do {
            let file = try open()
            return (file, file.verify())
        } catch let error as FormatError {
            var report = VerificationReport()
            report.problems = [.init(error)]
            return (nil, report)
        } catch {
            var report = VerificationReport()
            report.problems = [.init(.io(path: path, operation: "open", reason: "\(error)"))]
            return (nil, report)
        }
    }

    /// Checks what opening did not: the whole-file SHA-256 (rule 3.2), every payload's CRC-32
    /// (5.5), inflated sizes (7.2), and codes and levels of every decodable codebook tensor (6.3–6.5).
    ///
    /// The SHA-256 runs on one thread while the payloads are checked on another.
    public func verify() -> VerificationReport {
        var report = VerificationReport()
        report.opened = true
        let digest = ResultSlots<[UInt8]>(count: 1)
        let tensorProblems = ResultSlots<[VerificationReport.Problem]>(count: 1)
        let nonFinite = ResultSlots<[(tensor: String, count: Int)]>(count: 1)
        DispatchQueue.concurrentPerform(iterations: 2) { job in
            if job == 0 {
                digest[0] = SHA256.hash(UnsafeRawBufferPointer(rebasing: storage.bytes[0..<Int(header.trailerOffset)]))
            } else {
                var problems: [VerificationReport.Problem] = []
                var counts: [(tensor: String, count: Int)] = []
                for tensor in tensors {
                    let (found, count) = checkPayload(tensor)
                    problems += found
                    if count > 0 { counts.append((tensor.name, count)) }
                }
                tensorProblems[0] = problems
                nonFinite[0] = counts
            }
        }
        let computed = digest[0]!
        report.sha256 = SHA256.hex(computed)
        if computed != storedSHA256 {
            report.problems.append(.init(.fileChecksumMismatch(stored: SHA256.hex(storedSHA256), computed: SHA256.hex(computed))))
        }
        report.problems += tensorProblems[0]!
        report.nonFinite = nonFinite[0]!
        report.undecodable = tensors.filter { !$0.isDecodable }.map(\.name)
        report.tensorsChecked = tensors.count
        report.bytesChecked = header.fileSize
        return report
    }

    /// The problems of a tensor's payload, and how many of its float values are NaN or infinite,
    /// counted in the same pass over the checked bytes.
    private func checkPayload(_ tensor: TensorInfo) -> ([VerificationReport.Problem], Int) {
        do {
            guard tensor.isCheckable else {
                // Unknown encoding, compression or feature: the CRC, and for an unknown encoding
                // with known zlib compression, the inflated size (rule 7.2).
                try checkCRC(tensor)
                if tensor.encoding == nil, tensor.compression == .zlib, !tensor.features.contains(where: { !Self.knownFeatures.contains($0) }) {
                    try withInflated(tensor) { _ in }
                }
                return ([], 0)
            }
            switch tensor.encoding {
            case .codebook?:
                _ = try checkedCodebook(tensor)  // its levels are finite, or it is a problem
                return ([], 0)
            default:
                // Float payloads have no invalid values: the CRC and, for zlib, the inflated size.
                // A value is not finite when its exponent bits are all set.
                let wide = tensor.encoding == .float32
                let mask: UInt32 = wide ? 0x7F80_0000 : tensor.encoding == .float16 ? 0x7C00 : 0x7F80
                return ([], try withCheckedPayload(tensor) { bytes in
                    var count = 0
                    if wide {
                        for index in 0..<(bytes.count / 4) where bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self) & mask == mask { count += 1 }
                    } else {
                        for index in 0..<(bytes.count / 2) where UInt32(bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)) & mask == mask { count += 1 }
                    }
                    return count
                })
            }
        } catch let error as FormatError {
            return ([.init(error, tensor: tensor.name)], 0)
        } catch {
            return ([.init(.invalidArgument("\(error)"), tensor: tensor.name)], 0)
        }
    }
}
