/// Packing and unpacking of codebook codes (spec/FORMAT.md §6.3–§6.5): the scalar reference
/// kernels that define the layout. Faster execution kernels live in the engine and are tested
/// against these.
extension CodebookLayout {
    /// Packs one code per element (each < `levelCount`) into the layout's byte stream.
    public func pack(_ codes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let count = codes.count
        let length = Int(packedLength(count: UInt64(count))!)
        return [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            switch packing {
            case .bits:
                var accumulator: UInt64 = 0
                var pending = 0
                var next = 0
                for code in codes {
                    accumulator |= UInt64(code) << pending
                    pending += bits
                    while pending >= 8 {
                        out[next] = UInt8(truncatingIfNeeded: accumulator)
                        next += 1
                        accumulator >>= 8
                        pending -= 8
                    }
                }
                if pending > 0 {
                    out[next] = UInt8(truncatingIfNeeded: accumulator)
                    next += 1
                }
                precondition(next == length)
            case .base3:
                var index = 0
                for byte in 0..<length {
                    var value = 0
                    var weight = 1
                    for _ in 0..<5 where index < count {
                        value += Int(codes[index]) * weight
                        weight *= 3
                        index += 1
                    }
                    out[byte] = UInt8(value)
                }
            }
            initialized = length
        }
    }

    public func pack(_ codes: [UInt8]) -> [UInt8] {
        codes.withUnsafeBufferPointer { pack($0) }
    }

    /// Unpacks `output.count` codes from `packed`, checking padding (rule 6.3), base-3 byte
    /// ranges (rule 6.4) and that every code is < `levelCount` (rule 6.5).
    ///
    /// `tensor` and `offset` (the payload's start in its file) only name the place in a thrown
    /// ``FormatError/invalidCodes(tensor:offset:index:reason:)``.
    ///
    /// - Precondition: `packed.count == packedLength(count: output.count)`.
    public func unpack(
        _ packed: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>, tensor: String, offset: UInt64
    ) throws(FormatError) {
        let count = output.count
        precondition(UInt64(packed.count) == packedLength(count: UInt64(count)))
        switch packing {
        case .bits:
            if bits == 8 {
                if count > 0 { output.baseAddress!.update(from: packed.bindMemory(to: UInt8.self).baseAddress!, count: count) }
            } else {
                let mask = UInt64((1 << bits) - 1)
                var accumulator: UInt64 = 0
                var available = 0
                var next = 0
                for index in 0..<count {
                    while available < bits {
                        accumulator |= UInt64(packed[next]) << available
                        next += 1
                        available += 8
                    }
                    output[index] = UInt8(truncatingIfNeeded: accumulator & mask)
                    accumulator >>= UInt64(bits)
                    available -= bits
                }
                if accumulator != 0 {
                    throw .invalidCodes(tensor: tensor, offset: offset, index: count, reason: "unused high bits of the last byte are not zero")
                }
            }
        case .base3:
            var index = 0
            for byteIndex in 0..<packed.count {
                var value = Int(packed[byteIndex])
                guard value < 243 else {
                    throw .invalidCodes(tensor: tensor, offset: offset, index: index, reason: "base-3 byte \(value) ≥ 243")
                }
                for _ in 0..<5 {
                    if index < count {
                        output[index] = UInt8(value % 3)
                        index += 1
                    } else if value % 3 != 0 {
                        throw .invalidCodes(tensor: tensor, offset: offset, index: count, reason: "base-3 positions after the last code are not zero")
                    }
                    value /= 3
                }
            }
        }
        if levelCount < (packing == .base3 ? 3 : 1 << bits) {
            let limit = UInt8(levelCount)
            for index in 0..<count where output[index] >= limit {
                throw .invalidCodes(
                    tensor: tensor, offset: offset, index: index, reason: "code \(output[index]) ≥ \(levelCount) levels")
            }
        }
    }

    /// Maps codes to values: `out[i] = levels[group(i)][codes[i]]` (§6.2).
    ///
    /// - Precondition: codes are valid (< `levelCount`), `levels.count == G·L`.
    public func dequantize(
        codes: UnsafeBufferPointer<UInt8>, levels: UnsafeBufferPointer<Float>, shape: [Int],
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(codes.count == output.count)
        // An empty tensor may have huge other dimensions: nothing to do, and no products to form.
        guard !codes.isEmpty else { return }
        let levelCount = self.levelCount
        guard let axis else {
            for index in 0..<codes.count { output[index] = levels[Int(codes[index])] }
            return
        }
        let groups = shape[axis]
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = groups == 0 || inner == 0 ? 0 : codes.count / (groups * inner)
        var index = 0
        for _ in 0..<outer {
            for group in 0..<groups {
                let row = group * levelCount
                for _ in 0..<inner {
                    output[index] = levels[row + Int(codes[index])]
                    index += 1
                }
            }
        }
    }
}
