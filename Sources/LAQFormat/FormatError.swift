/// Every way a `.laq` file can be wrong, each with the context needed to find the bad byte.
///
/// Each case corresponds to a rule of `spec/FORMAT.md`; §11 of the spec lists which.
/// Messages (``description``) say what was wrong, where, and, where it helps, what to do.
///
/// Errors about a tensor carry its name and a file byte `offset`: the payload's start for what
/// its bytes hold (checksum, inflation, codes, levels), ``Layout/manifestOffset`` for what the
/// manifest declares (names, shapes, encodings, sizes); ``offset`` gathers them.
public enum FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file ends before a structure that must be there (rule 2.1, 2.7).
    case truncated(needed: UInt64, actual: UInt64)
    /// The first 8 bytes are not the `.laq` magic (rule 2.2).
    case badMagic(found: [UInt8])
    /// The major version is 0 or newer than this reader supports (rule 2.3).
    case unsupportedVersion(major: UInt16, minor: UInt16, supportedMajor: UInt16)
    /// The version reads as 256: the header was written big-endian (rule 2.3).
    case byteSwapped
    /// A reserved header field or the flags are not zero (rule 2.5).
    case nonZeroReserved(field: String, value: UInt64)
    /// The header's CRC-32 does not match bytes 0…59 (rule 2.6).
    case headerChecksumMismatch(stored: UInt32, computed: UInt32)
    /// The manifest length is outside 2 … 64 MiB: too large, or too short to be JSON (rules 2.7, 4.1).
    case manifestTooLarge(length: UInt64, limit: UInt64)
    /// A header field disagrees with the layout rules (rule 2.7).
    case badLayout(field: String, value: UInt64, expected: UInt64)
    /// The file is longer than its header says (rule 2.7).
    case trailingBytes(count: UInt64)
    /// Padding that must be zero is not (rules 2.8, 5.4, 6.3).
    case nonZeroPadding(offset: UInt64)
    /// The last 8 bytes are not the end magic (rule 3.1).
    case badEndMagic
    /// The SHA-256 in the trailer does not match the file (rule 3.2).
    case fileChecksumMismatch(stored: String, computed: String)
    /// The manifest's CRC-32 does not match (rule 4.6).
    case manifestChecksumMismatch(stored: UInt32, computed: UInt32)
    /// The manifest JSON nests deeper than allowed (rule 4.1).
    case manifestTooDeep(limit: Int)
    /// The tensor table has more entries than allowed (rule 4.1).
    case tooManyTensors(count: Int, limit: Int)
    /// The manifest is not the JSON the spec describes (§4, §5).
    case invalidManifest(path: String, reason: String)
    /// A tensor name is empty, too long or has control characters (rule 5.1).
    case invalidName(index: Int, reason: String)
    /// Two tensors share a name (rule 5.1); `offset` is the manifest's.
    case duplicateName(String, offset: UInt64)
    /// A shape has too many dimensions or disagrees with `axes` (rule 5.2).
    case invalidShape(tensor: String, reason: String)
    /// A shape's element count overflows (rule 5.2); `offset` is the manifest's.
    case shapeOverflow(tensor: String, offset: UInt64)
    /// A payload starts before the previous one ends (rule 5.3).
    case tensorsOverlap(tensor: String, offset: UInt64, previousEnd: UInt64)
    /// Bytes between payloads (or at the end of the data section) that no tensor accounts for (rule 5.3).
    case unaccountedBytes(tensor: String?, offset: UInt64, expected: UInt64)
    /// A payload ends past the data section (rule 5.3).
    case tensorOutOfBounds(tensor: String, end: UInt64, limit: UInt64)
    /// A payload's CRC-32 does not match (rule 5.5); `offset` is the payload's start.
    case tensorChecksumMismatch(tensor: String, offset: UInt64, stored: UInt32, computed: UInt32)
    /// A declared size disagrees with what shape, encoding and compression imply (rule 5.6;
    /// `offset` is the manifest's), or a zlib payload inflates to another size (rule 7.2;
    /// `offset` is the payload's start, and `actual` is `declared + 1` for any longer stream).
    case decodedSizeMismatch(tensor: String, offset: UInt64, declared: UInt64, actual: UInt64)
    /// An optimizer slot names a weight that is not in the file (rule 5.7).
    case danglingOptimizerSlot(tensor: String, of: String)
    /// An encoding object that is known but malformed (§6.2); `offset` is the manifest's.
    case invalidEncoding(tensor: String, offset: UInt64, reason: String)
    /// A code is ≥ the number of levels, or packing bits are out of range (rules 6.3–6.5);
    /// `offset` is the payload's start, `index` the element (codes are counted after inflation).
    case invalidCodes(tensor: String, offset: UInt64, index: Int, reason: String)
    /// A quantization level is not finite (rule 6.5); `offset` is the payload's start, `index`
    /// the level's position in the level tables.
    case invalidLevels(tensor: String, offset: UInt64, index: Int)
    /// A zlib payload claims more than deflate can expand to, or is not smaller (rule 7.1);
    /// both sizes are declared, so `offset` is the manifest's.
    case compressionBomb(tensor: String, offset: UInt64, stored: UInt64, decoded: UInt64)
    /// A zlib stream is corrupt (rule 7.2); `offset` is the payload's start.
    case corruptCompression(tensor: String, offset: UInt64, reason: String)
    /// This reader does not know an encoding, compression or feature the tensor needs (rule 8.1).
    case unsupported(tensor: String?, what: String)
    /// A tensor larger than this reader's ``ReaderLimits/maxTensorElements`` (a resource limit, not a format error).
    case tooLarge(tensor: String, elements: UInt64, limit: UInt64)
    /// No tensor has this name.
    case noSuchTensor(String)
    /// An operating-system call failed.
    case io(path: String, operation: String, reason: String)
    /// The caller asked the writer for something the format cannot hold.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .truncated(needed, actual):
            return "file is truncated: needs at least \(needed) bytes, has \(actual) (was the copy interrupted?)"
        case let .badMagic(found):
            let hex = found.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            return "not a .laq file: bad magic \(hex) (expected 89 4c 41 51 0d 0a 1a 0a; a text-mode transfer also damages it)"
        case let .unsupportedVersion(major, minor, supported):
            return major == 0
                ? "invalid format version \(major).\(minor) (this laq reads major version \(supported))"
                : "file is format version \(major).\(minor); this laq reads major version \(supported) only: upgrade laq"
        case .byteSwapped:
            return "file was written big-endian (version reads byte-swapped); .laq files are little-endian"
        case let .nonZeroReserved(field, value):
            return "reserved header field \(field) is \(value), must be 0"
        case let .headerChecksumMismatch(stored, computed):
            return "header checksum mismatch: stored \(hex32(stored)), computed \(hex32(computed))"
        case let .manifestTooLarge(length, limit):
            return "manifest length \(length) is outside 2…\(limit) bytes"
        case let .badLayout(field, value, expected):
            return "header field \(field) is \(value), expected \(expected)"
        case let .trailingBytes(count):
            return "\(count) unexpected bytes after the end of the file's trailer"
        case let .nonZeroPadding(offset):
            return "padding byte at offset \(offset) is not zero"
        case .badEndMagic:
            return "end magic missing: the file is truncated or has bytes appended"
        case let .fileChecksumMismatch(stored, computed):
            return "file SHA-256 mismatch: trailer has \(stored), content hashes to \(computed) (the file is corrupt)"
        case let .manifestChecksumMismatch(stored, computed):
            return "manifest checksum mismatch: stored \(hex32(stored)), computed \(hex32(computed))"
        case let .manifestTooDeep(limit):
            return "manifest JSON nests deeper than \(limit) levels"
        case let .tooManyTensors(count, limit):
            return "\(count) tensors exceeds the limit of \(limit)"
        case let .invalidManifest(path, reason):
            return "invalid manifest at \(path): \(reason)"
        case let .invalidName(index, reason):
            return "tensor #\(index) has an invalid name: \(reason)"
        case let .duplicateName(name, offset):
            return "tensor name '\(name)' appears more than once (\(location(offset)))"
        case let .invalidShape(tensor, reason):
            return "tensor '\(tensor)': invalid shape: \(reason)"
        case let .shapeOverflow(tensor, offset):
            return "tensor '\(tensor)' (\(location(offset))): element count overflows"
        case let .tensorsOverlap(tensor, offset, previousEnd):
            return "tensor '\(tensor)' at offset \(offset) overlaps the previous payload, which ends at \(previousEnd)"
        case let .unaccountedBytes(tensor, offset, expected):
            if let tensor {
                return "tensor '\(tensor)' starts at offset \(offset), expected \(expected): the bytes between are unaccounted for"
            }
            return "data section ends at \(offset), but the last payload ends (aligned) at \(expected): unaccounted bytes"
        case let .tensorOutOfBounds(tensor, end, limit):
            return "tensor '\(tensor)' ends at offset \(end), past the data section's end at \(limit)"
        case let .tensorChecksumMismatch(tensor, offset, stored, computed):
            return "tensor '\(tensor)' (\(location(offset))): checksum mismatch: stored \(hex32(stored)), computed \(hex32(computed)) (the payload is corrupt)"
        case let .decodedSizeMismatch(tensor, offset, declared, actual):
            if offset == Layout.manifestOffset {
                return "tensor '\(tensor)' (\(location(offset))): size mismatch: declared \(declared) bytes, shape, encoding and compression imply \(actual)"
            }
            let inflated = actual > declared ? "more than \(declared)" : "\(actual)"
            return "tensor '\(tensor)' (\(location(offset))): zlib stream inflates to \(inflated) bytes, declared \(declared)"
        case let .danglingOptimizerSlot(tensor, of):
            return "optimizer tensor '\(tensor)' belongs to '\(of)', which is not a weight in this file"
        case let .invalidEncoding(tensor, offset, reason):
            return "tensor '\(tensor)' (\(location(offset))): invalid encoding: \(reason)"
        case let .invalidCodes(tensor, offset, index, reason):
            return "tensor '\(tensor)' (\(location(offset))): invalid code at element \(index): \(reason)"
        case let .invalidLevels(tensor, offset, index):
            return "tensor '\(tensor)' (\(location(offset))): quantization level #\(index) is not finite"
        case let .compressionBomb(tensor, offset, stored, decoded):
            return "tensor '\(tensor)' (\(location(offset))): \(stored) compressed bytes cannot inflate to the declared \(decoded) bytes"
        case let .corruptCompression(tensor, offset, reason):
            return "tensor '\(tensor)' (\(location(offset))): corrupt zlib stream: \(reason)"
        case let .unsupported(tensor, what):
            let subject = tensor.map { "tensor '\($0)'" } ?? "file"
            return "\(subject) needs \(what), which this laq does not support: upgrade laq"
        case let .tooLarge(tensor, elements, limit):
            return "tensor '\(tensor)' has \(elements) elements, more than this reader decodes (\(limit))"
        case let .noSuchTensor(name):
            return "no tensor named '\(name)'"
        case let .io(path, operation, reason):
            return "\(path): \(operation) failed: \(reason)"
        case let .invalidArgument(reason):
            return reason
        }
    }

    /// The file byte offset the error points at, when it carries one: a payload's start, the
    /// manifest's offset for what the manifest declares, or the offending byte (padding, a
    /// payload's declared start). `nil` for errors about the file as a whole, the header's
    /// fields (the message names the field), and I/O and argument errors.
    public var offset: UInt64? {
        switch self {
        case let .nonZeroPadding(offset), let .tensorsOverlap(_, offset, _), let .unaccountedBytes(_, offset, _),
            let .duplicateName(_, offset), let .shapeOverflow(_, offset), let .tensorChecksumMismatch(_, offset, _, _),
            let .decodedSizeMismatch(_, offset, _, _), let .invalidEncoding(_, offset, _), let .invalidCodes(_, offset, _, _),
            let .invalidLevels(_, offset, _), let .compressionBomb(_, offset, _, _), let .corruptCompression(_, offset, _):
            offset
        default:
            nil
        }
    }

    /// The exit status a command ends with for this error: 2 for operating-system and argument
    /// problems, 1 for files that break the format (README, `laq --help`).
    public var exitStatus: Int32 {
        switch self {
        case .io, .invalidArgument, .noSuchTensor: 2
        default: 1
        }
    }

    /// The spec rule a file error breaks, for machine-readable reports; `nil` for I/O and argument errors.
    public var rule: String? {
        switch self {
        case .truncated: "2.1"
        case .badMagic: "2.2"
        case .unsupportedVersion, .byteSwapped: "2.3"
        case .nonZeroReserved: "2.5"
        case .headerChecksumMismatch: "2.6"
        case .manifestTooLarge, .badLayout, .trailingBytes: "2.7"
        case .nonZeroPadding: "2.8/5.4"
        case .badEndMagic: "3.1"
        case .fileChecksumMismatch: "3.2"
        case .manifestChecksumMismatch, .invalidManifest: "4.6"
        case .manifestTooDeep, .tooManyTensors: "4.1"
        case .invalidName, .duplicateName: "5.1"
        case .invalidShape, .shapeOverflow: "5.2"
        case .tensorsOverlap, .unaccountedBytes, .tensorOutOfBounds: "5.3"
        case .tensorChecksumMismatch: "5.5"
        case .decodedSizeMismatch: "5.6/7.2"
        case .danglingOptimizerSlot: "5.7"
        case .invalidEncoding: "6.2"
        case .invalidCodes, .invalidLevels: "6.5"
        case .compressionBomb: "7.1"
        case .corruptCompression: "7.2"
        case .unsupported: "8.1"
        case .noSuchTensor, .io, .invalidArgument, .tooLarge: nil
        }
    }
}

/// "payload at offset N", or "manifest at offset 64" for the manifest's offset (payloads start
/// at `data_offset` ≥ 128, so the two never meet).
private func location(_ offset: UInt64) -> String {
    offset == Layout.manifestOffset ? "manifest at offset \(offset)" : "payload at offset \(offset)"
}

func hex32(_ value: UInt32) -> String {
    "0x" + String(value, radix: 16).leftPadded(to: 8)
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
