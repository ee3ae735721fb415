import CLAQKernels
import Dispatch
import LAQFormat

/// A quantized K×N matrix (a Dense, convolution or recurrent kernel in Keras' layout, the last
/// axis the output) executed from its packed codes (spec/FORMAT.md §6). The float32 matrix
/// never exists: memory stays at the packed size plus what a product decodes at a time.
///
/// Binary and ternary codes (L ≤ 3 levels), up to 16 levels affine in the code (linear m-bit)
/// and signed magnitudes (logarithmic m-bit) are re-laid at load as bit planes
/// (``PlaneMatrix``) for the SIMD kernels: small batches multiply straight from the planes,
/// larger ones decode panels of 32 columns for laq's panel kernel (AVX2 or AVX-512; without
/// them, row tiles for OpenBLAS). Other codes keep their packed bytes: a vector is multiplied
/// straight from them, larger products decode row tiles (4 MiB) for OpenBLAS, and decoding is
/// table-driven: for per-tensor levels, each packed byte maps to its 5 (base 3) or 8/k
/// (k = 1, 2, 4 bits) floats through a 256-entry table; per-channel levels and other widths
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
    /// The bit planes that replace `packed`, when the codes suit them.
    let planes: PlaneMatrix?
    /// Without AVX2, products with at most this many rows of A run on the planes; larger ones
    /// decode tiles for OpenBLAS (measured by `laq-bench --packed`).
    static let planeProductRows = 16

    /// `activations`: `.int8` lays planes out for int8 activations, and every
    /// product with them then runs on the planes.
    init?(_ codebook: PackedCodebook, activations: ActivationPrecision = .float32) {
        guard codebook.shape.count >= 1 else { return nil }
        let layout = codebook.layout
        columns = codebook.shape.last!
        rows = codebook.shape.dropLast().reduce(1, *)
        guard layout.axis == nil || layout.axis == codebook.shape.count - 1, rows > 0, columns > 0,
              codebook.packed.count == layout.packedLength(count: UInt64(rows * columns)).map(Int.init),
              codebook.levels.count == (layout.axis == nil ? 1 : columns) * layout.levelCount else { return nil }
        // Every code must index its table: a file's codebooks were checked when read, one built
        // in memory is checked here.
        if !codebook.isChecked {
            var scratch = [UInt8](repeating: 0, count: rows * columns)
            let valid = codebook.packed.withUnsafeBytes { bytes in
                scratch.withUnsafeMutableBufferPointer { (try? layout.unpack(bytes, into: $0, tensor: "", offset: 0)) != nil }
            }
            guard valid else { return nil }
        }
        self.layout = layout
        levels = codebook.levels
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
        // Planes for binary and ternary codes, and for up to 16 affine (linear m-bit) or signed
        // (logarithmic) levels.
        if layout.levelCount <= 16 {
            let (rows, columns, per) = (rows, columns, codesPerByte)
            planes = codebook.packed.withUnsafeBufferPointer { bytes in
                codeTable.withUnsafeBufferPointer { table in
                    PlaneMatrix(rows: rows, columns: columns, levelCount: layout.levelCount, levels: codebook.levels,
                                perColumn: layout.axis != nil, int8Activations: activations == .int8) { startRow, rowCount, output in
                        Self.codes(layout, bytes, table, codesPerByte: per, from: startRow * columns, count: rowCount * columns, into: output)
                        return true
                    }
                }
            }
        } else {
            planes = nil
        }
        if planes != nil {
            // The planes hold everything: keep no second copy of the codes.
            packed = []
            self.codeTable = []
            self.levelTable = []
        } else {
            packed = codebook.packed
            self.codeTable = codeTable
            self.levelTable = levelTable
        }
    }

    /// Writes the codes of elements `start ..< start + count` (row-major) to `output`.
    private static func codes(_ layout: CodebookLayout, _ bytes: UnsafeBufferPointer<UInt8>, _ table: UnsafeBufferPointer<UInt8>,
                              codesPerByte per: Int, from start: Int, count: Int, into output: UnsafeMutablePointer<UInt8>) {
        let byteCount = bytes.count, bytes = bytes.baseAddress!
        for index in start..<(start + count) {
            if per > 0 {
                output[index - start] = table[Int(bytes[index / per]) * per + index % per]
            } else {
                let bit = index * layout.bits
                let low = Int(bytes[bit >> 3])
                let high = (bit >> 3) + 1 < byteCount ? Int(bytes[(bit >> 3) + 1]) : 0
                output[index - start] = UInt8(((low | high << 8) >> (bit & 7)) & ((1 << layout.bits) - 1))
            }
        }
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
        if let planes {
            if start % columns == 0, count % columns == 0 {
                planes.decodeRows(from: start / columns, count: count / columns, into: output)
            } else {
                planes.decode(from: start, count: count, into: output)
            }
            return
        }
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
                    // k ∈ {3, 5, 6, 7}: each code from the little-endian 64-bit word at its
                    // first byte (k + 7 ≤ 14 bits needed); the last 8 bytes go element by element.
                    let bits = layout.bits, mask = UInt64((1 << bits) - 1)
                    let lastWord = packed.count - 8
                    var column = index % columns
                    while index < end {
                        let bit = index * bits
                        let code: Int
                        if bit >> 3 <= lastWord {
                            let word = UInt64(littleEndian: UnsafeRawPointer(bytes + (bit >> 3)).loadUnaligned(as: UInt64.self))
                            code = Int((word >> UInt64(bit & 7)) & mask)
                        } else {
                            code = self.code(index, bytes)
                        }
                        output[index - start] = perColumn ? levels[column * levelCount + code] : levels[code]
                        column += 1
                        if column == columns { column = 0 }
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
                        let out = output - start
                        let fullEnd = index + (end - index) / per * per
                        switch per {
                        case 5:
                            while index < fullEnd {
                                let entry = table + Int(bytes[index / 5]) * 5
                                let o = out + index
                                o[0] = entry[0]; o[1] = entry[1]; o[2] = entry[2]; o[3] = entry[3]; o[4] = entry[4]
                                index += 5
                            }
                        case 4:
                            while index < fullEnd {
                                let entry = UnsafeRawPointer(table + Int(bytes[index >> 2]) * 4).loadUnaligned(as: SIMD4<Float>.self)
                                UnsafeMutableRawPointer(out + index).storeBytes(of: entry, as: SIMD4<Float>.self)
                                index += 4
                            }
                        case 8:
                            while index < fullEnd {
                                let entry = UnsafeRawPointer(table + Int(bytes[index >> 3]) * 8).loadUnaligned(as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(out + index).storeBytes(of: entry, as: SIMD8<Float>.self)
                                index += 8
                            }
                        default:
                            while index < fullEnd {
                                let entry = table + Int(bytes[index / per]) * per
                                for offset in 0..<per { out[index + offset] = entry[offset] }
                                index += per
                            }
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

    /// C (m×N) = A (m×K, row stride `lda`) · W, or C += A·W when `accumulate`.
    ///
    /// - W on planes (binary, ternary, linear m-bit) with AVX2 or AVX-512: panels of W decoded
    ///   to float32 32 columns at a time for laq's panel kernel where that costs less than the
    ///   plane sums (``PlaneMatrix/prefersPanels(rows:)``), else the plane kernels.
    /// - W on planes without AVX2, and at most `planeProductRows` rows of A: the plane
    ///   kernels, split between threads when large (no float copy of W at all).
    /// - Other W and one row of A with per-tensor levels: the fused vector kernel.
    /// - Otherwise W is decoded in tiles of whole rows (about 4 MiB) and each tile goes to an
    ///   OpenBLAS product accumulating into C.
    /// A large vector product splits K between threads, a tile product its blocks of C.
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard m > 0 else { return }
        if let planes {
            if planes.prefersPanels(rows: m) {
                ProductCount.add(m * rows * columns)
                planes.multiplyDecodingPanels(a, lda: lda, m: m, into: c, ldc: columns, accumulate: accumulate)
                return
            }
            if m <= Self.planeProductRows || planes.int8Activations || planes.decodesPanels {
                ProductCount.add(m * rows * columns)
                planes.multiply(a, lda: lda, m: m, into: c, ldc: columns, accumulate: accumulate)
                return
            }
        }
        if m == 1, !perColumn, codesPerByte > 0 {
            ProductCount.add(rows * columns)
            guard rows * columns >= 1 << 20, rows >= 64 else {
                if !accumulate { c.update(repeating: 0, count: columns) }
                multiplyVector(a, rows: 0..<rows, into: c)
                return
            }
            // Rows of W in up to 8 parts of at least 32, fixed by the shape: the same sum on any
            // number of threads.
            let parts = min(8, rows / 32), a = SharedPointer(a)
            Parallel.sumOfParts(parts, length: columns, work: rows * columns, grain: 1 << 19, into: c, accumulate: accumulate) { part, partial in
                multiplyVector(a.base, rows: (rows * part / parts)..<(rows * (part + 1) / parts), into: partial)
            }
            return
        }
        // Tiles are decoded on this thread; each tile's product is shared between laq's threads
        // (``BLAS``).
        let tile = tileRows
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: tile * columns)
        defer { buffer.deallocate() }
        for start in stride(from: 0, to: rows, by: tile) {
            let count = min(tile, rows - start)
            decode(from: start * columns, count: count * columns, into: buffer)
            BLAS.gemm(a + start, buffer, c, m: m, n: columns, k: count, lda: lda, accumulate: accumulate || start > 0)
        }
    }

    /// Rows decoded per tile: about 1 Mi floats (4 MiB), so each OpenBLAS product has depth
    /// (measured: with 1 MiB tiles, batch-64 products took 4–33 % longer).
    var tileRows: Int { max(1, min(rows, (1024 * 1024) / max(columns, 1))) }

    /// y (N) += Σ_{k ∈ rows} x[k] · W[k, :], straight from the packed bytes: each byte's
    /// `codesPerByte` levels come from the level table and are added, times x[k], into y.
    private func multiplyVector(_ x: UnsafePointer<Float>, rows range: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        let per = codesPerByte
        packed.withUnsafeBufferPointer { bytesBuffer in
            levelTable.withUnsafeBufferPointer { tableBuffer in
                levels.withUnsafeBufferPointer { levelsBuffer in
                    let bytes = bytesBuffer.baseAddress!, table = tableBuffer.baseAddress!, levels = levelsBuffer.baseAddress!
                    for row in range {
                        let xk = x[row]
                        if xk == 0 { continue }
                        let start = row * columns, end = start + columns
                        var index = start
                        while index < end, index % per != 0 {
                            y[index - start] += xk * levels[code(index, bytes)]
                            index += 1
                        }
                        let fullEnd = start + (end - index) / per * per + (index - start)
                        let out = y - start
                        switch per {
                        case 5:
                            while index < fullEnd {
                                let entry = table + Int(bytes[index / 5]) * 5
                                let o = out + index
                                o[0] += xk * entry[0]; o[1] += xk * entry[1]; o[2] += xk * entry[2]
                                o[3] += xk * entry[3]; o[4] += xk * entry[4]
                                index += 5
                            }
                        case 4:
                            while index < fullEnd {
                                let entry = UnsafeRawPointer(table + Int(bytes[index >> 2]) * 4).loadUnaligned(as: SIMD4<Float>.self)
                                let o = UnsafeMutableRawPointer(out + index)
                                o.storeBytes(of: o.loadUnaligned(as: SIMD4<Float>.self) + xk * entry, as: SIMD4<Float>.self)
                                index += 4
                            }
                        case 8:
                            while index < fullEnd {
                                let entry = UnsafeRawPointer(table + Int(bytes[index >> 3]) * 8).loadUnaligned(as: SIMD8<Float>.self)
                                let o = UnsafeMutableRawPointer(out + index)
                                o.storeBytes(of: o.loadUnaligned(as: SIMD8<Float>.self) + xk * entry, as: SIMD8<Float>.self)
                                index += 8
                            }
                        default:
                            while index < fullEnd {
                                let entry = table + Int(bytes[index / per]) * per
                                for offset in 0..<per { out[index + offset] += xk * entry[offset] }
                                index += per
                            }
                        }
                        while index < end {
                            y[index - start] += xk * levels[code(index, bytes)]
                            index += 1
                        }
                    }
                }
            }
        }
    }
}

/// Output pointers shared by the threads of one product; each thread writes disjoint parts,
/// and the product returns only after both have finished.
/// A layer's weight matrix as the engine multiplies by it: float32, or packed codes.
enum KernelMatrix: Sendable {
    case dense([Float])
    /// Float32, packed once into panels for laq's product kernel (a convolution's kernel).
    case panels(FloatPanels)
    case packed(PackedMatrix)

    /// C (m×N) = A (m×K, row stride `lda`, default K) · W, or C += A·W when `accumulate`.
    func multiply(_ a: UnsafePointer<Float>, lda: Int? = nil, m: Int, k: Int, n: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        switch self {
        case let .dense(values):
            values.withUnsafeBufferPointer { b in
                BLAS.gemm(a, b.baseAddress!, c, m: m, n: n, k: k, lda: lda, accumulate: accumulate)
            }
        case let .panels(matrix):
            precondition(matrix.rows == k && matrix.columns == n, "kernel is \(matrix.rows)×\(matrix.columns), not \(k)×\(n)")
            matrix.multiply(a, lda: lda ?? k, m: m, into: c, accumulate: accumulate)
        case let .packed(matrix):
            precondition(matrix.rows == k && matrix.columns == n, "packed kernel is \(matrix.rows)×\(matrix.columns), not \(k)×\(n)")
            matrix.multiply(a, lda: lda ?? k, m: m, into: c, accumulate: accumulate)
        }
    }

    /// The same product on arrays: A from `offsets.a`, C from `offsets.c` (row stride N), both
    /// inside their arrays (checked).
    func multiply(_ a: [Float], lda: Int? = nil, m: Int, k: Int, n: Int, into c: inout [Float], offsets: (a: Int, c: Int) = (0, 0),
                  accumulate: Bool = false) {
        guard m > 0, n > 0 else { return }
        let lda = lda ?? k
        precondition(offsets.a >= 0 && offsets.c >= 0 && lda >= k && (k == 0 || offsets.a + (m - 1) * lda + k <= a.count)
                     && offsets.c + m * n <= c.count, "a \(m)×\(k) · \(k)×\(n) product outside its arrays (\(a.count), \(c.count) values)")
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                let pa = a.baseAddress ?? UnsafePointer(c.baseAddress!)
                multiply(pa + offsets.a, lda: lda, m: m, k: k, n: n, into: c.baseAddress! + offsets.c, accumulate: accumulate)
            }
        }
    }

    var count: Int {
        switch self {
        case let .dense(values): values.count
        case let .panels(matrix): matrix.rows * matrix.columns
        case let .packed(matrix): matrix.rows * matrix.columns
        }
    }
}

