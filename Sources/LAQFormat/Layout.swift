/// Byte-level constants and the fixed-size structures of spec/FORMAT.md §2–§3.
public enum Layout {
    /// `"\x89LAQ\r\n\x1a\n"` (§2).
    public static let magic: [UInt8] = [0x89, 0x4C, 0x41, 0x51, 0x0D, 0x0A, 0x1A, 0x0A]
    /// `"LAQEND\r\n"` (§3).
    public static let endMagic: [UInt8] = [0x4C, 0x41, 0x51, 0x45, 0x4E, 0x44, 0x0D, 0x0A]
    public static let headerSize = 64
    /// Where the manifest starts (rule 2.7: `manifest_offset` is 64); the offset that errors in
    /// what the manifest declares carry, since JSON decoding gives no finer position.
    public static let manifestOffset = UInt64(headerSize)
    public static let trailerSize = 40
    public static let alignment = 64
    public static let currentMajor: UInt16 = 1
    public static let currentMinor: UInt16 = 0
    /// Rule 4.1 limits.
    public static let maxManifestLength: UInt64 = 64 << 20
    public static let minManifestLength: UInt64 = 2
    public static let maxManifestDepth = 128
    public static let maxTensorCount = 1 << 20
    public static let maxRank = 8
    public static let maxNameBytes = 256
    /// Largest integer the manifest may hold (exact in every JSON reader).
    public static let maxInteger: UInt64 = (1 << 53) - 1
    /// The logical dtypes of §5.
    public static let dtypes: Set<String> = ["float32", "float16", "bfloat16", "float64"]
    /// Deflate's worst-case expansion ratio, for rule 7.1.
    public static let maxInflateRatio: UInt64 = 1032

    /// The smallest multiple of 64 that is ≥ `value`, or nil on overflow.
    public static func align(_ value: UInt64) -> UInt64? {
        let (sum, overflow) = value.addingReportingOverflow(UInt64(alignment - 1))
        return overflow ? nil : sum & ~UInt64(alignment - 1)
    }
}

/// The 64-byte header (§2), as numbers.
public struct Header: Equatable, Sendable {
    public var major: UInt16 = Layout.currentMajor
    public var minor: UInt16 = Layout.currentMinor
    public var manifestLength: UInt64
    public var dataOffset: UInt64
    public var dataLength: UInt64
    public var manifestCRC32: UInt32

    public var trailerOffset: UInt64 { dataOffset + dataLength }
    public var fileSize: UInt64 { dataOffset + dataLength + UInt64(Layout.trailerSize) }

    /// The header's 64 bytes, with its own CRC-32.
    func encoded() -> [UInt8] {
        var bytes = Layout.magic
        bytes.appendLE(major)
        bytes.appendLE(minor)
        bytes.appendLE(UInt32(0))  // flags
        bytes.appendLE(UInt64(Layout.headerSize))  // manifest_offset
        bytes.appendLE(manifestLength)
        bytes.appendLE(dataOffset)
        bytes.appendLE(dataLength)
        bytes.appendLE(manifestCRC32)
        bytes.appendLE(UInt64(0))  // reserved
        bytes.appendLE(Zlib.crc32(bytes))
        assert(bytes.count == Layout.headerSize)
        return bytes
    }

    /// Parses and checks the header against rules 2.1–2.7, given the whole file's size.
    static func decode(_ file: UnsafeRawBufferPointer, maxManifestLength: UInt64 = Layout.maxManifestLength) throws(FormatError) -> Header {
        let size = UInt64(file.count)
        let minimum = UInt64(Layout.headerSize + Layout.trailerSize)
        // Rule 2.2 first when at least the magic is there: a wrong file type is the likelier story.
        if file.count >= 8 {
            let found = Array(file[0..<8])
            if found != Layout.magic { throw .badMagic(found: found) }
        }
        guard size >= minimum else { throw .truncated(needed: minimum, actual: size) }
        let major = file.loadLE(UInt16.self, at: 8)
        let minor = file.loadLE(UInt16.self, at: 10)
        if major == Layout.currentMajor.byteSwapped { throw .byteSwapped }
        guard major == Layout.currentMajor else {
            throw .unsupportedVersion(major: major, minor: minor, supportedMajor: Layout.currentMajor)
        }
        let storedCRC = file.loadLE(UInt32.self, at: 60)
        let computedCRC = Zlib.crc32(UnsafeRawBufferPointer(rebasing: file[0..<60]))
        guard storedCRC == computedCRC else { throw .headerChecksumMismatch(stored: storedCRC, computed: computedCRC) }
        let flags = file.loadLE(UInt32.self, at: 12)
        guard flags == 0 else { throw .nonZeroReserved(field: "flags", value: UInt64(flags)) }
        let reserved = file.loadLE(UInt64.self, at: 52)
        guard reserved == 0 else { throw .nonZeroReserved(field: "reserved", value: reserved) }

        let manifestOffset = file.loadLE(UInt64.self, at: 16)
        guard manifestOffset == UInt64(Layout.headerSize) else {
            throw .badLayout(field: "manifest_offset", value: manifestOffset, expected: UInt64(Layout.headerSize))
        }
        let manifestLength = file.loadLE(UInt64.self, at: 24)
        guard manifestLength >= Layout.minManifestLength, manifestLength <= maxManifestLength else {
            throw .manifestTooLarge(length: manifestLength, limit: maxManifestLength)
        }
        let dataOffset = file.loadLE(UInt64.self, at: 32)
        let expectedDataOffset = Layout.align(UInt64(Layout.headerSize) + manifestLength)!
        guard dataOffset == expectedDataOffset else {
            throw .badLayout(field: "data_offset", value: dataOffset, expected: expectedDataOffset)
        }
        let dataLength = file.loadLE(UInt64.self, at: 40)
        guard dataLength % UInt64(Layout.alignment) == 0 else {
            throw .badLayout(field: "data_length", value: dataLength, expected: Layout.align(dataLength) ?? 0)
        }
        let (end, overflow) = dataOffset.addingReportingOverflow(dataLength)
        guard !overflow, end <= UInt64.max - UInt64(Layout.trailerSize) else {
            throw .badLayout(field: "data_length", value: dataLength, expected: size)
        }
        let expectedSize = end + UInt64(Layout.trailerSize)
        if size < expectedSize { throw .truncated(needed: expectedSize, actual: size) }
        if size > expectedSize { throw .trailingBytes(count: size - expectedSize) }
        return Header(
            major: major, minor: minor, manifestLength: manifestLength, dataOffset: dataOffset,
            dataLength: dataLength, manifestCRC32: file.loadLE(UInt32.self, at: 48))
    }
}

extension [UInt8] {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    /// Loads a little-endian integer; the caller has checked `offset + size ≤ count`.
    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

#if _endian(big)
#error("LAQFormat copies float and level arrays as little-endian bytes; big-endian hosts are not supported")
#endif
