import Foundation
import LAQFormat
import ZIPFoundation

/// A numeric array read from `.npy`/`.npz`, converted to float32 (integers exactly up to 2^24).
public struct NumpyArray: Sendable, Equatable {
    public var shape: [Int]
    /// The file's dtype, e.g. `<f4`, `|u1`, `<i8`.
    public var dtype: String
    public var values: [Float]
}

/// Why a data file cannot be used: names the file, the array and the problem.
public struct DataError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var array: String?
    public var reason: String
    /// True when the file could not be read at all (exit code 2), not malformed.
    public var isIO = false

    public init(file: String, array: String? = nil, reason: String, isIO: Bool = false) {
        self.file = file
        self.array = array
        self.reason = reason
        self.isIO = isIO
    }

    public var description: String {
        "\(file)\(array.map { ": array '\($0)'" } ?? ""): \(reason)"
    }
}

/// Reads NumPy `.npy` and `.npz` files (stored or deflated members), checking every length
/// before it allocates.
public enum Numpy {
    /// Largest element count accepted from one array (2^31).
    public static let maxElements = 1 << 31

    static let supported: [String: (size: Int, convert: @Sendable (UnsafeRawBufferPointer, Int) -> Float)] = [
        "<f4": (4, { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 4, as: UInt32.self))) }),
        "<f8": (8, { Float(Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 8, as: UInt64.self)))) }),
        "<f2": (2, { Float(Float16(bitPattern: UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 2, as: UInt16.self)))) }),
        "|u1": (1, { Float($0[$1]) }),
        "|i1": (1, { Float(Int8(bitPattern: $0[$1])) }),
        "|b1": (1, { $0[$1] == 0 ? 0 : 1 }),
        "<u2": (2, { Float(UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 2, as: UInt16.self))) }),
        "<i2": (2, { Float(Int16(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 2, as: Int16.self))) }),
        "<i4": (4, { Float(Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 4, as: Int32.self))) }),
        "<u4": (4, { Float(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 4, as: UInt32.self))) }),
        "<i8": (8, { Float(Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 8, as: Int64.self))) }),
        "<u8": (8, { Float(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1 * 8, as: UInt64.self))) }),
    ]

    /// What a `.npy` header declares.
    struct Header {
        var shape: [Int]
        var dtype: String
        var itemSize: Int
        var convert: @Sendable (UnsafeRawBufferPointer, Int) -> Float
        /// Where the data starts, and the image's whole length the header implies.
        var dataStart: Int
        var count: Int
        var imageLength: Int { dataStart + count * itemSize }
    }

    /// Reads the header of a `.npy` image from its first bytes (the whole header must be there:
    /// at most 12 + 1 MiB bytes).
    static func header(_ bytes: ArraySlice<UInt8>, file: String, array: String?) throws(DataError) -> Header {
        func fail(_ reason: String) -> DataError { DataError(file: file, array: array, reason: reason) }
        let bytes = Array(bytes.prefix(12 + (1 << 20)))
        guard bytes.count >= 10, bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else { throw fail("not a .npy array (bad magic)") }
        let major = bytes[6]
        // NumPy reads versions 1.0, 2.0 and 3.0 only.
        guard bytes[7] == 0 else { throw fail(".npy version \(major).\(bytes[7]) is not supported") }
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail(".npy version \(major) is not supported")
        }
        guard headerLength <= 1 << 20, headerStart + headerLength <= bytes.count else { throw fail("truncated header") }
        let literal = try HeaderLiteral.parse(bytes[headerStart..<(headerStart + headerLength)], fail: fail)
        let dtype = literal.descr
        guard let kind = supported[dtype == "<f4" ? dtype : dtype.replacingOccurrences(of: "=", with: "<")] else {
            throw fail("dtype \(dtype) is not supported (use float16/32/64, integers or bool)")
        }
        guard !literal.fortranOrder else { throw fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray") }
        var shape: [Int] = []
        var count = 1
        for value in literal.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: value)
            guard !overflow, product <= maxElements else { throw fail("shape \(literal.shape) is too large") }
            count = product
            shape.append(value)
        }
        return Header(shape: shape, dtype: dtype, itemSize: kind.size, convert: kind.convert, dataStart: headerStart + headerLength, count: count)
    }

    /// The values of a whole `.npy` image whose header is `header`, as float32.
    static func values(_ bytes: [UInt8], header: Header, file: String, array: String?) throws(DataError) -> NumpyArray {
        let expected = header.count * header.itemSize
        guard bytes.count - header.dataStart == expected else {
            throw DataError(file: file, array: array, reason: "\(bytes.count - header.dataStart) data bytes for shape \(header.shape) of \(header.dtype), expected \(expected)")
        }
        try allocatable(header.count * 4, file: file, array: array)
        let count = header.count
        let values = bytes[header.dataStart...].withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count { buffer[i] = header.convert(raw, i) }
                initialized = count
            }
        }
        return NumpyArray(shape: header.shape, dtype: header.dtype, values: values)
    }

    /// Parses one `.npy` image.
    public static func parse(_ bytes: [UInt8], file: String, array: String? = nil) throws(DataError) -> NumpyArray {
        try values(bytes, header: header(bytes[...], file: file, array: array), file: file, array: array)
    }

    /// Refuses, as an error, a buffer of `bytes` the process cannot allocate (a memory limit),
    /// where allocating it in Swift would abort.
    static func allocatable(_ bytes: Int, file: String, array: String?) throws(DataError) {
        guard Memory.canAllocate(bytes) else {
            throw DataError(file: file, array: array, reason: "out of memory: cannot allocate \(bytes) bytes for it")
        }
    }

    /// Every array in a `.npy` (named by the file) or `.npz` file.
    public static func load(path: String) throws(DataError) -> [String: NumpyArray] {
        try open(path: path).readAll()
    }

    /// A `.npy` (one array, named by the file) or `.npz` file, with every array's header read and
    /// checked against the bytes present, and no values read yet.
    static func open(path: String) throws(DataError) -> DataSource {
        let bytes: [UInt8]
        do { bytes = [UInt8](try InputFile.map(path)) } catch { throw DataError(file: path, reason: error.reasonWithoutPath, isIO: true) }
        return try open(bytes: bytes, path: path)
    }

    /// A `.npy` or `.npz` image in memory; `path` names it in errors (and a `.npy`'s array).
    public static func open(bytes: [UInt8], path: String) throws(DataError) -> DataSource {
        if bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let header = try header(bytes[...], file: path, array: nil)
            guard bytes.count == header.imageLength else {
                throw DataError(file: path, reason: "\(bytes.count - header.dataStart) data bytes for shape \(header.shape) of \(header.dtype), expected \(header.count * header.itemSize)")
            }
            return DataSource(file: path, arrays: [name: DataSource.Array(shape: header.shape, dtype: header.dtype) { () throws(DataError) in
                try values(bytes, header: header, file: path, array: nil)
            }])
        }
        guard bytes.starts(with: [0x50, 0x4B]) else { throw DataError(file: path, reason: "neither .npy nor .npz") }
        let archive: Archive
        do { _ = try ZipCheck.validate(bytes) } catch { throw DataError(file: path, reason: "not a readable .npz (zip): \(error.reason)") }
        do { archive = try Archive(data: Data(bytes), accessMode: .read) } catch { throw DataError(file: path, reason: "not a readable .npz (zip): \(error)") }
        var arrays: [String: DataSource.Array] = [:]
        for entry in archive where entry.type == .file {
            let name = entry.path.hasSuffix(".npy") ? String(entry.path.dropLast(4)) : entry.path
            let declared = UInt64(entry.uncompressedSize)
            // Deflate expands at most 1032×: a larger claim is a zip bomb or a corrupt header.
            guard declared <= UInt64(maxElements) * 8 + (1 << 20), declared / 1032 <= UInt64(entry.compressedSize) + 64 else {
                throw DataError(file: path, array: name, reason: "member claims \(declared) bytes from \(entry.compressedSize): refused")
            }
            // The header alone (inflated up to its end), checked against the member's size;
            // the values are inflated only when the array is used, after its shape was checked.
            let header = try memberHeader(archive, entry, file: path, array: name)
            guard UInt64(header.imageLength) == declared else {
                throw DataError(file: path, array: name, reason: "its header declares shape \(header.shape) of \(header.dtype) (\(header.imageLength) bytes), the member holds \(declared)")
            }
            // Members `x` and `x.npy` would both be array `x`, and readers differ on which counts.
            guard arrays[name] == nil else { throw DataError(file: path, array: name, reason: "two members hold an array of this name") }
            arrays[name] = DataSource.Array(shape: header.shape, dtype: header.dtype) { () throws(DataError) in
                try allocatable(Int(declared), file: path, array: name)
                var data = [UInt8]()
                data.reserveCapacity(Int(declared))
                let crc: CRC32
                do {
                    crc = try archive.extract(entry, skipCRC32: false) { chunk in
                        // A member inflating past its declared size is damaged: stop there.
                        guard data.count + chunk.count <= Int(declared) else { throw MemberTooLong() }
                        data.append(contentsOf: chunk)
                    }
                } catch is MemberTooLong {
                    throw DataError(file: path, array: name, reason: "inflates past its declared \(declared) bytes")
                } catch {
                    throw DataError(file: path, array: name, reason: "cannot extract: \(error)")
                }
                guard crc == entry.checksum else { throw DataError(file: path, array: name, reason: "damaged member (CRC-32 mismatch)") }
                return try values(data, header: header, file: path, array: name)
            }
        }
        return DataSource(file: path, arrays: arrays)
    }

    private struct MemberTooLong: Error {}
    private struct HeaderRead: Error {}

    /// Inflates a member only until its `.npy` header is complete, and parses the header.
    private static func memberHeader(_ archive: Archive, _ entry: Entry, file: String, array: String) throws(DataError) -> Header {
        var prefix: [UInt8] = []
        func complete() -> Bool {
            guard prefix.count >= 12 else { return false }
            let length = prefix[6] == 1 ? 10 + (Int(prefix[8]) | Int(prefix[9]) << 8)
                : 12 + (Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24)
            return prefix.count >= min(length, 12 + (1 << 20))
        }
        do {
            _ = try archive.extract(entry, bufferSize: 4096, skipCRC32: true) { chunk in
                prefix.append(contentsOf: chunk)
                if complete() { throw HeaderRead() }
            }
        } catch is HeaderRead {
        } catch {
            throw DataError(file: file, array: array, reason: "cannot extract: \(error)")
        }
        return try header(prefix[...], file: file, array: array)
    }
}

