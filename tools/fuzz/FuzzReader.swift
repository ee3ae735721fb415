// libFuzzer harness for the `.laq` reader (Sources/LAQFormat, spec/FORMAT.md).
//
// Built by tools/fuzz/run, compiled into the same module as the LAQFormat sources
// (`-module-name LAQFormat`), so it may use internal helpers (Zlib.crc32, SHA256, Header).
//
// Every input is tried in up to three forms:
//   A. raw          — the bytes as given: exercises header, layout and checksum rules.
//   B. resealed     — the manifest text and data section cut out of the input (header fields
//                     clamped to what is there) and wrapped in a fresh, valid container
//                     (header CRC, manifest CRC, zero padding, SHA-256, end magic). Without this
//                     almost every mutation of the manifest dies at the manifest CRC-32.
//   C. repaired     — B, but with the manifest re-serialised after setting each tensor's `crc32`
//                     to the CRC-32 of the bytes its offset and stored_length point at (offsets
//                     moved along with the data section). Without this every mutation of a
//                     payload dies at the payload CRC-32 and the decoders are never reached.
// B and C are pure functions of the input, so `laq-fuzz CRASHFILE` reproduces any finding;
// set LAQ_FUZZ_DUMP=DIR to also write the forms of each input run as DIR/{raw,resealed,repaired}.laq.
//
// Any thrown error is fine. A trap, an ASan report, a leak, a timeout or an out-of-memory is a bug,
// and so is a broken oracle (below), which the harness turns into a trap with a message.
//
// Oracles checked on every file that opens:
//   - the parsed header re-encodes to the input's first 64 bytes;
//   - verify() and decoding agree: a file verify() passes decodes every decodable tensor; a tensor
//     that decodes is not reported by verify(); floats() has elementCount values and equals the
//     dequantized codebook;
//   - a file verify() passes, rewritten by LAQWriter from its decoded values, opens, verifies and
//     decodes to the same values (float32 bit-exact; NaN compared as NaN).
//
// A custom mutator (LLVMFuzzerCustomMutator) replaces, one time in four, a decimal integer in the
// manifest by a boundary value; otherwise libFuzzer's mutators run (see fuzzMutate).
//
// LAQ_FUZZ_MAKE_SEEDS=DIR makes the binary write its generated seed files to DIR and exit
// (used by tools/fuzz/run; see makeSeeds below).

import Foundation

/// Modest limits so that the fuzzer spends its time in the rules rather than in huge manifests.
let fuzzLimits = ReaderLimits(maxManifestLength: 1 << 20, maxManifestDepth: 128, maxTensorCount: 4096)
let dumpDirectory = ProcessInfo.processInfo.environment["LAQ_FUZZ_DUMP"]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let directory = ProcessInfo.processInfo.environment["LAQ_FUZZ_MAKE_SEEDS"] {
        do {
            let count = try makeSeeds(in: directory)
            print("laq-fuzz: wrote \(count) seed files to \(directory)")
            exit(0)
        } catch {
            print("laq-fuzz: writing seeds failed: \(error)")
            exit(2)
        }
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = Array(UnsafeBufferPointer(start: data, count: size))
    func run(_ bytes: [UInt8], _ form: String) {
        if let dump = dumpDirectory { _ = FileManager.default.createFile(atPath: dump + "/" + form + ".laq", contents: Data(bytes)) }
        exercise(bytes, form: form)
    }
    run(raw, "raw")
    guard let pieces = Pieces(raw) else { return 0 }
    let resealed = pieces.sealed()
    if resealed != raw { run(resealed, "resealed") }
    if let repaired = pieces.repaired(), repaired != resealed, repaired != raw { run(repaired, "repaired") }
    return 0
}

// MARK: - Mutating

