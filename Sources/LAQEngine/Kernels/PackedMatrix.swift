import Dispatch
import LAQFormat

/// A quantized K×N matrix (a Dense, convolution or recurrent kernel in Keras' layout, the last
/// axis the output) executed from its packed codes (spec/FORMAT.md §6): products decode tiles of
/// a few rows into a small float buffer and hand them to OpenBLAS, so the float32 matrix never
/// exists; memory stays at the packed size plus one tile.
///
/// Decoding is table-driven: for per-tensor levels, each packed byte maps to its 5 (base 3) or
/// 8/k (k = 1, 2, 4 bits) floats through a 256-entry table; per-channel levels and other widths
/// go through the code table, then the column's level table.
struct PackedMatrix: @unchecked Sendable {
    let rows: Int
    let columns: Int
    let layout: CodebookLayout
    /// G × L levels: G = 1 (per tensor) or G = `columns` (per output channel).
    let levels: [Float]
    let packed: [UInt8]
    let perColumn: Bool
    /// Codes per packed byte when bytes hold whole codes (base 3: 5; k ∈ {1, 2, 4, 8}: 8/k), else 0.
    let codesPerByte: Int
    /// byte → its codes (codesPerByte per byte), when codesPerByte > 0.
    let codeTable: [UInt8]
    /// byte → its levels (per-tensor tables only), when codesPerByte > 0.
    let levelTable: [Float]

    /// Rows decoded per tile: about 64 Ki floats (256 KiB, within L2).
    var tileRows: Int { max(1, min(rows, (64 * 1024) / max(columns, 1))) }

    init?(_ codebook: PackedCodebook) {
        guard codebook.shape.count >= 1 else { return nil }
        let layout = codebook.layout
        columns = codebook.shape.last!
        rows = codebook.shape.dropLast().reduce(1, *)
        guard layout.axis == nil || layout.axis == codebook.shape.count - 1, rows > 0, columns > 0 else { return nil }
        self.layout = layout
        levels = codebook.levels
        packed = codebook.packed
        perColumn = layout.axis != nil
        switch (layout.packing, layout.bits) {
        case (.base3, _): codesPerByte = 5
        case (.bits, 1), (.bits, 2), (.bits, 4), (.bits, 8): codesPerByte = 8 / layout.bits
        default: codesPerByte = 0
        }
        var codeTable: [UInt8] = []
        var levelTable: [Float] = []
        if codesPerByte > 0 {
            let byteCount = layout.packing == .base3 ? 243 : 256
            codeTable.reserveCapacity(256 * codesPerByte)
            for byte in 0..<256 {
                var value = byte
                for _ in 0..<codesPerByte {
                    if layout.packing == .base3 {
                        codeTable.append(byte < byteCount ? UInt8(value % 3) : 0)
                        value /= 3
                    } else {
                        codeTable.append(UInt8(value & ((1 << layout.bits) - 1)))
                        value >>= layout.bits
                    }
                }
            }
            if !perColumn {
                // Codes ≥ L only occur in bytes a checked file cannot hold: map them to level 0.
                levelTable = codeTable.map { Int($0) < layout.levelCount ? codebook.levels[Int($0)] : 0 }
            }
        }
        self.codeTable = codeTable
        self.levelTable = levelTable
    }

    /// The code of element `index` (row-major), for the edges of a range.
    @inline(__always)
    func code(_ index: Int, _ bytes: UnsafePointer<UInt8>) -> Int {
        if layout.packing == .base3 {
            var value = Int(bytes[index / 5])
            for _ in 0..<(index % 5) { value /= 3 }
            return value % 3
        }
        let bit = index * layout.bits
        let low = Int(bytes[bit >> 3])
        let high = (bit >> 3) + 1 < packed.count ? Int(bytes[(bit >> 3) + 1]) : 0
        return ((low | high << 8) >> (bit & 7)) & ((1 << layout.bits) - 1)
    }

