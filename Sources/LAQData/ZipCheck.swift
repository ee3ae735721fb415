/// Checks a zip archive's structure (`.keras`, `.npz`) before ZIPFoundation walks it:
/// ZIPFoundation trusts the offsets it reads and traps on a central directory that points
/// outside the file. Read-only, from the bytes in memory (APPNOTE.TXT §4.3):
///
/// - the end-of-central-directory record (and its ZIP64 form) is present, for one disk, and its
///   central directory lies within the file, before the record;
/// - every central-directory entry lies within the directory, and they are as many as the
///   record says;
/// - every member's local header lies within the file before the directory, carries the same
///   name, method, flags, CRC-32 and sizes, and its data fits before the directory;
/// - no two members have the same name (two readers would pick different ones: Python's
///   zipfile, Keras', takes the last), and no name is absolute or climbs with `..`.
///
/// Members' sizes against limits and their CRC-32 are checked where they are read.
public enum ZipCheck {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// A member as the central directory describes it (checked against its local header).
    public struct Member: Sendable, Equatable {
        public var name: String
        /// 0 stored, 8 deflated.
        public var method: Int
        /// Where its data starts in the archive.
        public var dataOffset: Int
        public var compressedSize: UInt64
        public var uncompressedSize: UInt64
        public var crc32: UInt32
    }