/// A custom mutator: one time in four it replaces an ASCII integer in the manifest with a boundary
/// value (0, 2^32, 2^53 − 1, 2^64, …) or a near variant of itself (±1, ×2, ×1032, aligned to 64);
/// otherwise it leaves the input to libFuzzer's mutators. Shapes, offsets and lengths are where
/// the reader's arithmetic lives, and random byte edits rarely produce such numbers in decimal.
@_cdecl("LLVMFuzzerCustomMutator")
public func fuzzMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: CUnsignedInt) -> Int {
    var random = SplitMix64(seed: UInt64(seed))
    if size > Layout.headerSize, random.next() % 4 == 0,
        let newSize = mutateInteger(UnsafeMutableBufferPointer(start: data, count: maxSize), size: size, random: &random)
    {
        return newSize
    }
    return LLVMFuzzerMutate(data, size, maxSize)
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let boundaryIntegers: [String] = [
    "0", "1", "2", "3", "4", "5", "7", "8", "9", "16", "63", "64", "65", "128", "242", "243", "255", "256",
    "1031", "1032", "1033", "65535", "65536", "1048576", "2147483647", "2147483648", "4294967295",
    "4294967296", "4294967297", "9007199254740991", "9007199254740992", "9223372036854775807",
    "9223372036854775808", "18446744073709551615", "18446744073709551616",
]

func mutateInteger(_ buffer: UnsafeMutableBufferPointer<UInt8>, size: Int, random: inout SplitMix64) -> Int? {
    // The manifest: from byte 64 up to the first NUL.
    let start = Layout.headerSize
    var end = start
    while end < size, buffer[end] != 0 { end += 1 }
    var runs: [Range<Int>] = []
    var index = start
    while index < end {
        if buffer[index] >= 0x30, buffer[index] <= 0x39 {
            let first = index
            while index < end, buffer[index] >= 0x30, buffer[index] <= 0x39 { index += 1 }
            runs.append(first..<index)
        } else {
            index += 1
        }
    }
    guard !runs.isEmpty else { return nil }
    let run = runs[Int(random.next() % UInt64(runs.count))]
    let replacement: String
    if random.next() % 2 == 0 {
        replacement = boundaryIntegers[Int(random.next() % UInt64(boundaryIntegers.count))]
    } else {
        let value = UInt64(String(decoding: UnsafeBufferPointer(rebasing: buffer[run]), as: UTF8.self)) ?? 0
        switch random.next() % 7 {
        case 0: replacement = String(value &+ 1)
        case 1: replacement = String(value &- 1)
        case 2: replacement = String(value.multipliedReportingOverflow(by: 2).partialValue)
        case 3: replacement = String(value / 2)
        case 4: replacement = String(value.multipliedReportingOverflow(by: 1032).partialValue)
        case 5: replacement = String((value &+ 63) & ~63)
        default: replacement = String(value &+ 64)
        }
    }
    let bytes = Array(replacement.utf8)
    let newSize = size - run.count + bytes.count
    guard newSize <= buffer.count else { return nil }
    let tail = Array(buffer[run.upperBound..<size])
    for (offset, byte) in bytes.enumerated() { buffer[run.lowerBound + offset] = byte }
    for (offset, byte) in tail.enumerated() { buffer[run.lowerBound + bytes.count + offset] = byte }
    return newSize
}

// MARK: - Exercising the reader

func oracle(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, form: String) {
    if !condition() { fatalError("laq-fuzz oracle failed (\(form) form): \(message())") }
}

func exercise(_ bytes: [UInt8], form: String) {
    let file: LAQFile
    do {
        file = try LAQFile(bytes: bytes, limits: fuzzLimits)
    } catch let error as FormatError {
        _ = error.description
        _ = error.rule
        return
    } catch {
        fatalError("LAQFile(bytes:) threw a non-FormatError: \(error)")
    }
    oracle(file.header.encoded() == Array(bytes[0..<Layout.headerSize]), "header does not re-encode", form: form)
    _ = file.storedSHA256
    _ = file.fileSize

    let report = file.verify()
    for problem in report.problems { _ = problem.message }
    let reported = Set(report.problems.compactMap(\.tensor))

    var decoded: [[Float]?] = []
    for tensor in file.tensors {
        oracle(file.tensor(named: tensor.name) == tensor, "tensor(named:) misses '\(tensor.name)'", form: form)
        // What `laq inspect` shows for every tensor, decodable or not.
        _ = tensor.encodingSummary
        _ = tensor.bitsPerElement
        guard tensor.isDecodable else {
            oracle((try? file.floats(tensor)) == nil, "undecodable tensor '\(tensor.name)' decoded", form: form)
            decoded.append(nil)
            continue
        }
        let values = try? file.floats(tensor)
        if let values {
            oracle(values.count == tensor.elementCount, "'\(tensor.name)': \(values.count) values for \(tensor.elementCount) elements", form: form)
            oracle(!reported.contains(tensor.name), "'\(tensor.name)' decodes but verify() reports it", form: form)
            if case .codebook? = tensor.encoding {
                guard let codebook = try? file.codebook(tensor) else {
                    fatalError("laq-fuzz oracle failed (\(form) form): '\(tensor.name)': floats() works but codebook() throws")
                }
                oracle(codebook.codes.allSatisfy { Int($0) < codebook.layout.levelCount }, "'\(tensor.name)': code ≥ L", form: form)
                oracle(codebook.levels.allSatisfy(\.isFinite), "'\(tensor.name)': non-finite level", form: form)
                oracle(sameFloats(codebook.dequantized(), values), "'\(tensor.name)': dequantized() ≠ floats()", form: form)
            }
            let statistics = try? file.statistics(of: tensor)
            oracle(statistics != nil, "'\(tensor.name)': statistics(of:) throws after floats() worked", form: form)
        } else {
            oracle(!report.isValid, "'\(tensor.name)' does not decode, yet verify() passes", form: form)
            _ = try? file.statistics(of: tensor)
        }
        decoded.append(values)
    }
    if report.isValid, file.unsupportedFeatures.isEmpty, file.tensors.allSatisfy(\.isDecodable) {
        rewriteAndCompare(file, decoded.map { $0! }, form: form)
    }
}

func sameFloats(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}

/// The writer round trip: a valid file rewritten from its decoded values holds the same values.
func rewriteAndCompare(_ file: LAQFile, _ values: [[Float]], form: String) {
    let manifest = file.manifest
    var writer = LAQWriter(
        model: manifest.model, provenance: manifest.provenance, metadata: manifest.metadata,
        requiredFeatures: manifest.requiredFeatures)
    for (tensor, floats) in zip(file.tensors, values) {
        let data: TensorData
        switch tensor.encoding! {
        case .float32: data = .float(floats, as: .float32)
        case .float16: data = .float(floats, as: .float16)
        case .bfloat16: data = .float(floats, as: .bfloat16)
        case let .codebook(layout):
            guard let codebook = try? file.codebook(tensor) else { return }
            data = .codebook(layout, levels: codebook.levels, codes: codebook.codes)
        }
        let record = TensorRecord(
            name: tensor.name, shape: tensor.shape, axes: tensor.axes, dtype: tensor.dtype, role: tensor.role,
            features: tensor.features, data: data)
        // The writer may refuse what the reader accepts (e.g. unknown keys it would drop): not a crash.
        do { try writer.add(record) } catch { return }
    }
    guard let rewritten = try? writer.encoded() else { return }
    let reopened: LAQFile
    do {
        reopened = try LAQFile(bytes: rewritten, limits: ReaderLimits())
    } catch {
        fatalError("laq-fuzz oracle failed (\(form) form): the writer's rewrite of a valid file does not open: \(error)")
    }
    let report = reopened.verify()
    oracle(report.isValid, "rewrite does not verify: \(report.problems.map(\.message))", form: form)
    oracle(reopened.tensors.count == file.tensors.count, "rewrite has \(reopened.tensors.count) tensors", form: form)
    for (tensor, original) in zip(reopened.tensors, values) {
        guard let again = try? reopened.floats(tensor) else {
            fatalError("laq-fuzz oracle failed (\(form) form): rewritten '\(tensor.name)' does not decode")
        }
        oracle(sameFloats(again, original), "rewritten '\(tensor.name)' decodes to other values", form: form)
    }
}

// MARK: - Resealing and repairing

/// The manifest text and data section of an input.
///
/// The manifest is the text from byte 64 up to the first NUL (JSON has no raw NUL; the writer pads
/// it with zeros), so that mutations that grow or shrink the text still cut it whole; the data
/// section is taken as shifted by as many bytes as the text grew against the header's
/// manifest_length. Tensor offsets are read relative to where the writer put the data section.
struct Pieces {
    var manifest: [UInt8]
    var data: [UInt8]
    /// The data offset the input's tensor offsets were written against.
    var oldDataOffset: UInt64

    init?(_ bytes: [UInt8]) {
        let header = Layout.headerSize
        guard bytes.count >= header + 2 else { return nil }
        let dataEnd = bytes.count >= header + Layout.trailerSize + 2 ? bytes.count - Layout.trailerSize : bytes.count
        let limit = min(dataEnd, header + Int(fuzzLimits.maxManifestLength))
        guard limit >= header + 2 else { return nil }
        let declared = bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: 24) }
        var length = limit - header
        if let nul = bytes[header..<limit].firstIndex(of: 0), nul - header >= 2 { length = nul - header }
        // A declared length that cannot be the writer's says nothing about where the data was.
        let declaredLength = declared >= 2 && declared <= UInt64(limit - header) ? Int(declared) : length
        manifest = Array(bytes[header..<(header + length)])
        let written = (header + declaredLength + 63) & ~63
        oldDataOffset = UInt64(written)
        let dataStart = min(max(written + (length - declaredLength), header + length), dataEnd)
        data = Array(bytes[dataStart..<dataEnd])
    }

    /// A container with a correct header, padding and trailer around `manifest` and `data`.
    static func seal(manifest: [UInt8], data: [UInt8]) -> [UInt8] {
        let dataOffset = Layout.align(UInt64(Layout.headerSize + manifest.count))!
        let dataLength = Layout.align(UInt64(data.count))!
        let header = Header(
            manifestLength: UInt64(manifest.count), dataOffset: dataOffset, dataLength: dataLength,
            manifestCRC32: Zlib.crc32(manifest))
        var file = header.encoded()
        file += manifest
        file += [UInt8](repeating: 0, count: Int(dataOffset) - file.count)
        file += data
        file += [UInt8](repeating: 0, count: Int(dataLength) - data.count)
        file += file.withUnsafeBytes { SHA256.hash($0) }
        file += Layout.endMagic
        return file
    }

    func sealed() -> [UInt8] { Self.seal(manifest: manifest, data: data) }

    /// Sets every tensor's `crc32` (and moves its `offset` with the data section), then reseals.
    /// Nil when the manifest is not a JSON object with a `tensors` array.
    func repaired() -> [UInt8]? {
        guard case let .object(top)? = try? JSONDecoder().decode(JSONValue.self, from: Data(manifest)),
            case let .array(tensors)? = top["tensors"]
        else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The new data offset depends on the manifest's length, which depends on the offsets'
        // digits: iterate to the fixed point as the writer does (monotone, a few rounds).
        var dataOffset = oldDataOffset
        for _ in 0..<16 {
            var object = top
            object["tensors"] = .array(tensors.map { repair($0, dataOffset: dataOffset) })
            guard let json = try? encoder.encode(JSONValue.object(object)) else { return nil }
            let text = Array(json)
            let needed = Layout.align(UInt64(Layout.headerSize + text.count))!
            if needed == dataOffset { return Self.seal(manifest: text, data: data) }
            dataOffset = max(needed, dataOffset + UInt64(Layout.alignment))
        }
        return nil
    }

    /// One tensor entry with its offset moved from `oldDataOffset` to `dataOffset` and its crc32
    /// set to the CRC-32 of the bytes it points at (when they are inside the data section).
    func repair(_ value: JSONValue, dataOffset: UInt64) -> JSONValue {
        guard case var .object(entry) = value, case let .int(offset)? = entry["offset"], offset >= 0,
            UInt64(offset) >= oldDataOffset
        else { return value }
        let relative = UInt64(offset) - oldDataOffset
        if relative < UInt64(Int64.max) - dataOffset { entry["offset"] = .int(Int64(dataOffset + relative)) }
        if case let .int(stored)? = entry["stored_length"], stored >= 0, relative <= UInt64(data.count),
            UInt64(stored) <= UInt64(data.count) - relative
        {
            let start = Int(relative)
            let crc = data.withUnsafeBytes { Zlib.crc32(UnsafeRawBufferPointer(rebasing: $0[start..<(start + Int(stored))])) }
            entry["crc32"] = .int(Int64(crc))
        }
        return .object(entry)
    }
}