    /// Writes elements `start ..< start + count` (row-major) as floats to `output`.
    func decode(from start: Int, count: Int, into output: UnsafeMutablePointer<Float>) {
        packed.withUnsafeBufferPointer { bytesBuffer in
            levels.withUnsafeBufferPointer { levelsBuffer in
                let bytes = bytesBuffer.baseAddress!, levels = levelsBuffer.baseAddress!
                let levelCount = layout.levelCount
                @inline(__always) func value(_ index: Int, _ code: Int) -> Float {
                    perColumn ? levels[(index % columns) * levelCount + code] : levels[code]
                }
                var index = start
                let end = start + count
                guard codesPerByte > 0 else {
                    while index < end {
                        output[index - start] = value(index, code(index, bytes))
                        index += 1
                    }
                    return
                }
                let per = codesPerByte
                while index < end, index % per != 0 {
                    output[index - start] = value(index, code(index, bytes))
                    index += 1
                }
                if !perColumn {
                    levelTable.withUnsafeBufferPointer { table in
                        let table = table.baseAddress!
                        while index + per <= end {
                            let entry = table + Int(bytes[index / per]) * per
                            (output + (index - start)).update(from: entry, count: per)
                            index += per
                        }
                    }
                } else {
                    codeTable.withUnsafeBufferPointer { table in
                        let table = table.baseAddress!
                        var column = index % columns
                        while index + per <= end {
                            let entry = table + Int(bytes[index / per]) * per
                            for offset in 0..<per {
                                output[index - start + offset] = levels[column * levelCount + Int(entry[offset])]
                                column += 1
                                if column == columns { column = 0 }
                            }
                            index += per
                        }
                    }
                }
                while index < end {
                    output[index - start] = value(index, code(index, bytes))
                    index += 1
                }
            }
        }
    }

    /// C (m×N) = A (m×K, row stride `lda`) · W, or C += A·W when `accumulate`. Large products
    /// with few rows of A split W's rows over two threads (each decoding its own tiles).
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard m > 0 else { return }
        let parallel = m <= 16 && rows * columns >= 1 << 20 && rows >= 2 * tileRows
        if !parallel {
            multiplyRows(0..<rows, a, lda: lda, m: m, into: c, accumulate: accumulate)
            return
        }
        let half = (rows / 2 / tileRows) * tileRows
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: m * columns)
        defer { partial.deallocate() }
        // Each half writes only its own output; both are joined before either is read.
        struct Buffers: @unchecked Sendable {
            let a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, partial: UnsafeMutablePointer<Float>
        }
        let buffers = Buffers(a: a, c: c, partial: partial)
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            if part == 0 {
                multiplyRows(0..<half, buffers.a, lda: lda, m: m, into: buffers.c, accumulate: accumulate)
            } else {
                multiplyRows(half..<rows, buffers.a, lda: lda, m: m, into: buffers.partial, accumulate: false)
            }
        }
        for index in 0..<(m * columns) { c[index] += partial[index] }
    }

    private func multiplyRows(_ range: Range<Int>, _ a: UnsafePointer<Float>, lda: Int, m: Int,
                              into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if range.isEmpty {
            if !accumulate { c.update(repeating: 0, count: m * columns) }
            return
        }
        let tile = tileRows
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: tile * columns)
        defer { buffer.deallocate() }
        var first = true
        for start in stride(from: range.lowerBound, to: range.upperBound, by: tile) {
            let count = min(tile, range.upperBound - start)
            decode(from: start * columns, count: count * columns, into: buffer)
            BLAS.gemm(a + start, buffer, c, m: m, n: columns, k: count, lda: lda, accumulate: accumulate || !first)
            first = false
        }
    }
}

/// A layer's weight matrix as the engine multiplies by it: float32, or packed codes.
enum KernelMatrix: Sendable {
    case dense([Float])
    case packed(PackedMatrix)

    /// C (m×N) = A (m×K, row stride `lda`, default K) · W, or C += A·W when `accumulate`.
    func multiply(_ a: UnsafePointer<Float>, lda: Int? = nil, m: Int, k: Int, n: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        switch self {
        case let .dense(values):
            values.withUnsafeBufferPointer { b in
                BLAS.gemm(a, b.baseAddress!, c, m: m, n: n, k: k, lda: lda, accumulate: accumulate)
            }
        case let .packed(matrix):
            precondition(matrix.rows == k && matrix.columns == n, "packed kernel is \(matrix.rows)×\(matrix.columns), not \(k)×\(n)")
            matrix.multiply(a, lda: lda ?? k, m: m, into: c, accumulate: accumulate)
        }
    }

    var count: Int {
        switch self {
        case let .dense(values): values.count
        case let .packed(matrix): matrix.rows * matrix.columns
        }
    }
}