/// The header of a `.npy` file: a Python dict literal, `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }`, padded with spaces and a newline. NumPy reads it with
/// `ast.literal_eval`; laq reads the same grammar, narrowed to what NumPy writes (ASCII; keys
/// exactly `descr`, `fortran_order` and `shape`, once each; quoted strings without escapes;
/// `True`/`False`; a tuple of decimal integers, `(n,)` for one), with only whitespace around it:
/// a header NumPy would refuse (junk in the padding, a missing separator) is refused, not
/// skimmed for its fields.
struct HeaderLiteral {
    var descr = ""
    var fortranOrder = false
    var shape: [Int] = []

    static func parse(_ bytes: ArraySlice<UInt8>, fail: (String) -> DataError) throws(DataError) -> HeaderLiteral {
        var at = bytes.startIndex
        let end = bytes.endIndex
        func problem(_ what: String) -> DataError {
            // Printable ASCII as it is, any other byte as \xNN: the header is the file's text.
            let shown = bytes.prefix(160).map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined()
            return fail("its header is not the dict literal NumPy writes (\(what) at byte \(at - bytes.startIndex)): \(shown)")
        }
        func skipSpace() { while at < end, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[at]) { at += 1 } }
        func take(_ byte: UInt8) -> Bool {
            guard at < end, bytes[at] == byte else { return false }
            at += 1
            return true
        }
        func string() throws(DataError) -> String {
            guard at < end, bytes[at] == UInt8(ascii: "'") || bytes[at] == UInt8(ascii: "\"") else { throw problem("a string expected") }
            let quote = bytes[at]
            at += 1
            let start = at
            while at < end, bytes[at] != quote {
                guard bytes[at] >= 0x20, bytes[at] < 0x7F, bytes[at] != UInt8(ascii: "\\") else { throw problem("an unexpected character in a string") }
                at += 1
            }
            guard at < end else { throw problem("an unterminated string") }
            at += 1
            return String(decoding: bytes[start..<(at - 1)], as: UTF8.self)
        }
        func integer() throws(DataError) -> Int {
            let start = at
            while at < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
            guard at > start, at - start <= 18, bytes[start] != UInt8(ascii: "0") || at - start == 1,
                  let value = Int(String(decoding: bytes[start..<at], as: UTF8.self)) else { throw problem("a dimension expected") }
            return value
        }
        func word(_ text: String) -> Bool {
            let utf8 = Array(text.utf8)
            guard end - at >= utf8.count, bytes[at..<(at + utf8.count)].elementsEqual(utf8) else { return false }
            at += utf8.count
            return true
        }
        var result = HeaderLiteral()
        var seen = Set<String>()
        guard take(UInt8(ascii: "{")) else { throw problem("'{' expected") }
        skipSpace()
        while !take(UInt8(ascii: "}")) {
            let key = try string()
            guard seen.insert(key).inserted else { throw problem("key '\(key)' twice") }
            skipSpace()
            guard take(UInt8(ascii: ":")) else { throw problem("':' expected") }
            skipSpace()
            switch key {
            case "descr": result.descr = try string()
            case "fortran_order":
                if word("True") { result.fortranOrder = true } else if word("False") { result.fortranOrder = false } else { throw problem("True or False expected") }
            case "shape":
                guard take(UInt8(ascii: "(")) else { throw problem("a tuple expected") }
                skipSpace()
                var dims: [Int] = []
                while !take(UInt8(ascii: ")")) {
                    dims.append(try integer())
                    skipSpace()
                    // One element needs its comma: `(3)` is an integer, not a tuple.
                    if take(UInt8(ascii: ",")) { skipSpace() } else if dims.count == 1 || !(at < end && bytes[at] == UInt8(ascii: ")")) {
                        throw problem("',' expected in the shape")
                    }
                }
                result.shape = dims
            default:
                throw problem("unknown key '\(key)'")
            }
            skipSpace()
            if take(UInt8(ascii: ",")) { skipSpace() } else if !(at < end && bytes[at] == UInt8(ascii: "}")) { throw problem("',' or '}' expected") }
        }
        skipSpace()
        guard at == end else { throw problem("text after the dict") }
        guard seen == ["descr", "fortran_order", "shape"] else { throw problem("keys \(seen.sorted()), expected descr, fortran_order and shape") }
        return result
    }
}