    /// The members, in directory order; throws what is wrong. `bytes` is the whole archive (an
    /// array, or a memory-mapped `Data`).
    public static func validate<Bytes: RandomAccessCollection>(_ archive: Bytes) throws(Failure) -> [Member] where Bytes.Element == UInt8, Bytes.Index == Int {
        let bytes = Offset(base: archive)
        func fail(_ reason: String) -> Failure { Failure(reason: reason) }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        let length = bytes.count
        // The record: 22 bytes and a comment of up to 65535, at the end.
        guard length >= 22 else { throw fail("too short for a zip archive (\(length) bytes)") }
        // The last signature in the file is the record ZIPFoundation takes: its comment must end
        // the file (another record hidden in a comment would give the two readers two directories).
        var record = -1
        for at in stride(from: length - 22, through: max(0, length - 22 - 65535), by: -1)
        where bytes[at] == 0x50 && bytes[at + 1] == 0x4B && bytes[at + 2] == 0x05 && bytes[at + 3] == 0x06 {
            record = at
            break
        }
        guard record >= 0 else { throw fail("no end-of-central-directory record") }
        guard record + 22 + u16(record + 20) == length else { throw fail("the end-of-central-directory record's comment does not end the file") }
        var entries = u16(record + 10)
        var directorySize = UInt64(u32(record + 12))
        var directoryOffset = UInt64(u32(record + 16))
        guard u16(record + 4) == 0 || u16(record + 4) == 0xFFFF, u16(record + 8) == u16(record + 10) else {
            throw fail("an archive split over several disks")
        }
        var directoryEnd = record
        // ZIP64: a locator (20 bytes) right before the record, pointing at the 56-byte ZIP64
        // record right before it (where ZIPFoundation looks, whatever the locator says).
        let hasLocator = record >= 20 && u32(record - 20) == 0x0706_4B50
        if hasLocator || entries == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = record - 20
            guard hasLocator, locator >= 56 + 1 else { throw fail("a ZIP64 archive without its locator") }
            let offset = u64(locator + 8)
            guard offset == UInt64(locator - 56), u32(Int(offset)) == 0x0606_4B50, u16(Int(offset) + 14) >= 45 else {
                throw fail("the ZIP64 record is not where its locator and the record put it")
            }
            let at = Int(offset)
            guard u64(at + 24) == u64(at + 32), u64(at + 32) <= UInt64(Int.max) else { throw fail("a ZIP64 archive split over several disks") }
            entries = Int(u64(at + 32))
            directorySize = u64(at + 40)
            directoryOffset = u64(at + 48)
            directoryEnd = at
        }
        guard directoryOffset <= UInt64(directoryEnd), directorySize <= UInt64(directoryEnd) - directoryOffset else {
            throw fail("the central directory (offset \(directoryOffset), \(directorySize) bytes) lies outside the file of \(length) bytes")
        }
        let start = Int(directoryOffset)
        let end = start + Int(directorySize)
        var members: [Member] = []
        var seen = Set<String>()
        var at = start
        while at < end {
            guard end - at >= 46, u32(at) == 0x0201_4B50 else { throw fail("central directory entry \(members.count + 1) is damaged") }
            let (nameLength, extraLength, commentLength) = (u16(at + 28), u16(at + 30), u16(at + 32))
            let entryEnd = at + 46 + nameLength + extraLength + commentLength
            guard entryEnd <= end else { throw fail("central directory entry \(members.count + 1) runs past the directory") }
            let name = String(decoding: bytes.slice((at + 46)..<(at + 46 + nameLength)), as: UTF8.self)
            var compressed = UInt64(u32(at + 20))
            var uncompressed = UInt64(u32(at + 24))
            var local = UInt64(u32(at + 42))
            guard u16(at + 34) == 0 else { throw fail("member '\(name)': on another disk") }
            // ZIP64 extra field (id 1): the 8-byte values of the fields set to 0xFFFFFFFF, in
            // order, and nothing else (ZIPFoundation reads the first such field of exactly that
            // size, and ignores zero values).
            let wide = [uncompressed, compressed, local].filter { $0 == 0xFFFF_FFFF }.count
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            var seenWide = false
            while extra + 4 <= extraEnd {
                let (id, size) = (u16(extra), u16(extra + 2))
                guard extra + 4 + size <= extraEnd else { throw fail("member '\(name)': a damaged extra field") }
                if id == 1 {
                    guard !seenWide, size == 8 * wide else { throw fail("member '\(name)': a ZIP64 field that does not fit its entry") }
                    seenWide = true
                    var field = extra + 4
                    func next() throws(Failure) -> UInt64 {
                        defer { field += 8 }
                        guard u64(field) > 0 else { throw fail("member '\(name)': a zero ZIP64 value") }
                        return u64(field)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                extra += 4 + size
            }
            guard wide == 0 || seenWide else { throw fail("member '\(name)': sizes that need a ZIP64 field it lacks") }
            let (method, flags) = (u16(at + 10), u16(at + 8))
            // The version needed to extract (its low byte, ×10): Python's zipfile refuses what
            // needs more than 6.3, ZIPFoundation ignores it.
            guard bytes[at + 6] <= 63 else { throw fail("member '\(name)': needs zip version \(Double(bytes[at + 6]) / 10) to extract, past 6.3") }
            guard uncompressed <= UInt64(Int64.max), method != 0 || uncompressed == compressed else {
                throw fail("member '\(name)': a stored member whose sizes disagree")
            }
            guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\\"), !name.split(separator: "/").contains("..") else {
                throw fail("member '\(name)': an absolute path or one that climbs out of the archive")
            }
            guard seen.insert(name).inserted else { throw fail("two members named '\(name)' (readers differ on which counts)") }
            // The local header: within the file, before the directory, with the same name.
            guard local <= directoryOffset, directoryOffset - local >= 30, u32(Int(local)) == 0x0403_4B50 else {
                throw fail("member '\(name)': its local header (offset \(local)) lies outside the file's data")
            }
            let header = Int(local)
            let (localName, localExtra) = (u16(header + 26), u16(header + 28))
            let dataStart = UInt64(header + 30 + localName + localExtra)
            guard dataStart <= directoryOffset, localName == nameLength,
                  bytes.slice((header + 30)..<(header + 30 + localName)).elementsEqual(bytes.slice((at + 46)..<(at + 46 + nameLength))),
                  u16(header + 8) == method, u16(header + 6) == flags, bytes[header + 4] <= 63 else {
                throw fail("member '\(name)': its local header disagrees with the central directory")
            }
            // The data, and a data descriptor after it when flag bit 3 says so (16 or 24 bytes).
            let descriptor: UInt64 = flags & 8 == 0 ? 0 : (wide > 0 ? 24 : 16)
            guard compressed <= directoryOffset - dataStart, descriptor <= directoryOffset - dataStart - compressed else {
                throw fail("member '\(name)': \(compressed) bytes of data do not fit before the central directory")
            }
            // The local CRC-32 and sizes: the central directory's, or zeros when a data descriptor
            // (flag bit 3) follows; 0xFFFFFFFF sizes defer to the local ZIP64 field. A reader that takes
            // the local sizes (Python's zipfile reads the compressed bytes the directory says,
            // ZIPFoundation inflates to the stream's end) must not see other members' bytes.
            let localCRC = u32(header + 14)
            var (localCompressed, localUncompressed) = (UInt64(u32(header + 18)), UInt64(u32(header + 22)))
            if localCompressed == 0xFFFF_FFFF || localUncompressed == 0xFFFF_FFFF {
                // A local ZIP64 field holds both sizes, uncompressed first (APPNOTE 4.5.3).
                var field = header + 30 + localName
                let fieldEnd = field + localExtra
                while field + 4 <= fieldEnd, u16(field) != 1 { field += 4 + u16(field + 2) }
                guard field + 4 + 16 <= fieldEnd, u16(field + 2) >= 16 else { throw fail("member '\(name)': a local header without its ZIP64 sizes") }
                localUncompressed = u64(field + 4)
                localCompressed = u64(field + 12)
            }
            let deferred = flags & 8 != 0 && localCRC == 0 && localCompressed == 0 && localUncompressed == 0
            guard deferred || (localCRC == u32(at + 16) && localCompressed == compressed && localUncompressed == uncompressed) else {
                throw fail("member '\(name)': its local header's CRC-32 or sizes disagree with the central directory")
            }
            members.append(Member(name: name, method: method, dataOffset: Int(dataStart), compressedSize: compressed,
                                  uncompressedSize: uncompressed, crc32: UInt32(u32(at + 16))))
            at = entryEnd
        }
        guard members.count == entries else { throw fail("the directory holds \(members.count) members, its record says \(entries)") }
        return members
    }

    /// An archive's bytes indexed from 0 (a `Data` slice may start elsewhere).
    private struct Offset<Base: RandomAccessCollection> where Base.Element == UInt8, Base.Index == Int {
        let base: Base
        var count: Int { base.count }
        subscript(_ at: Int) -> UInt8 { base[base.startIndex + at] }
        func slice(_ range: Range<Int>) -> Base.SubSequence { base[(base.startIndex + range.lowerBound)..<(base.startIndex + range.upperBound)] }
    }
}