/// Products C = A·W with one weight matrix, for benchmarks and embedders: W packed
/// (``PackedMatrix``) or float32 (OpenBLAS), the same kernels the layers use.
public struct MatrixKernel: Sendable {
    let matrix: KernelMatrix
    public let rows: Int
    public let columns: Int
    /// The kernel for Winograd's F(2×2, 3×3), which ``convolve(_:images:size:kernel:bias:into:)``
    /// runs where it applies (``init(winograd:channels:filters:)``).
    let winograd: WinogradPanels?

    /// W from its packed codes; nil when its level tables are not per tensor or per last axis.
    /// `activations`: see ``ActivationPrecision`` (W on planes only).
    public init?(packed codebook: PackedCodebook, activations: ActivationPrecision = .float32) {
        guard let matrix = PackedMatrix(codebook, activations: activations) else { return nil }
        self.matrix = .packed(matrix)
        rows = matrix.rows
        columns = matrix.columns
        winograd = nil
    }

    /// W as float32 values packed into panels for laq's product kernel (``FloatPanels``, as a
    /// convolution's kernel is); nil where the CPU lacks AVX2.
    /// `anyShape`: panels even where convolutions leave the product to laq's other float32 path
    /// (benchmarks).
    public init?(panels values: [Float], rows: Int, columns: Int, anyShape: Bool = false) {
        guard let panels = FloatPanels(values, rows: rows, columns: columns, anyShape: anyShape) else { return nil }
        matrix = .panels(panels)
        self.rows = rows
        self.columns = columns
        winograd = nil
    }

