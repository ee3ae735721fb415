import CLAQZlib
import Foundation
import LAQExamples
import LAQFormat
import LAQTestSupport
import Testing

/// One crafted bad file per error case of spec/FORMAT.md §11, each asserting the exact error.
@Suite struct BadFileTests {
    let valid: [UInt8]
    let surgeon: FileSurgeon

    init() throws {
        valid = try ExampleModels.everyEncoding().encoded()
        surgeon = FileSurgeon(valid)
    }

    func expectOpen(_ bytes: [UInt8], throws error: FormatError, limits: ReaderLimits = ReaderLimits(),
                    sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: error, sourceLocation: sourceLocation) { _ = try LAQFile(bytes: bytes, limits: limits) }
    }

    /// Opens fine, but `verify` reports exactly `error`.
    func expectVerify(_ bytes: [UInt8], finds error: FormatError, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = try LAQFile(bytes: bytes)
        let report = file.verify()
        #expect(report.problems.map(\.error) == [error], sourceLocation: sourceLocation)
    }

    /// Where the payload of `name` starts in `bytes` (payload errors carry it).
    func payloadOffset(_ name: String, in bytes: [UInt8]) throws -> UInt64 {
        try #require(try LAQFile(bytes: bytes).tensor(named: name)).offset
    }

    func tensorIndex(_ name: String) -> Int {
        (surgeon.manifest["tensors"] as! [[String: Any]]).firstIndex { $0["name"] as? String == name }!
    }

    func editTensor(_ name: String, _ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
        let index = tensorIndex(name)
        return { manifest in
            var tensors = manifest["tensors"] as! [[String: Any]]
            edit(&tensors[index])
            manifest["tensors"] = tensors
        }
    }

    @Test func theBaseFileIsValid() throws {
        #expect(try LAQFile(bytes: valid).verify().isValid)
        #expect(try LAQFile(bytes: surgeon.rebuild()).verify().isValid)  // the surgeon itself changes nothing
    }

    // MARK: §2 header

    @Test("2.1 truncated below header + trailer") func tooShort() {
        expectOpen(Array(valid[0..<100]), throws: .truncated(needed: 104, actual: 100))
        expectOpen([], throws: .truncated(needed: 104, actual: 0))
    }

    @Test("2.2 bad magic") func badMagic() {
        var bytes = valid
        bytes[1] = UInt8(ascii: "G")
        expectOpen(bytes, throws: .badMagic(found: [0x89, 0x47, 0x41, 0x51, 0x0D, 0x0A, 0x1A, 0x0A]))
    }

    @Test("2.2 CRLF → LF damage is caught by the magic") func textModeDamage() {
        var bytes = valid
        bytes.remove(at: 4)  // "\r\n" → "\n"
        expectOpen(bytes, throws: .badMagic(found: [0x89, 0x4C, 0x41, 0x51, 0x0A, 0x1A, 0x0A, 0x01]))
    }

    @Test("2.3 version 0, a future major, a byte-swapped major") func versions() {
        var bytes = valid
        bytes[8] = 0
        expectOpen(bytes, throws: .unsupportedVersion(major: 0, minor: 0, supportedMajor: 1))
        bytes[8] = 2
        expectOpen(bytes, throws: .unsupportedVersion(major: 2, minor: 0, supportedMajor: 1))
        bytes[8] = 0
        bytes[9] = 1
        expectOpen(bytes, throws: .byteSwapped)
    }

    @Test("2.3 the future-major error names both versions") func futureMajorMessage() {
        let message = FormatError.unsupportedVersion(major: 2, minor: 3, supportedMajor: 1).description
        #expect(message.contains("2.3") && message.contains("major version 1"))
    }

    @Test("2.4 an unknown minor version is accepted") func futureMinor() throws {
        var bytes = valid
        bytes[10] = 7
        FileSurgeon.fixHeaderCRC(&bytes)
        FileSurgeon.fixSHA(&bytes)
        let file = try LAQFile(bytes: bytes)
        #expect(file.header.minor == 7)
        #expect(file.verify().isValid)
    }

    @Test("2.5 non-zero flags") func flags() {
        var bytes = valid
        bytes[12] = 1
        FileSurgeon.fixHeaderCRC(&bytes)
        expectOpen(bytes, throws: .nonZeroReserved(field: "flags", value: 1))
    }

    @Test("2.6 header checksum") func headerChecksum() {
        var bytes = valid
        bytes[52] = 1
        let stored = UInt32(bytes[60]) | UInt32(bytes[61]) << 8 | UInt32(bytes[62]) << 16 | UInt32(bytes[63]) << 24
        expectOpen(bytes, throws: .headerChecksumMismatch(stored: stored, computed: FileSurgeon.crc32(Array(bytes[0..<60]))))
    }

    @Test("2.7 / 4.1 oversize manifest") func oversizeManifest() {
        var bytes = valid
        FileSurgeon.writeLE(65 << 20, 8, into: &bytes, at: 24)
        FileSurgeon.fixHeaderCRC(&bytes)
        expectOpen(bytes, throws: .manifestTooLarge(length: 65 << 20, limit: 64 << 20))
        expectOpen(valid, throws: .manifestTooLarge(length: UInt64(surgeon.manifestLength), limit: 100), limits: ReaderLimits(maxManifestLength: 100))
    }

    @Test("2.7 data_offset must follow the manifest") func dataOffset() {
        var bytes = valid
        FileSurgeon.writeLE(UInt64(surgeon.dataOffset + 64), 8, into: &bytes, at: 32)
        FileSurgeon.fixHeaderCRC(&bytes)
        expectOpen(bytes, throws: .badLayout(field: "data_offset", value: UInt64(surgeon.dataOffset + 64), expected: UInt64(surgeon.dataOffset)))
    }

    @Test("2.7 truncated by one byte; one trailing byte") func sizes() {
        expectOpen(Array(valid.dropLast()), throws: .truncated(needed: UInt64(valid.count), actual: UInt64(valid.count - 1)))
        expectOpen(valid + [0], throws: .trailingBytes(count: 1))
    }

    @Test("2.8 padding after the manifest is zero") func manifestPadding() {
        var bytes = valid
        let padding = 64 + surgeon.manifestLength
        try! #require(padding < surgeon.dataOffset, "the fixture's manifest must leave padding")
        bytes[padding] = 0x20
        FileSurgeon.fixSHA(&bytes)
        expectOpen(bytes, throws: .nonZeroPadding(offset: UInt64(padding)))
    }

    // MARK: §3 trailer

    @Test("3.1 end magic") func endMagic() {
        var bytes = valid
        bytes[bytes.count - 1] = 0
        expectOpen(bytes, throws: .badEndMagic)
    }

    @Test("3.2 file SHA-256") func fileChecksum() throws {
        var bytes = valid
        bytes[valid.count - 40] ^= 0xFF  // keep the data; corrupt the stored digest instead
        let digest = (valid.count - 40)..<(valid.count - 8)
        try expectVerify(bytes, finds: .fileChecksumMismatch(
            stored: SHA256.hex(Array(bytes[digest])), computed: SHA256.hex(Array(valid[digest]))))
    }

    // MARK: §4 manifest

    @Test("4 manifest checksum") func manifestChecksum() {
        var bytes = valid
        bytes[70] ^= 0x01
        let computed = FileSurgeon.crc32(Array(bytes[64..<(64 + surgeon.manifestLength)]))
        let stored = FileSurgeon.crc32(Array(valid[64..<(64 + surgeon.manifestLength)]))
        expectOpen(bytes, throws: .manifestChecksumMismatch(stored: stored, computed: computed))
    }

    @Test("4.1 nesting depth") func depth() {
        let deep = surgeon.rebuild(manifest: { manifest in
            var value: Any = 1
            for _ in 0..<200 { value = [value] }
            manifest["metadata"] = ["deep": value]
        })
        expectOpen(deep, throws: .manifestTooDeep(limit: 128))
    }

    @Test("4.1 tensor count cap") func tensorCount() {
        expectOpen(valid, throws: .tooManyTensors(count: surgeon.manifest["tensors"].map { ($0 as! [Any]).count }!, limit: 3),
                   limits: ReaderLimits(maxTensorCount: 3))
    }

    @Test("4.3 the manifest must be a laq manifest") func notLAQ() {
        expectOpen(surgeon.rebuild(manifest: { $0["format"] = "gguf" }),
                   throws: .invalidManifest(path: "format", reason: "is \"gguf\", expected \"laq\""))
        expectOpen(surgeon.rebuild(manifest: { $0["tensors"] = nil }),
                   throws: .invalidManifest(path: "$.tensors", reason: "required key is missing"))
    }

    @Test("4.1 integers above 2^53 − 1") func bigIntegers() {
        let bytes = surgeon.rebuild(manifest: editTensor("scalar") { $0["decoded_length"] = 1 << 60 })
        expectOpen(bytes, throws: .invalidManifest(path: "$.tensors[\(tensorIndex("scalar"))].decoded_length", reason: "\(1 << 60) exceeds 2^53 − 1"))
    }

    // MARK: §5 tensor table

    @Test("5.1 names: empty, control characters, duplicates") func names() {
        let index = tensorIndex("scalar")
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["name"] = "" }), throws: .invalidName(index: index, reason: "empty name"))
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["name"] = "a\nb" }),
                   throws: .invalidName(index: index, reason: "name contains a control character"))
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["name"] = "empty" }), throws: .duplicateName("empty", offset: Layout.manifestOffset))
    }

    @Test("5.2 rank above 8; an overflowing shape") func shapes() {
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["shape"] = [1, 1, 1, 1, 1, 1, 1, 1, 1] }),
                   throws: .invalidShape(tensor: "scalar", reason: "rank 9 exceeds 8"))
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["shape"] = [1 << 40, 1 << 40] }),
                   throws: .shapeOverflow(tensor: "scalar", offset: Layout.manifestOffset))
        expectOpen(surgeon.rebuild(manifest: editTensor("float16/matrix") { $0["axes"] = ["in"] }),
                   throws: .invalidShape(tensor: "float16/matrix", reason: "1 axis names for 2 dimensions"))
    }

    @Test("5.3 overlapping payloads") func overlap() {
        let first = (surgeon.manifest["tensors"] as! [[String: Any]])[0]
        let second = (surgeon.manifest["tensors"] as! [[String: Any]])[1]
        let bytes = surgeon.rebuild(manifest: editTensor(second["name"] as! String) { $0["offset"] = 0 })
        let firstEnd = UInt64(surgeon.dataOffset + (first["stored_length"] as! Int))
        let reopened = FileSurgeon(bytes)
        expectOpen(bytes, throws: .tensorsOverlap(tensor: second["name"] as! String, offset: UInt64(reopened.dataOffset), previousEnd: UInt64(reopened.dataOffset) + firstEnd - UInt64(surgeon.dataOffset)))
    }

    @Test("5.3 a gap: unaccounted bytes between payloads") func gap() {
        let name = "scalar"
        let bytes = surgeon.rebuild(
            manifest: editTensor(name) { $0["offset"] = ($0["offset"] as! Int) + 64 },
            data: { data in data += [UInt8](repeating: 0, count: 64) })
        let reopened = FileSurgeon(bytes)
        let relative = ((reopened.manifest["tensors"] as! [[String: Any]])[tensorIndex(name)]["offset"] as! Int)
        expectOpen(bytes, throws: .unaccountedBytes(tensor: name, offset: UInt64(relative), expected: UInt64(relative - 64)))
    }

    @Test("5.3 an offset past the end") func pastEnd() {
        let bytes = surgeon.rebuild(manifest: editTensor("scalar") { $0["offset"] = 1 << 40 })
        let reopened = FileSurgeon(bytes)
        let end = UInt64(reopened.dataOffset) + (1 << 40) + 4
        expectOpen(bytes, throws: .tensorOutOfBounds(tensor: "scalar", end: end, limit: UInt64(reopened.dataOffset + reopened.dataLength)))
    }

    @Test("5.3 unaccounted bytes at the end of the data section") func trailingData() {
        let bytes = surgeon.rebuild(data: { $0 += [UInt8](repeating: 0, count: 64) })
        let reopened = FileSurgeon(bytes)
        let end = UInt64(reopened.dataOffset + reopened.dataLength)
        expectOpen(bytes, throws: .unaccountedBytes(tensor: nil, offset: end, expected: end - 64))
    }

    @Test("5.4 padding between payloads is zero") func payloadPadding() {
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[0]
        let end = tensor["stored_length"] as! Int  // relative end of the first payload
        let bytes = surgeon.rebuild(data: { $0[end] = 1 })
        expectOpen(bytes, throws: .nonZeroPadding(offset: UInt64(FileSurgeon(bytes).dataOffset + end)))
    }

    @Test("5.5 payload checksum") func payloadChecksum() throws {
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[0]
        let bytes = surgeon.rebuild(data: { $0[0] ^= 0x40 })
        let file = try LAQFile(bytes: bytes)
        let stored = UInt32(tensor["crc32"] as! Int)
        let offset = file.tensors[0].offset
        let payload = Array(bytes[Int(offset)..<(Int(offset) + 12)])
        let error = FormatError.tensorChecksumMismatch(tensor: "float32/vector", offset: offset, stored: stored, computed: FileSurgeon.crc32(payload))
        try expectVerify(bytes, finds: error)
        #expect(throws: error) { _ = try file.floats("float32/vector") }
    }

    @Test("5.6 declared size disagrees with shape and encoding") func decodedSize() {
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["decoded_length"] = 8; $0["stored_length"] = 8 }),
                   throws: .decodedSizeMismatch(tensor: "scalar", offset: Layout.manifestOffset, declared: 8, actual: 4))
        expectOpen(surgeon.rebuild(manifest: editTensor("scalar") { $0["stored_length"] = 3 }),
                   throws: .decodedSizeMismatch(tensor: "scalar", offset: Layout.manifestOffset, declared: 4, actual: 3))
    }

    @Test("5.7 an optimizer slot of a missing weight") func danglingSlot() {
        expectOpen(surgeon.rebuild(manifest: editTensor("float32/vector/v") { $0["of"] = "nope" }),
                   throws: .danglingOptimizerSlot(tensor: "float32/vector/v", of: "nope"))
    }

    // MARK: §6 encodings

    @Test("6.2 malformed codebook parameters") func badEncoding() {
        expectOpen(surgeon.rebuild(manifest: editTensor("codebook/k3") { $0["encoding"] = ["type": "codebook", "packing": "bits", "bits": 9, "levels": 2] }),
                   throws: .invalidEncoding(tensor: "codebook/k3", offset: Layout.manifestOffset, reason: "bits 9 is outside 1…8"))
        expectOpen(surgeon.rebuild(manifest: editTensor("codebook/k3") { $0["encoding"] = ["type": "codebook", "packing": "bits", "bits": 3, "levels": 9] }),
                   throws: .invalidEncoding(tensor: "codebook/k3", offset: Layout.manifestOffset, reason: "levels 9 is outside 1…8"))
        expectOpen(surgeon.rebuild(manifest: editTensor("codebook/k3-axis0") { $0["encoding"] = ["type": "codebook", "packing": "bits", "bits": 3, "levels": 8, "axis": 2] }),
                   throws: .invalidEncoding(tensor: "codebook/k3-axis0", offset: Layout.manifestOffset, reason: "axis 2 is outside 0…1"))
    }

    @Test("6.5 a code ≥ L in a stored payload") func badCode() throws {
        // codebook/k4: 4-bit codes, 9 levels, stored: 36 bytes of levels, then codes.
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[tensorIndex("codebook/k4")]
        try #require(tensor["compression"] as? String == "none")
        let start = (tensor["offset"] as! Int) - surgeon.dataOffset + 36
        let bytes = surgeon.rebuild(data: { $0[start] |= 0x0F }, fixPayloadCRCs: true)
        try expectVerify(bytes, finds: .invalidCodes(
            tensor: "codebook/k4", offset: try payloadOffset("codebook/k4", in: bytes), index: 0, reason: "code 15 ≥ 9 levels"))
    }

    @Test("6.5 a non-finite level") func badLevel() throws {
        let index = tensorIndex("base3/vector")
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[index]
        try #require(tensor["compression"] as? String == "none")
        let start = (tensor["offset"] as! Int) - surgeon.dataOffset
        let nan = Float.nan.bitPattern
        let bytes = surgeon.rebuild(data: { data in
            for byte in 0..<4 { data[start + 4 + byte] = UInt8(truncatingIfNeeded: nan >> (8 * byte)) }
        }, fixPayloadCRCs: true)
        try expectVerify(bytes, finds: .invalidLevels(tensor: "base3/vector", offset: try payloadOffset("base3/vector", in: bytes), index: 1))
    }

    // MARK: §7 compression

    @Test("7.1 a zip bomb: a tiny stream claiming gigabytes") func zipBomb() {
        let bytes = surgeon.rebuild(manifest: editTensor("zlib/zeros") { $0["shape"] = [1 << 30]; $0["decoded_length"] = 4 << 30 })
        let stored = (surgeon.manifest["tensors"] as! [[String: Any]])[tensorIndex("zlib/zeros")]["stored_length"] as! Int
        expectOpen(bytes, throws: .compressionBomb(tensor: "zlib/zeros", offset: Layout.manifestOffset, stored: UInt64(stored), decoded: 4 << 30))
    }

    @Test("7.2 a corrupt zlib stream") func corruptStream() throws {
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[tensorIndex("zlib/zeros")]
        let start = (tensor["offset"] as! Int) - surgeon.dataOffset
        let length = tensor["stored_length"] as! Int
        // The last byte is in the stream's Adler-32 (RFC 1950), which zlib checks at its end.
        let bytes = surgeon.rebuild(data: { $0[start + length - 1] ^= 0x5A }, fixPayloadCRCs: true)
        try expectVerify(bytes, finds: .corruptCompression(
            tensor: "zlib/zeros", offset: try payloadOffset("zlib/zeros", in: bytes), reason: "incorrect data check"))
    }

    /// The file with `zlib/zeros` (16×16 float32 zeros: 1024 bytes declared) stored as
    /// `stream`, CRC-32 and layout made consistent: only the stream itself can be wrong.
    func zerosStored(as stream: [UInt8]) throws -> [UInt8] {
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]])[tensorIndex("zlib/zeros")]
        try #require(tensor["decoded_length"] as? Int == 1024 && tensor["compression"] as? String == "zlib")
        let start = (tensor["offset"] as! Int) - surgeon.dataOffset
        let slot = ((tensor["stored_length"] as! Int) + 63) / 64 * 64  // up to the next payload
        try #require(stream.count <= slot && stream.count < 1024)
        return surgeon.rebuild(
            manifest: editTensor("zlib/zeros") { $0["stored_length"] = stream.count },
            data: { $0.replaceSubrange(start..<(start + slot), with: stream + [UInt8](repeating: 0, count: slot - stream.count)) },
            fixPayloadCRCs: true)
    }

    /// `bytes` as one zlib stream (RFC 1950), as a writer makes it.
    static func deflate(_ bytes: [UInt8]) throws -> [UInt8] {
        var length = compressBound(UInt(bytes.count))
        var stream = [UInt8](repeating: 0, count: Int(length))
        try #require(compress2(&stream, &length, bytes, UInt(bytes.count), 6) == Z_OK)
        return Array(stream[0..<Int(length)])
    }

    @Test("7.2 a valid stream that inflates to fewer bytes than declared") func shortStream() throws {
        let bytes = try zerosStored(as: Self.deflate([UInt8](repeating: 0, count: 1020)))
        let error = FormatError.decodedSizeMismatch(
            tensor: "zlib/zeros", offset: try payloadOffset("zlib/zeros", in: bytes), declared: 1024, actual: 1020)
        try expectVerify(bytes, finds: error)
        #expect(throws: error) { _ = try LAQFile(bytes: bytes).floats("zlib/zeros") }
    }

    @Test("7.2 a valid stream that inflates to more bytes than declared: inflation stops one byte past")
    func longStream() throws {
        let bytes = try zerosStored(as: Self.deflate([UInt8](repeating: 0, count: 1028)))
        try expectVerify(bytes, finds: .decodedSizeMismatch(
            tensor: "zlib/zeros", offset: try payloadOffset("zlib/zeros", in: bytes), declared: 1024, actual: 1025))
    }

    @Test("7.2 bytes after the end of a valid stream, inside stored_length") func bytesAfterStream() throws {
        let bytes = try zerosStored(as: Self.deflate([UInt8](repeating: 0, count: 1024)) + [0xAB, 0xCD, 0xEF])
        try expectVerify(bytes, finds: .corruptCompression(
            tensor: "zlib/zeros", offset: try payloadOffset("zlib/zeros", in: bytes), reason: "3 bytes after the end of the stream"))
    }

    @Test("errors name the byte offset: the payload's start, or the manifest's for what it declares")
    func offsetsInMessages() throws {
        let payload = FormatError.corruptCompression(tensor: "zlib/zeros", offset: 4160, reason: "incorrect data check")
        #expect(payload.offset == 4160)
        #expect(payload.description == "tensor 'zlib/zeros' (payload at offset 4160): corrupt zlib stream: incorrect data check")
        let manifest = FormatError.shapeOverflow(tensor: "scalar", offset: Layout.manifestOffset)
        #expect(manifest.offset == 64)
        #expect(manifest.description == "tensor 'scalar' (manifest at offset 64): element count overflows")
        #expect(FormatError.badEndMagic.offset == nil)
        let problem = VerificationReport.Problem(payload, tensor: "zlib/zeros")
        #expect(problem.offset == 4160 && problem.rule == "7.2")
    }

    @Test("verify reports NaN and infinite values (float32, float16, bfloat16) without calling the file invalid")
    func nonFiniteValues() throws {
        var writer = try ExampleModels.everyEncoding()
        try writer.add(TensorRecord(name: "nan32", shape: [3], data: .float([1, .nan, .infinity], as: .float32)))
        try writer.add(TensorRecord(name: "inf16", shape: [2], data: .float([-.infinity, 2], as: .float16)))
        try writer.add(TensorRecord(name: "nanbf16", shape: [2], data: .float([.nan, 0], as: .bfloat16)))
        let report = try LAQFile(bytes: try writer.encoded()).verify()
        #expect(report.isValid)
        #expect(report.nonFinite.map(\.tensor) == ["nan32", "inf16", "nanbf16"])
        #expect(report.nonFinite.map(\.count) == [2, 1, 1])
    }

    // MARK: §8 features

    @Test("8.1 an unknown encoding: listed and verified, not decodable") func unknownEncoding() throws {
        var writer = try ExampleModels.everyEncoding()
        try writer.add(TensorRecord(name: "future", shape: [4], features: ["lut-v9"], data: .opaque(encoding: ["type": "lut4", "table": "x"], payload: [1, 2, 3, 4])))
        try writer.add(TensorRecord(name: "plain", shape: [4], data: .opaque(encoding: ["type": "lut4"], payload: [5, 6])))
        let file = try LAQFile(bytes: try writer.encoded())
        let future = try #require(file.tensor(named: "future"))
        #expect(!future.isDecodable)
        #expect(future.encodingSummary == "lut4 (unknown)")
        #expect(throws: FormatError.unsupported(tensor: "future", what: "feature 'lut-v9'")) { _ = try file.floats("future") }
        #expect(throws: FormatError.unsupported(tensor: "plain", what: "encoding 'lut4'")) { _ = try file.floats("plain") }
        let report = file.verify()
        #expect(report.isValid)
        #expect(report.undecodable == ["future", "plain"])
        #expect(try file.floats("float32/vector") == [1.5, -2, 0])  // the rest still decodes
    }

    @Test("8.1 an unknown required feature: nothing decodes, everything verifies") func unknownRequiredFeature() throws {
        var writer = try ExampleModels.everyEncoding()
        writer.requiredFeatures = ["graph-v2"]
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.unsupportedFeatures == ["graph-v2"])
        #expect(throws: FormatError.unsupported(tensor: "scalar", what: "file feature 'graph-v2'")) { _ = try file.floats("scalar") }
        let report = file.verify()
        #expect(report.isValid)
        #expect(report.undecodable.count == file.tensors.count)
    }

    @Test("8.1/§5: with an unknown required feature, verify still checks every payload rule")
    func requiredFeatureStillChecked() throws {
        var writer = try ExampleModels.everyEncoding()
        writer.requiredFeatures = ["graph-v2"]
        let valid = try writer.encoded()
        let surgeon = FileSurgeon(valid)
        let tensor = (surgeon.manifest["tensors"] as! [[String: Any]]).first { $0["name"] as? String == "codebook/k4" }!
        try #require(tensor["compression"] as? String == "none")
        let start = (tensor["offset"] as! Int) - surgeon.dataOffset + 36
        let bytes = surgeon.rebuild(data: { $0[start] |= 0x0F }, fixPayloadCRCs: true)
        try expectVerify(bytes, finds: .invalidCodes(
            tensor: "codebook/k4", offset: try payloadOffset("codebook/k4", in: bytes), index: 0, reason: "code 15 ≥ 9 levels"))
    }

    @Test("5.1 names equal under Unicode canonical equivalence are duplicates") func canonicalNames() {
        let bytes = surgeon.rebuild(manifest: { manifest in
            self.editTensor("scalar") { $0["name"] = "caf\u{E9}" }(&manifest)
            self.editTensor("empty") { $0["name"] = "cafe\u{301}" }(&manifest)
        })
        expectOpen(bytes, throws: .duplicateName("cafe\u{301}", offset: Layout.manifestOffset))
    }

    @Test("8.1 an unknown key inside a known encoding: an error, unless a feature announces it") func unknownEncodingKey() throws {
        let addKey = editTensor("codebook/k3") { tensor in
            var object = tensor["encoding"] as! [String: Any]
            object["blocked"] = 32
            tensor["encoding"] = object
        }
        expectOpen(surgeon.rebuild(manifest: addKey), throws: .invalidEncoding(
            tensor: "codebook/k3", offset: Layout.manifestOffset, reason: "unknown key 'blocked' in a codebook encoding, and no feature announces it"))
        let announced = surgeon.rebuild(manifest: { manifest in
            addKey(&manifest)
            self.editTensor("codebook/k3") { $0["features"] = ["blocked-groups"] }(&manifest)
        })
        let file = try LAQFile(bytes: announced)
        #expect(file.tensor(named: "codebook/k3")?.unsupportedReason == "feature 'blocked-groups'")
        #expect(file.verify().isValid)
    }

    @Test("5.2 a zero dimension makes the element count 0, whatever the others") func zeroDimension() throws {
        var writer = LAQWriter()
        try writer.add(TensorRecord(name: "wide", shape: [0, 1 << 40, 1 << 40], data: .float([], as: .float32)))
        let file = try LAQFile(bytes: try writer.encoded())
        #expect(file.tensors[0].elementCount == 0)
    }
}