extension Numpy {
    /// Writes a float32 `.npy` file of `shape` and `values`, atomically (a temporary file renamed
    /// into place).
    public static func write(shape: [Int], values: [Float], to path: String) throws {
        try AtomicFile.write(encode(shape: shape, values: values), to: path)
    }

    /// A `.npy` (version 1.0) image of a float32 array.
    public static func encode(shape: [Int], values: [Float]) -> [UInt8] {
        precondition(shape.reduce(1, *) == values.count)
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Pad with spaces so that the data starts on a 64-byte boundary, ending in a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let length = header.utf8.count
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        bytes += Array(header.utf8)
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        return bytes
    }
}

extension Numpy {
    /// A `.npz` image (a zip of stored `.npy` members, as `numpy.savez` writes) of float32 arrays,
    /// in the order given; member `NAME.npy` for each name. Entries carry a fixed date
    /// (2000-01-01 12:00), so the same arrays give the same bytes.
    public static func encodeArchive(_ arrays: [(name: String, shape: [Int], values: [Float])]) throws -> [UInt8] {
        let archive: Archive
        do { archive = try Archive(data: Data(), accessMode: .create) } catch { throw DataError(file: "<npz>", reason: "cannot create an archive: \(error)") }
        let epoch = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "UTC"), year: 2000, month: 1, day: 1, hour: 12).date!
        for array in arrays {
            let member = Data(encode(shape: array.shape, values: array.values))
            do {
                try archive.addEntry(with: array.name + ".npy", type: .file, uncompressedSize: Int64(member.count),
                                     modificationDate: epoch, compressionMethod: .none) { position, size in
                    member.subdata(in: Int(position)..<Int(position) + size)
                }
            } catch {
                throw DataError(file: "<npz>", array: array.name, reason: "cannot add to the archive: \(error)")
            }
        }
        guard let data = archive.data else { throw DataError(file: "<npz>", reason: "the archive has no data") }
        return [UInt8](data)
    }
}