    /// A 3×3 kernel (Keras' (3, 3, channels, filters) array) transformed for Winograd's
    /// F(2×2, 3×3), as a Conv2D layer runs it in predictions (and in panels, which a layer then
    /// no longer holds, for ``convolve(_:images:size:kernel:bias:into:)``'s other shapes); nil
    /// where a layer would not transform it (``WinogradPanels``).
    public init?(winograd values: [Float], channels: Int, filters: Int) {
        guard let panels = FloatPanels(values, rows: 9 * channels, columns: filters),
              let winograd = WinogradPanels(kernel: values, channels: channels, filters: filters) else { return nil }
        matrix = .panels(panels)
        rows = 9 * channels
        columns = filters
        self.winograd = winograd
    }

    /// W as float32 values, row-major `rows`×`columns`.
    public init(float values: [Float], rows: Int, columns: Int) {
        precondition(values.count == rows * columns)
        matrix = .dense(values)
        self.rows = rows
        self.columns = columns
        winograd = nil
    }

    /// The bytes the matrix holds while it runs: float32 values, packed codes with their tables,
    /// or bit planes with their per-column level tables.
    public var residentBytes: Int {
        switch matrix {
        case let .dense(values): values.count * 4
        case let .panels(matrix): matrix.panels.count * 4
        case let .packed(packed):
            if let planes = packed.planes { planes.words.count * 8 + planes.columnLevels.count * 4 }
            else { packed.packed.count + packed.levels.count * 4 + packed.codeTable.count + packed.levelTable.count * 4 }
        }
    }