// MARK: - Seeds

/// Small valid files covering every encoding, compression, role and edge the writer can make,
/// plus hand-damaged variants (truncations, bit flips). Returns how many files it wrote.
func makeSeeds(in directory: String) throws -> Int {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var files: [(String, [UInt8])] = []
    func add(_ name: String, compression: WriteOptions.CompressionPolicy = .zlib(minimumSaving: 0),
             requiredFeatures: [String] = [], _ records: [TensorRecord]) throws {
        var writer = LAQWriter(
            model: ModelInfo(name: name, framework: "keras", inputs: [TensorDescription(name: "x", shape: [nil, 4])]),
            provenance: [ProvenanceRecord(tool: "laq-fuzz", command: "seed")],
            metadata: ["seed": .string(name)], requiredFeatures: requiredFeatures,
            options: WriteOptions(compression: compression))
        for record in records { try writer.add(record) }
        files.append((name, try writer.encoded()))
    }
    let ramp = (0..<24).map { Float($0) * 0.25 - 3 }
    let zeros = [Float](repeating: 0, count: 256)
    try add("empty", [])
    try add("floats-none", compression: .none, [
        TensorRecord(name: "f32", shape: [2, 3], axes: ["in", "out"], data: .float(Array(ramp[0..<6]), as: .float32)),
        TensorRecord(name: "f16", shape: [4], dtype: "float16", data: .float([1, -2, 65504, .nan], as: .float16)),
        TensorRecord(name: "bf16", shape: [3], dtype: "bfloat16", data: .float([1, -.infinity, 3.5], as: .bfloat16)),
        TensorRecord(name: "scalar", shape: [], data: .float([7], as: .float32)),
        TensorRecord(name: "empty", shape: [0, 4], data: .float([], as: .float32)),
    ])
    try add("floats-zlib", [
        TensorRecord(name: "z32", shape: [16, 16], data: .float(zeros, as: .float32)),
        TensorRecord(name: "z16", shape: [256], data: .float(zeros, as: .float16)),
        TensorRecord(name: "zbf", shape: [8, 32], data: .float(zeros, as: .bfloat16)),
    ])
    var codebooks: [TensorRecord] = []
    for k in 1...8 {
        let levels = max(1, (1 << k) - 1)
        let codes = (0..<13).map { UInt8($0 % levels) }
        let table = (0..<levels).map { Float($0) - Float(levels) / 2 }
        codebooks.append(TensorRecord(name: "k\(k)", shape: [13], data: .codebook(.bits(k, levels: levels), levels: table, codes: codes)))
    }
    codebooks.append(TensorRecord(
        name: "base3", shape: [2, 3], data: .codebook(.base3(axis: 1), levels: [-1, 0, 2, -0.5, 0, 0.5, -3, 0, 1], codes: [2, 0, 1, 0, 2, 2])))
    codebooks.append(TensorRecord(
        name: "axis0", shape: [3, 2, 2], data: .codebook(.bits(2, levels: 3, axis: 0), levels: (0..<9).map(Float.init), codes: (0..<12).map { UInt8($0 % 3) })))
    codebooks.append(TensorRecord(name: "cb-empty", shape: [4, 0], data: .codebook(.bits(1, axis: 0), levels: [-1, 1, -2, 2, -3, 3, -4, 4], codes: [])))
    try add("codebooks-none", compression: .none, codebooks)
    try add("codebooks-zlib", [
        TensorRecord(name: "ternary", shape: [40, 40], data: .codebook(.base3(), levels: [-1, 0, 1], codes: [UInt8](repeating: 1, count: 1600))),
        TensorRecord(name: "binary", shape: [64, 16], data: .codebook(.bits(1, axis: 1), levels: (0..<32).map(Float.init), codes: [UInt8](repeating: 0, count: 1024))),
    ])
    try add("optimizer", compression: .none, [
        TensorRecord(name: "dense/kernel", shape: [2, 2], data: .float([1, 2, 3, 4], as: .float32)),
        TensorRecord(name: "dense/kernel/m", shape: [2, 2], role: .optimizer(of: "dense/kernel", slot: "m"), data: .float([0, 0, 0, 0], as: .float16)),
    ])
    try add("unknown", compression: .none, [
        TensorRecord(name: "future", shape: [3], data: .opaque(encoding: ["type": "float8", "variant": "e4m3"], payload: [1, 2, 3])),
        TensorRecord(name: "featured", shape: [2], features: ["sparse-v2"], data: .opaque(encoding: ["type": "float32", "scale": 2], payload: [9, 9, 9])),
        TensorRecord(name: "plain", shape: [1], data: .float([1], as: .float32)),
    ])
    try add("required-feature", compression: .none, requiredFeatures: ["model-v2"], [
        TensorRecord(name: "w", shape: [2], data: .float([1, 2], as: .float32)),
    ])
    // Zero-element tensors whose dimensions are large (legal: §5.2 counts 0 elements).
    try add("zero-elements-large-dims", compression: .none, [
        TensorRecord(name: "wide", shape: [0, 1 << 40], data: .float([], as: .float32)),
        TensorRecord(name: "tall", shape: [1 << 20, 1 << 20, 0], data: .float([], as: .float16)),
    ])
    // Damaged variants of a small valid file: every truncation point class and single bit flips.
    let base = files.first { $0.0 == "floats-none" }!.1
    for cut in [0, 7, 8, 63, 64, 103, base.count / 2, base.count - 41, base.count - 1] {
        files.append(("trunc-\(cut)", Array(base[0..<cut])))
    }
    for (index, position) in [0, 8, 12, 24, 33, 48, 60, 70, base.count / 2, base.count - 40, base.count - 3].enumerated() {
        var flipped = base
        flipped[position] ^= UInt8(1 << (index % 8))
        files.append(("flip-\(position)", flipped))
    }
    for (name, bytes) in files {
        guard FileManager.default.createFile(atPath: directory + "/seed-" + name + ".laq", contents: Data(bytes)) else {
            throw FormatError.io(path: directory, operation: "write", reason: "cannot create seed-\(name).laq")
        }
    }
    return files.count
}
