import CLAQKernels
import Dispatch

/// A K×N matrix of codes held as bit planes for the SIMD kernels of `CLAQKernels`, blocked by
/// 64 output columns (the layout is in `laq_kernels.h`):
///
/// - one-hot planes for L ≤ 3 levels (binary, ternary): plane p marks the elements whose
///   (plane) code is p + 1: L − 1 bits per weight, 2 for ternary (base-3 packing takes 1.6);
/// - bit planes for up to 16 levels that are affine in the code in every table,
///   level(c) = l₀ + c·step (linear m-bit: `laq` linear, `dorefa`, `rtn`): plane p holds bit p
///   of the code: ⌈log₂ L⌉ bits per weight, the packed size;
/// - signed planes for levels that are ±magnitudes (and 0) with one structure in every table
///   (logarithmic m-bit: `laq --levels log`, up to 3 magnitudes): a sign plane and one-hot
///   magnitude planes, 4 bits per weight for 3-bit log codes.
///
/// A product streams each block's plane words once per pair of rows of A. With AVX-512 or AVX2
/// it sums x over each plane's elements (S_p, one masked add per 16 lanes on AVX-512) and
/// combines per column, y = L₀·(Σx − Σ_p S_p) + Σ_p L_{p+1}·S_p (levels, or l₀ + 2^p·step for
/// bit planes; signed planes sum ±x over each magnitude plane), so per-tensor and per-channel
/// tables cost the same; scalar code selects each term's level. No float copy of the matrix
/// is made.
struct PlaneMatrix: @unchecked Sendable {
    let rows: Int
    let columns: Int
    let planeCount: Int
    /// `LAQ_PLANES_ONE_HOT` (L ≤ 3), `LAQ_PLANES_BITS` (affine levels) or `LAQ_PLANES_SIGNED`
    /// (symmetric levels).
    let kind: Int32
    var oneHot: Bool { kind == Self.oneHotPlanes }
    /// The planes are dot planes, for int8 activations.
    let int8Activations: Bool
    /// (b·K + k)·P + p → the 64 bits of block b, row k, plane p.
    let words: [UInt64]
    /// levels[(b·C + c)·64 + j]: code c's level in column 64·b + j, C = P + 1 codes (one-hot)
    /// or 2^P (bit planes); for signed planes row m holds magnitude m (row 0: zero), C = P.
    /// Zero past N and for codes that never occur.
    let columnLevels: [Float]
    /// Every level is finite: a convolution on decoded panels may skip taps outside its input.
    let finiteLevels: Bool
    /// The sum levels L₀…L_P of the kernels' combination, same layout with C = P + 1.
    let sumLevels: [Float]
    /// Symmetric ternary dot planes (levels +L[n], −L[n] and 0 in every column): L per column,
    /// for the one-dot-per-word-pair kernel.
    let signedPair: [Float]?
    /// Bit dot planes: each column's level of code 0, then each column's step (level(c) =
    /// offset + c·step; 2·N floats), for the code-sum kernel (`laq_dot_codes_multiply_rows`).
    let codeLevels: [Float]?
    let isa: Int32

    /// The instruction set the kernels use on this machine.
    static let bestISA = CPU.isa

    static let oneHotPlanes = Int32(LAQ_PLANES_ONE_HOT), bitPlanes = Int32(LAQ_PLANES_BITS), signedPlanes = Int32(LAQ_PLANES_SIGNED)

    /// Levels within this fraction of the table's largest magnitude of l₀ + c·step count as
    /// affine (float32 rounding of α·i/k).
    static let affineTolerance = 1e-6

    var blockCount: Int { (columns + 63) / 64 }