    /// The instruction set of the packed kernels on this machine: "avx512-vnni-gfni",
    /// "avx512-vnni", "avx512", "avx2" or "scalar".
    public static var instructionSet: String {
        switch PlaneMatrix.bestISA {
        case 4: "avx512-vnni-gfni"
        case 3: "avx512-vnni"
        case 2: "avx512"
        case 1: "avx2"
        default: "scalar"
        }
    }

    /// C = A·W for A of `m` rows; `c` must hold m×columns values.
    public func multiply(_ a: [Float], m: Int, into c: inout [Float]) {
        precondition(a.count == m * rows && c.count == m * columns)
        matrix.multiply(a, m: m, k: rows, n: columns, into: &c)
    }

    /// The convolution a layer runs with W in panels as its kernel of `kernel` taps (rows of W:
    /// taps × channels): `x` NHWC, `images` × `size` × channels, "same" padding, unit strides,
    /// then + `bias` and ReLU6 as it stores (MobileNetV2's blocks), into `c` (images × size ×
    /// columns): by Winograd's transforms where the kernel has them. False, computing nothing,
    /// where W is not in panels.
    public func convolve(_ x: [Float], images: Int, size: (height: Int, width: Int), kernel: (height: Int, width: Int), bias: [Float],
                         into c: inout [Float]) -> Bool {
        guard case let .panels(panels) = matrix else { return false }
        let channels = rows / (kernel.height * kernel.width)
        precondition(channels * kernel.height * kernel.width == rows && bias.count == columns)
        let m = images * size.height * size.width
        precondition(x.count == m * channels && c.count == m * columns)
        let shape = laq_conv_shape(height: size.height, width: size.width, channels: channels, out_height: size.height, out_width: size.width,
                                   kernel_h: kernel.height, kernel_w: kernel.width, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1,
                                   pad_top: (kernel.height - 1) / 2, pad_left: (kernel.width - 1) / 2)
        bias.withUnsafeBufferPointer { bias in
            let none: UnsafePointer<Float>? = nil
            let epilogue = laq_epilogue(bias: bias.baseAddress, scale: none, shift: none, relu: Int32(LAQ_RELU_KERAS), threshold: 0, slope: 0,
                                        ceiling: 6)
            x.withUnsafeBufferPointer { x in
                c.withUnsafeMutableBufferPointer { c in
                    if let winograd, winograd.applies(shape) {
                        winograd.convolve(x.baseAddress!, shape: shape, m: m, epilogue: epilogue, into: c.baseAddress!)
                    } else {
                        panels.convolve(x.baseAddress!, shape: shape, m: m, epilogue: epilogue, into: c.baseAddress!)
                    }
                }
            }
        }
        return true
    }
}
