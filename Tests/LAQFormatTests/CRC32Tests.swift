import CLAQFormatSupport
import CLAQZlib
@testable import LAQFormat
import LAQExamples
import Testing

/// The CRC-32 every payload, manifest and header carries (spec/FORMAT.md §3): the folded kernel
/// must give zlib's value bit for bit, or every file it writes would fail verification.
@Suite struct CRC32Tests {
    static func zlibCRC(_ crc: UInt32, _ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CLAQZlib.crc32(UInt(crc), $0.baseAddress, UInt32($0.count))) }
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("the folded kernel equals zlib for every multiple of 16 from 64 to 1 KiB, any alignment and starting CRC")
    func foldedKernelEqualsZlib() throws {
        try #require(laq_crc32_fold_available() != 0, "no PCLMULQDQ here: only zlib runs")
        let bytes = Self.randomBytes(4096 + 64, seed: 5)
        var generator = SeededGenerator(seed: 6)
        for length in stride(from: 64, through: 1024, by: 16) {
            let offset = Int.random(in: 0..<16, using: &generator)
            let start = UInt32.random(in: 0...UInt32.max, using: &generator)
            let slice = bytes[offset..<offset + length]
            let folded = slice.withUnsafeBufferPointer { laq_crc32_fold(start, $0.baseAddress, length) }
            #expect(folded == Self.zlibCRC(start, slice), "length \(length), offset \(offset)")
        }
        // Long input: the 64-byte loop runs many times.
        let folded = bytes.withUnsafeBufferPointer { laq_crc32_fold(0, $0.baseAddress, 4096) }
        #expect(folded == Self.zlibCRC(0, bytes[0..<4096]))
    }

    @Test("Zlib.crc32: the check value, and every length from 0 to 300 and continuing, equal to zlib")
    func crc32EqualsZlib() {
        #expect(Zlib.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        let bytes = Self.randomBytes(1000, seed: 7)
        for length in 0...300 {
            let slice = bytes[3..<3 + length]
            #expect(slice.withUnsafeBytes { Zlib.crc32($0) } == Self.zlibCRC(0, slice), "length \(length)")
            // Continuing from a previous CRC, as zlib's running crc32 does.
            let first = bytes[0..<3].withUnsafeBytes { Zlib.crc32($0) }
            #expect(slice.withUnsafeBytes { Zlib.crc32($0, continuing: first) } == Self.zlibCRC(0, bytes[0..<3 + length]))
        }
    }
}