    /// nil when the codes suit no kind of plane (more than 16 levels; levels neither affine nor
    /// signed magnitudes; more than 4 planes), or a code is out of range.
    ///
    /// - Parameters:
    ///   - levels: G × L float32 levels, G = 1 (per tensor) or `columns` (per column).
    ///   - int8Activations: lay the planes out for products with int8 activations (see
    ///     ``ActivationPrecision``).
    ///   - codes: writes the codes of rows `start ..< start + count` (row-major, each < L) into
    ///     the buffer it is given; returns false when a code is out of range.
    init?(rows: Int, columns: Int, levelCount: Int, levels: [Float], perColumn: Bool, int8Activations: Bool = false,
          isa: Int32 = PlaneMatrix.bestISA, codes: (_ startRow: Int, _ rowCount: Int, UnsafeMutablePointer<UInt8>) -> Bool) {
        let tables = perColumn ? columns : 1
        guard (1...16).contains(levelCount), rows > 0, columns > 0, levels.count == tables * levelCount else { return nil }
        // The kind of planes, and for each code the planes it sets (`planeMask`) and the row of
        // the level table that holds its level (`tableRow`).
        var kind = Self.oneHotPlanes
        var planeCount = levelCount - 1
        var planeMask: [Int] = [], tableRow: [Int] = []
        var steps: [Double] = []
        var magnitudeOf: [Int] = []
        if levelCount <= 3 {
            // One-hot planes number codes so that a level that is zero in every table, when
            // there is one (ternary's middle level), is plane code 0, whose term the SIMD kernels
            // derive as L₀·(Σx − Σ_p S_p): with L₀ = 0 that term is exactly 0.
            let zeroCode = (0..<levelCount).first { code in (0..<tables).allSatisfy { levels[$0 * levelCount + code] == 0 } } ?? 0
            tableRow = (0..<levelCount).map { $0 == zeroCode ? 0 : $0 == 0 ? zeroCode : $0 }
            planeMask = tableRow.map { $0 == 0 ? 0 : 1 << ($0 - 1) }
        } else if let affine = Self.affineSteps(levels, levelCount: levelCount, tables: tables) {
            kind = Self.bitPlanes
            steps = affine
            planeCount = Int.bitWidth - (levelCount - 1).leadingZeroBitCount
            tableRow = Array(0..<levelCount)
            planeMask = tableRow
        } else if let signed = Self.signedStructure(levels, levelCount: levelCount, tables: tables) {
            kind = Self.signedPlanes
            planeCount = signed.magnitudes + 1
            magnitudeOf = signed.magnitudeOf
            tableRow = magnitudeOf
            planeMask = (0..<levelCount).map { (signed.negative[$0] ? 1 : 0) | (magnitudeOf[$0] > 0 ? 1 << magnitudeOf[$0] : 0) }
        } else {
            return nil
        }
        guard planeCount <= Int(LAQ_MAX_PLANES) else { return nil }
        // No dot planes for signed planes, nor where an int32 sum could overflow (bit planes sum
        // codes up to 15 by |q| ≤ 127, one-hot planes bytes up to 2): such a matrix multiplies
        // float32 activations.
        let int8Activations = int8Activations && kind != Self.signedPlanes
            && (rows + 3) / 4 * 4 * (kind == Self.bitPlanes ? 15 * 127 : 2 * 127) <= Int(Int32.max)
        let blocks = (columns + 63) / 64, padded = blocks * 64
        let groups = (rows + 3) / 4
        var words = [UInt64](repeating: 0, count: max(1, blocks * (int8Activations ? 4 * groups : rows) * planeCount))
        if planeCount > 0 {
            // code → the planes it sets; 0xFF marks codes ≥ L (P ≤ 4, so no mask is 0xFF).
            var maskTable = [UInt8](repeating: 0xFF, count: 256)
            for code in 0..<levelCount { maskTable[code] = UInt8(planeMask[code]) }
            // Whole groups of 4 rows per chunk, so that a dot-plane word's rows arrive together.
            let chunkRows = max(4, min((rows + 3) / 4 * 4, 65_536 / columns / 4 * 4))
            let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkRows * columns)
            defer { scratch.deallocate() }
            let valid = words.withUnsafeMutableBufferPointer { words in
                maskTable.withUnsafeBufferPointer { table in
                    let words = words.baseAddress!, table = table.baseAddress!
                    var invalid: UInt8 = 0
                    for start in stride(from: 0, to: rows, by: chunkRows) {
                        let count = min(chunkRows, rows - start)
                        guard codes(start, count, scratch) else { return false }
                        invalid |= Self.layPlanes(scratch, rows: start..<(start + count), matrixRows: rows, columns: columns,
                                                  planes: planeCount, dot: int8Activations, masks: table, into: words)
                    }
                    return invalid != 0xFF
                }
            }
            guard valid else { return nil }
        }
        let codeCount = kind == Self.oneHotPlanes ? planeCount + 1 : kind == Self.signedPlanes ? planeCount : 1 << planeCount
        var columnLevels = [Float](repeating: 0, count: codeCount * padded)
        var sumLevels = [Float](repeating: 0, count: (planeCount + 1) * padded)
        for column in 0..<columns {
            let table = perColumn ? column : 0
            let (block, lane) = (column >> 6, column & 63)
            for code in 0..<levelCount {
                let level = levels[table * levelCount + code]
                columnLevels[(block * codeCount + tableRow[code]) * 64 + lane] = kind == Self.signedPlanes ? abs(level) : level
            }
            let sums = (block * (planeCount + 1)) * 64 + lane
            switch kind {
            case Self.oneHotPlanes:
                for code in 0...planeCount { sumLevels[sums + code * 64] = columnLevels[(block * codeCount + code) * 64 + lane] }
            case Self.bitPlanes:
                let first = Double(levels[table * levelCount])
                sumLevels[sums] = Float(first)
                for plane in 0..<planeCount { sumLevels[sums + (plane + 1) * 64] = Float(first + Double(1 << plane) * steps[table]) }
            default:
                // L₀ = L₁ = 0 (the sign plane sums nothing), L_{m+1} = magnitude m.
                for magnitude in 1..<planeCount { sumLevels[sums + (magnitude + 1) * 64] = columnLevels[(block * codeCount + magnitude) * 64 + lane] }
            }
        }
        self.signedPair = int8Activations && kind == Self.oneHotPlanes && planeCount == 2
            ? Self.signedPair(sumLevels: sumLevels, columns: columns) : nil
        self.codeLevels = int8Activations && kind == Self.bitPlanes
            ? (0..<columns).map { levels[(perColumn ? $0 : 0) * levelCount] } + (0..<columns).map { Float(steps[perColumn ? $0 : 0]) }
            : nil
        self.rows = rows
        self.columns = columns
        self.kind = kind
        self.int8Activations = int8Activations
        self.planeCount = planeCount
        self.words = words
        self.columnLevels = columnLevels
        finiteLevels = columnLevels.allSatisfy(\.isFinite)
        self.sumLevels = sumLevels
        self.isa = min(isa, Self.bestISA)
    }

    /// For ternary dot planes whose levels are +L, −L (planes 0 and 1) and 0 (the rest) in every
    /// column, L per column; nil for other levels.
    static func signedPair(sumLevels: [Float], columns: Int) -> [Float]? {
        var levels = [Float](repeating: 0, count: columns)
        for column in 0..<columns {
            let base = (column >> 6) * 3 * 64 + (column & 63)
            let (zero, plus, minus) = (sumLevels[base], sumLevels[base + 64], sumLevels[base + 128])
            guard zero == 0, minus == -plus else { return nil }
            levels[column] = plus
        }
        return levels
    }

    /// Writes the plane words of rows `range` of a K×N matrix (their codes row-major in
    /// `codes`, N = `columns`, K = `matrixRows`), each word built in registers; returns 0xFF when
    /// a code has no mask (≥ L), else 0.
    private static func layPlanes(_ codes: UnsafePointer<UInt8>, rows range: Range<Int>, matrixRows: Int, columns: Int, planes: Int,
                                  dot: Bool, masks: UnsafePointer<UInt8>, into words: UnsafeMutablePointer<UInt64>) -> UInt8 {
        var seen: UInt8 = 0
        var bits = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        @inline(__always) func add(_ mask: UInt8, at bit: Int) {
            let mask = UInt64(mask)
            bits.0 |= (mask & 1) << UInt64(bit)
            bits.1 |= (mask >> 1 & 1) << UInt64(bit)
            bits.2 |= (mask >> 2 & 1) << UInt64(bit)
            bits.3 |= (mask >> 3 & 1) << UInt64(bit)
        }
        @inline(__always) func store(_ base: UnsafeMutablePointer<UInt64>, stride: Int) {
            base[0] = bits.0
            if planes > 1 { base[stride] = bits.1 }
            if planes > 2 { base[2 * stride] = bits.2 }
            if planes > 3 { base[3 * stride] = bits.3 }
            bits = (0, 0, 0, 0)
        }
        let blocks = (columns + 63) / 64
        if !dot {
            for row in range {
                let line = codes + (row - range.lowerBound) * columns
                for block in 0..<blocks {
                    for lane in 0..<min(64, columns - 64 * block) {
                        let mask = masks[Int(line[64 * block + lane])]
                        seen |= mask == 0xFF ? 0xFF : 0
                        add(mask, at: lane)
                    }
                    store(words + (block * matrixRows + row) * planes, stride: 1)
                }
            }
        } else {
            // Rows in groups of 4 (the chunk starts at a multiple of 4); rows past the chunk's
            // end set no bits.
            let groups = (matrixRows + 3) / 4
            for group in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                for block in 0..<blocks {
                    for sub in 0..<4 {
                        let first = 64 * block + 16 * sub
                        for lane in 0..<max(0, min(16, columns - first)) {
                            for offset in 0..<min(4, range.upperBound - group) {
                                let mask = masks[Int(codes[(group + offset - range.lowerBound) * columns + first + lane])]
                                seen |= mask == 0xFF ? 0xFF : 0
                                add(mask, at: 4 * lane + offset)
                            }
                        }
                        store(words + ((block * groups + group / 4) * planes) * 4 + sub, stride: 4)
                    }
                }
            }
        }
        return seen
    }

    /// Each table's step when every table's levels are affine in the code
    /// (|level(c) − (l₀ + c·step)| ≤ ``affineTolerance`` · max|level|), else nil.
    static func affineSteps(_ levels: [Float], levelCount: Int, tables: Int) -> [Double]? {
        var steps: [Double] = []
        for table in 0..<tables {
            let row = levels[(table * levelCount)..<((table + 1) * levelCount)].map(Double.init)
            let step = (row[levelCount - 1] - row[0]) / Double(levelCount - 1)
            let scale = row.map(abs).max() ?? 0
            guard row.indices.allSatisfy({ abs(row[$0] - (row[0] + Double($0) * step)) <= affineTolerance * scale }) else { return nil }
            steps.append(step)
        }
        return steps
    }

    /// Tables whose levels are signed magnitudes with one code structure: every code c has a
    /// sign and a magnitude index m(c) (0: the level is 0; 1…M: the tables' distinct magnitudes
    /// in ascending order in the first table), and level[t][c] = ±magnitude[t][m(c)] exactly,
    /// in every table t (logarithmic levels, ±α·2^−i, per tensor or per channel). Else nil.
    static func signedStructure(_ levels: [Float], levelCount: Int, tables: Int) -> (magnitudes: Int, magnitudeOf: [Int], negative: [Bool])? {
        let first = Array(levels[0..<levelCount])
        let distinct = Set(first.map(abs).filter { $0 != 0 }).sorted()
        let magnitudeOf = first.map { $0 == 0 ? 0 : distinct.firstIndex(of: abs($0))! + 1 }
        let negative = first.map { $0 < 0 }
        for table in 0..<tables {
            var magnitude = [Float?](repeating: nil, count: distinct.count + 1)
            for code in 0..<levelCount {
                let level = levels[table * levelCount + code]
                guard (level < 0) == negative[code], (level == 0) == (magnitudeOf[code] == 0) else { return nil }
                if let known = magnitude[magnitudeOf[code]], known != abs(level) { return nil }
                magnitude[magnitudeOf[code]] = abs(level)
            }
        }
        return (distinct.count, magnitudeOf, negative)
    }

    /// C (m×N, row stride `ldc`) = A (m×K, row stride `lda`) · W, or C += A·W when `accumulate`.
    /// A large product splits the column blocks between threads.
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        guard m > 0 else { return }
        if int8Activations {
            multiplyInt8(a, lda: lda, m: m, into: c, ldc: ldc, accumulate: accumulate)
            return
        }
        words.withUnsafeBufferPointer { words in
            columnLevels.withUnsafeBufferPointer { levels in
              sumLevels.withUnsafeBufferPointer { sums in
                let shared = Shared(a: a, c: c, words: words.baseAddress!, levels: levels.baseAddress!, sumLevels: sums.baseAddress!)
                let blocks = blockCount
                let run: @Sendable (Int, Int) -> Void = { begin, end in
                    laq_planes_multiply(shared.a, lda, m, rows, columns, shared.words, Int32(planeCount), kind,
                                        shared.levels, shared.sumLevels, shared.c, ldc, accumulate ? 1 : 0, begin, end, isa)
                }
                Parallel.forEach(blocks, work: m * rows * columns, grain: 1 << 19) { run($0.lowerBound, $0.upperBound) }
              }
            }
        }
    }

    /// Whether float32 products of many rows can run on panels decoded from the planes
    /// (``multiplyDecodingPanels(_:lda:m:into:ldc:accumulate:)``): AVX2 or AVX-512, float32 planes.
    var decodesPanels: Bool { !int8Activations && isa >= Int32(LAQ_ISA_AVX2) }

    /// Whether a float32 product of `m` rows costs less on decoded panels than on the planes. With
    /// AVX-512 a plane sum costs what a fused multiply-add does, so the planes cost about m·P per
    /// weight and the panels m + (the decode, about what 7–12 rows cost; `laq-bench --packed`,
    /// 4096²: one plane never pays, two from 12 rows, three from 6, four from 4). A function of
    /// the shape and the instruction set: the same kernel on any number of threads.
    func prefersPanels(rows m: Int) -> Bool {
        guard decodesPanels else { return false }
        // AVX2's plane sums take a mask, an AND and an add per 8 lanes where AVX-512's take one
        // masked add per 16: there the panels pay from 8 rows for one plane and from 3 for more
        // (`laq-bench --packed`, 4096²: two ternary rows took 2.6–3.2 ms on the planes and
        // 3.2–6.1 on panels, four rows 4.5–6.8 and 3.2–4.8).
        if isa < Int32(LAQ_ISA_AVX512) { return m >= (planeCount == 1 ? 8 : 3) }
        return (planeCount - 1) * m >= 12
    }

    /// C (m×N, row stride `ldc`) = A · W (+ C when `accumulate`) through float32 panels of 32
    /// columns decoded from the planes (`laq_planes_decode_panel`, the levels themselves) and
    /// multiplied by laq's panel kernel (``FloatPanels``): each element of C is one chain of
    /// fused multiply-adds over k in order, so the bits are those of the dequantized matrix's
    /// panel product, for any split between threads (tasks: ``DecodedPanelGroups``).
    func multiplyDecodingPanels(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        precondition(decodesPanels, "panels from planes need AVX2 and float32 planes")
        guard m > 0 else { return }
        let groups = productGroups(m: m), tasks = groups.tasks
        let (k, n, isa) = (rows, columns, isa)
        let (a, c) = (SharedPointer(a), SharedPointer(c))
        Parallel.forEach(tasks, work: m * k * n >= BLAS.leastBlockWork ? tasks : 1, grain: 1, tapered: true) { range in
            forEachDecodedPanel(range, groups) { panel, rows, index in
                let column = 32 * index
                laq_panel_multiply(a.base, lda, panel, k, min(32, n - column), c.base + column, ldc, rows.lowerBound, rows.upperBound,
                                   accumulate ? 1 : 0, isa)
            }
        }
    }

    /// A convolution of `x` (NHWC, `shape`) with this matrix as its kernel, read in place
    /// (``FloatPanels/convolve(_:shape:m:epilogue:into:)``) on panels decoded from the planes as
    /// ``multiplyDecodingPanels(_:lda:m:into:ldc:accumulate:)`` decodes them.
    func convolveDecodingPanels(_ x: UnsafePointer<Float>, shape: laq_conv_shape, m: Int, epilogue: laq_epilogue,
                                into c: UnsafeMutablePointer<Float>) {
        precondition(decodesPanels && shape.kernel_h * shape.kernel_w * shape.channels == rows, "a \(rows)-row kernel for this convolution")
        guard m > 0 else { return }
        // (One panel per call: the kernel never copies a tile's rows.) Groups of whole tiles.
        let tiles = FloatPanels.tiles(shape, m: m)
        let groups = DecodedPanelGroups(units: tiles.count, perGroup: 128, multiple: 1, panels: (columns + 31) / 32)
        // The decoded values are the levels, laid out for this matrix's instruction set.
        FloatPanels.convolve(x, shape: shape, m: m, n: columns, epilogue: epilogue, into: c, tasks: groups.tasks,
                             copiesRows: false, skips: finiteLevels, isa: isa) { range, convolve in
            forEachDecodedPanel(range, groups) { panel, group, index in
                convolve(panel, tiles.start(group.lowerBound), tiles.start(group.upperBound), index, index + 1)
            }
        }
    }

    /// How products on decoded panels split their work: tasks of one panel over a group of
    /// units, group first, so that the group's rows stay in cache while its panels are decoded
    /// in turn (a decode is about 1/1,000 of a task's work; a panel through every row would read
    /// the whole of A once per panel). A product's units are rows, about 1,536 to a group in
    /// multiples of 12 (whole tiles); a convolution's are its tiles, about 128 to a group.
    private struct DecodedPanelGroups {
        let units: Int
        let perGroup: Int
        let panels: Int
        var tasks: Int { (units + perGroup - 1) / perGroup * panels }

        init(units: Int, perGroup: Int, multiple: Int, panels: Int) {
            let groups = (units + perGroup - 1) / perGroup
            self.units = units
            self.perGroup = max(1, ((units + groups - 1) / max(1, groups) + multiple - 1) / multiple * multiple)
            self.panels = panels
        }

        /// Task `task`'s group of units and panel.
        func task(_ task: Int) -> (group: Range<Int>, panel: Int) {
            let first = task / panels * perGroup
            return (first..<min(first + perGroup, units), task % panels)
        }
    }

    private func productGroups(m: Int) -> DecodedPanelGroups {
        DecodedPanelGroups(units: m, perGroup: 1536, multiple: 12, panels: (columns + 31) / 32)
    }

    /// For each task of `range`: decodes its panel into this part's buffer of K × 32 floats and
    /// calls `body(panel, the task's group of units, panel index)`.
    private func forEachDecodedPanel(_ range: Range<Int>, _ groups: DecodedPanelGroups, _ body: (UnsafePointer<Float>, Range<Int>, Int) -> Void) {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: rows * 32)
        defer { buffer.deallocate() }
        words.withUnsafeBufferPointer { words in
            columnLevels.withUnsafeBufferPointer { levels in
                for task in range {
                    let (group, panel) = groups.task(task)
                    guard !group.isEmpty else { continue }
                    laq_planes_decode_panel(words.baseAddress!, Int32(planeCount), kind, rows, columns, levels.baseAddress!, panel, buffer, isa)
                    body(buffer, group, panel)
                }
            }
        }
    }

    /// Each row of A quantized to int8 (``ActivationPrecision/int8``), then the dot-plane kernel;
    /// a row holding a NaN or an infinity gives NaN outputs. Several rows go to
    /// ``multiplyInt8Rows(_:lda:m:into:ldc:accumulate:)``; one row is quantized on the stack.
    private func multiplyInt8(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let groups = (rows + 3) / 4
        if m > 1 {
            multiplyInt8Rows(a, lda: lda, m: m, into: c, ldc: ldc, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 4 * groups) { q in
            var scale: Float = 0
            var total: Int32 = 0
            guard laq_int8_quantize(a, rows, groups, q.baseAddress!, &scale, &total, isa) != 0 else {
                c.update(repeating: .nan, count: columns)
                return
            }
            let (scaleValue, totalValue) = (scale, total)
            let blocks = blockCount, work = rows * columns
            // The row's lookup tables (AVX2 without VNNI), built once for every thread.
            let tableBytes = laq_int8_table_bytes(groups, isa)
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, tableBytes)) { tables in
                laq_int8_tables(q.baseAddress!, groups, tables.baseAddress!, isa)
                let quantized = QuantizedRow(q: q.baseAddress!, tables: tableBytes > 0 ? UnsafePointer(tables.baseAddress!) : nil)
                words.withUnsafeBufferPointer { words in
                    // Symmetric ternary: one signed dot product per word pair, levels ±L per column;
                    // bit planes: one dot product per word set, on the codes.
                    (signedPair ?? codeLevels ?? sumLevels).withUnsafeBufferPointer { levels in
                        let shared = Shared(a: a, c: c, words: words.baseAddress!, levels: levels.baseAddress!, sumLevels: levels.baseAddress!)
                        if codeLevels != nil {
                            Parallel.forEach(blocks, work: work, grain: 1 << 20) { range in
                                var (scale, total) = (scaleValue, totalValue)
                                laq_dot_codes_multiply_rows(quantized.q, 0, 1, &scale, &total, groups, columns, shared.words, Int32(planeCount),
                                                            shared.levels, shared.levels + columns, shared.c, ldc, accumulate ? 1 : 0, nil,
                                                            quantized.tables, range.lowerBound, range.upperBound, isa)
                            }
                        } else if signedPair != nil {
                            Parallel.forEach(blocks, work: work, grain: 1 << 20) { range in
                                laq_dot_planes_multiply_signed_pair(quantized.q, groups, scaleValue, columns, shared.words, shared.levels,
                                                                    shared.c, accumulate ? 1 : 0, quantized.tables, range.lowerBound, range.upperBound,
                                                                    isa)
                            }
                        } else {
                            Parallel.forEach(blocks, work: work, grain: 1 << 20) { range in
                                laq_dot_planes_multiply(quantized.q, groups, scaleValue, totalValue, columns, shared.words, Int32(planeCount),
                                                        shared.sumLevels, shared.c, accumulate ? 1 : 0, quantized.tables, range.lowerBound,
                                                        range.upperBound, isa)
                            }
                        }
                    }
                }
            }
        }
    }

    /// C = epilogue(A·W) with int8 activations (``multiplyInt8Rows(_:lda:m:into:ldc:accumulate:epilogue:)``):
    /// each output goes through `epilogue` (bias, normalization, ReLU, residual; its residual
    /// laid out as C, and possibly C itself) as it is stored, with the bits of the product and
    /// the passes after it.
    func multiplyInt8(_ a: UnsafePointer<Float>, lda: Int, m: Int, epilogue: laq_epilogue, into c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(int8Activations, "an int8 product needs dot planes")
        guard m > 0 else { return }
        multiplyInt8Rows(a, lda: lda, m: m, into: c, ldc: ldc, accumulate: false, epilogue: epilogue)
    }

    /// Several rows: tiles of rows share each expansion of the plane bits
    /// (laq_dot_planes_multiply_rows, laq_dot_codes_multiply_rows); the same bits as one row at a time. Rows are independent:
    /// a batch of at least 48 rows is split by rows between threads (each part quantizes its
    /// own rows, then multiplies them by every column block), a smaller one by column blocks.
    /// With an `epilogue`, each output goes through it as it is stored.
    private func multiplyInt8Rows(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
                                  epilogue: laq_epilogue? = nil) {
        // Rows a whole number of cache lines apart, plus one: a tile reads up to 24 rows at once,
        // and rows 4 KiB apart would all fall in one set of the L1 cache and evict each other.
        let groups = (rows + 3) / 4, stride = (4 * groups + 63) / 64 * 64 + 64
        var q = [Int8](repeating: 0, count: m * stride)
        var scales = [Float](repeating: 0, count: m), totals = [Int32](repeating: 0, count: m)
        var finite = [Bool](repeating: true, count: m)
        // Symmetric ternary rows combine as the one-row signed-pair kernel does (the same bits);
        // bit planes through their codes.
        let combination = signedPair ?? codeLevels ?? []
        let (rows, columns, blocks, planes, isa) = (self.rows, self.columns, blockCount, Int32(planeCount), self.isa)
        words.withUnsafeBufferPointer { words in
            sumLevels.withUnsafeBufferPointer { levels in
                q.withUnsafeMutableBufferPointer { q in
                    scales.withUnsafeMutableBufferPointer { scales in
                        totals.withUnsafeMutableBufferPointer { totals in
                            finite.withUnsafeMutableBufferPointer { finite in
                                combination.withUnsafeBufferPointer { combination in
                                    let (q, scales, totals) = (SharedPointer(q.baseAddress!), SharedPointer(scales.baseAddress!), SharedPointer(totals.baseAddress!))
                                    let pair = signedPair == nil ? nil : combination.baseAddress.map(SharedPointer.init)
                                    let codes = codeLevels == nil ? nil : combination.baseAddress.map(SharedPointer.init)
                                    let shared = Shared(a: a, c: c, words: words.baseAddress!, levels: levels.baseAddress!, sumLevels: levels.baseAddress!)
                                    let flags = SharedPointer(finite.baseAddress!)
                                    let fused = epilogue.map(SharedEpilogue.init)
                                    // Rows [first, end) by column blocks [blockBegin, blockEnd).
                                    @Sendable func run(_ first: Int, _ end: Int, _ blockBegin: Int, _ blockEnd: Int) {
                                        func multiply(_ e: UnsafePointer<laq_epilogue>?) {
                                            if let codes {
                                                laq_dot_codes_multiply_rows(q.base + first * stride, stride, end - first, scales.base + first, totals.base + first,
                                                                            groups, columns, shared.words, planes, codes.base, codes.base + columns,
                                                                            shared.c + first * ldc, ldc, accumulate ? 1 : 0, e, nil, blockBegin, blockEnd, isa)
                                                return
                                            }
                                            laq_dot_planes_multiply_rows(q.base + first * stride, stride, end - first, scales.base + first, totals.base + first,
                                                                         groups, columns, shared.words, planes, shared.sumLevels, pair?.base,
                                                                         shared.c + first * ldc, ldc, accumulate ? 1 : 0, e, blockBegin, blockEnd, isa)
                                        }
                                        guard var part = fused?.epilogue else { return multiply(nil) }
                                        // The epilogue's residual at these rows' place.
                                        if let residual = part.residual { part.residual = residual + first * ldc }
                                        withUnsafePointer(to: &part) { multiply($0) }
                                    }
                                    @Sendable func quantize(_ range: Range<Int>) {
                                        for row in range {
                                            flags.base[row] = laq_int8_quantize(shared.a + row * lda, rows, groups, q.base + row * stride,
                                                                                scales.base + row, totals.base + row, isa) != 0
                                        }
                                    }
                                    let work = m * rows * columns
                                    if m >= 48 {
                                        Parallel.forEach(m, work: work, grain: 1 << 20) { range in
                                            quantize(range)
                                            run(range.lowerBound, range.upperBound, 0, blocks)
                                        }
                                    } else {
                                        quantize(0..<m)
                                        Parallel.forEach(blocks, work: work, grain: 1 << 20) { range in run(0, m, range.lowerBound, range.upperBound) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // A row holding a NaN or an infinity gives NaN outputs (its q is all zero).
        for row in 0..<m where !finite[row] { (c + row * ldc).update(repeating: .nan, count: columns) }
    }

    /// Rows `start ..< start + count` as row-major floats.
    func decodeRows(from start: Int, count: Int, into output: UnsafeMutablePointer<Float>) {
        guard !int8Activations else {
            decode(from: start * columns, count: count * columns, into: output)
            return
        }
        words.withUnsafeBufferPointer { words in
            columnLevels.withUnsafeBufferPointer { levels in
                laq_planes_decode_rows(words.baseAddress!, Int32(planeCount), kind, rows, columns, levels.baseAddress!,
                                       start, start + count, output, isa)
            }
        }
    }

    /// Elements `start ..< start + count` (row-major) as floats.
    func decode(from start: Int, count: Int, into output: UnsafeMutablePointer<Float>) {
        words.withUnsafeBufferPointer { words in
            columnLevels.withUnsafeBufferPointer { levels in
                if int8Activations {
                    laq_dot_planes_decode(words.baseAddress!, Int32(planeCount), oneHot ? 1 : 0, rows, columns, levels.baseAddress!, start, count, output)
                } else {
                    laq_planes_decode(words.baseAddress!, Int32(planeCount), kind, rows, columns, levels.baseAddress!, start, count, output)
                }
            }
        }
    }
}

/// The pointers of one product, shared by its threads; each writes disjoint columns or rows,
/// and the product returns only after every part has finished.
private struct Shared: @unchecked Sendable {
    let a: UnsafePointer<Float>
    let c: UnsafeMutablePointer<Float>
    let words: UnsafePointer<UInt64>
    let levels: UnsafePointer<Float>
    let sumLevels: UnsafePointer<Float>
}

/// An epilogue's pointers, read by every thread of a product (each writes its own rows).
private struct SharedEpilogue: @unchecked Sendable {
    let epilogue: laq_epilogue
}

/// One row of A quantized to int8, and its lookup tables where the kernels take them
/// (``laq_int8_tables``), read by every thread of a product.
private struct QuantizedRow: @unchecked Sendable {
    let q: UnsafePointer<Int8>
    let tables: UnsafePointer<UInt8>?
    init(q: UnsafeMutablePointer<Int8>, tables: UnsafePointer<UInt8>?) {
        self.q = UnsafePointer(q)
        self.tables = tables
    }
}

/// The precision of the activations that products with plane matrices (binary, ternary and
/// linear m-bit kernels) multiply.
///
/// - `float32`: as given; the products are float32 sums (the default).
/// - `int8`: each row x of A is quantized on the fly, symmetric and per row, as ONNX Runtime's
///   dynamic quantization and bitnet.cpp do: s = max|x| / 127, q = round(x / s), and
///   y[n] = s · Σ_k q[k] · W[k, n] with the sums over each plane's rows exact in int32. Each
///   input deviates from x by at most s/2, so |Δy[n]| ≤ (s/2) · Σ_k |W[k, n]|. Other layers,
///   and other kernels (logarithmic levels), stay float32.
public enum ActivationPrecision: String, Sendable, CaseIterable {
    case float32
    case int8

    /// Whether this machine's int8 products run in scalar code: their kernels need AVX2 (or
    /// AVX-512 VNNI), and without it they are tens of times slower than float32 (MobileNetV2 at
    /// batch 1: 615 ms against 12 ms, docs/PERFORMANCE.md).
    public var isScalarHere: Bool { self == .int8 && PlaneMatrix.bestISA < Int32(LAQ_ISA_AVX2) }
}
