import LAQFormat
import Testing

/// spec/FORMAT.md §6.3–§6.6: the packed layouts, byte for byte.
@Suite struct PackingTests {
    @Test("§6.6 worked example: k = 2")
    func workedTwoBit() {
        #expect(CodebookLayout.bits(2).pack([1, 2, 0, 3, 1]) == [0xC9, 0x01])
    }

    @Test("§6.6 worked example: k = 3 straddles a byte boundary")
    func workedThreeBit() {
        #expect(CodebookLayout.bits(3).pack([5, 3, 7]) == [0xDD, 0x01])
    }

    @Test("§6.6 worked example: base 3")
    func workedBase3() {
        #expect(CodebookLayout.base3().pack([2, 0, 1, 1, 2, 1]) == [0xC8, 0x01])
        #expect(CodebookLayout.base3(axis: 1).pack([2, 0, 1, 0, 2, 2]) == [0xAD, 0x02])
    }

    /// A bit-by-bit reference of §6.3, independent of the kernel's accumulator.
    static func referencePack(_ codes: [UInt8], bits: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (codes.count * bits + 7) / 8)
        for (index, code) in codes.enumerated() {
            for bit in 0..<bits where (code >> bit) & 1 == 1 {
                let streamBit = index * bits + bit
                out[streamBit / 8] |= 1 << (streamBit % 8)
            }
        }
        return out
    }

    static let lengths = [0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 1023, 1025]

    @Test("§6.3 bits packing equals the bit-by-bit reference and round-trips", arguments: 1...8)
    func bitsPacking(bits: Int) throws {
        for count in Self.lengths {
            let codes = (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) & UInt8((1 << bits) - 1) }
            let layout = CodebookLayout.bits(bits)
            let packed = layout.pack(codes)
            #expect(packed == Self.referencePack(codes, bits: bits), "k=\(bits) n=\(count)")
            #expect(UInt64(packed.count) == layout.packedLength(count: UInt64(count)))
            var unpacked = [UInt8](repeating: 0xFF, count: count)
            try packed.withUnsafeBytes { raw in
                try unpacked.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
            #expect(unpacked == codes, "k=\(bits) n=\(count)")
        }
    }

    @Test("§6.4 base-3 packing round-trips and takes ⌈n/5⌉ bytes")
    func base3Packing() throws {
        for count in Self.lengths {
            let codes = (0..<count).map { UInt8(($0 * 7 + 1) % 3) }
            let layout = CodebookLayout.base3()
            let packed = layout.pack(codes)
            #expect(packed.count == (count + 4) / 5)
            #expect(packed.allSatisfy { $0 < 243 })
            var unpacked = [UInt8](repeating: 9, count: count)
            try packed.withUnsafeBytes { raw in
                try unpacked.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
            #expect(unpacked == codes)
        }
    }

    @Test("§6.3: non-zero padding bits are rejected")
    func paddingBits() {
        let layout = CodebookLayout.bits(3)
        var unpacked = [UInt8](repeating: 0, count: 3)
        #expect(throws: FormatError.invalidCodes(tensor: "t", offset: 128, index: 3, reason: "unused high bits of the last byte are not zero")) {
            try [UInt8]([0xDD, 0x03]).withUnsafeBytes { raw in
                try unpacked.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
        }
    }

    @Test("§6.4: base-3 bytes ≥ 243 and non-zero trailing trits are rejected")
    func base3Ranges() {
        let layout = CodebookLayout.base3()
        var five = [UInt8](repeating: 0, count: 5)
        #expect(throws: FormatError.invalidCodes(tensor: "t", offset: 128, index: 0, reason: "base-3 byte 243 ≥ 243")) {
            try [UInt8]([243]).withUnsafeBytes { raw in
                try five.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
        }
        var one = [UInt8](repeating: 0, count: 1)
        #expect(throws: FormatError.invalidCodes(tensor: "t", offset: 128, index: 1, reason: "base-3 positions after the last code are not zero")) {
            try [UInt8]([3]).withUnsafeBytes { raw in
                try one.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
        }
    }

    @Test("§6.5: a code ≥ L is rejected")
    func codeRange() {
        let layout = CodebookLayout.bits(2, levels: 3)
        var codes = [UInt8](repeating: 0, count: 4)
        #expect(throws: FormatError.invalidCodes(tensor: "t", offset: 128, index: 2, reason: "code 3 ≥ 3 levels")) {
            try layout.pack([0, 1, 3, 2]).withUnsafeBytes { raw in
                try codes.withUnsafeMutableBufferPointer { try layout.unpack(raw, into: $0, tensor: "t", offset: 128) }
            }
        }
    }

    @Test("§6.2 group(i): per-axis tables index the right dimension")
    func groups() {
        // shape [2, 3, 2], axis 1: group = (i / 2) % 3.
        let layout = CodebookLayout.bits(1, axis: 1)
        let levels: [Float] = [0, 1, 10, 11, 20, 21]
        let codes: [UInt8] = [0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1]
        var output = [Float](repeating: -1, count: 12)
        codes.withUnsafeBufferPointer { codes in
            levels.withUnsafeBufferPointer { levels in
                output.withUnsafeMutableBufferPointer { layout.dequantize(codes: codes, levels: levels, shape: [2, 3, 2], into: $0) }
            }
        }
        #expect(output == [0, 1, 11, 10, 21, 21, 0, 0, 10, 11, 21, 21])
    }
}

/// §6.1: float16 and bfloat16 conversions round to nearest, ties to even, and keep NaN.
@Suite struct HalfPrecisionTests {
    static let bfloat16Cases: [(Float, UInt16)] = [
        (1, 0x3F80), (-2, 0xC000), (1.00390625, 0x3F80) /* tie → even */, (1.01171875, 0x3F82) /* tie → even (up) */,
        (.infinity, 0x7F80), (-0.0, 0x8000), (3.4028235e38, 0x7F80) /* rounds to inf */,
    ]
    static let float16Cases: [(Float, UInt16)] = [(1, 0x3C00), (65504, 0x7BFF), (65520, 0x7C00), (-0.0, 0x8000), (5.9604645e-08, 0x0001)]

    @Test(arguments: bfloat16Cases)
    func bfloat16(value: Float, bits: UInt16) {
        #expect(HalfPrecision.bfloat16Bits(value) == bits)
    }

    @Test func bfloat16NaN() {
        let bits = HalfPrecision.bfloat16Bits(Float(bitPattern: 0x7F80_0001))  // signalling NaN, payload in low bits
        #expect(HalfPrecision.float(fromBFloat16: bits).isNaN)
    }

    @Test(arguments: float16Cases)
    func float16(value: Float, bits: UInt16) {
        #expect(HalfPrecision.float16Bits(value) == bits)
    }

    @Test func everyBFloat16RoundTrips() {
        for bits in UInt16.min...UInt16.max {
            let value = HalfPrecision.float(fromBFloat16: bits)
            if value.isNaN { continue }
            #expect(HalfPrecision.bfloat16Bits(value) == bits)
        }
    }
}
