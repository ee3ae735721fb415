import CLAQKernels

/// A float32 weight matrix packed once into panels of 32 columns for laq's product kernel
/// (`laq_panels_multiply`, AVX-512 or AVX2): a convolution's kernel. OpenBLAS packs the weights
/// again at every call, which costs more than the multiplication on the small products of
/// batch-1 convolutions; here each element of C is one chain of fused multiply-adds over the
/// inner dimension in order, so the bits do not depend on how rows and panels are shared
/// between threads (docs/PERFORMANCE.md, "Convolutions on packed panels").
struct FloatPanels: Sendable {
    /// K and N of the K×N matrix.
    let rows: Int
    let columns: Int
    let panels: [Float]
    /// Every value is finite: a convolution may skip taps outside its input (`laq_panels_convolve`).
    let finite: Bool

    /// The panels of the row-major `rows`×`columns` matrix `values`; nil (laq's other float32
    /// path multiplies: OpenBLAS, or the short-inner kernel for K ≤ 16, N ≤ 64) where the CPU
    /// lacks AVX2, and with AVX-512, unless `anyShape` (benchmarks), for K ≤ 16 with N ≤ 64,
    /// where its short-inner kernel measured faster (`laq-bench --panels`, one core,
    /// docs/PERFORMANCE.md; without AVX-512 that kernel is scalar, and the panels 4–6× faster).
    /// A last panel of up to 16 columns, or of 17–24, computes only 16 or 24 of its columns in
    /// whole 12-row tiles (the kernel's narrow tiles; AVX2's tiles are 16 columns wide), so
    /// every width of N takes panels. A function of the shape alone.
    init?(_ values: [Float], rows: Int, columns: Int, anyShape: Bool = false) {
        guard CPU.isa >= Int32(LAQ_ISA_AVX2), rows > 0, columns > 0 else { return nil }
        guard anyShape || CPU.isa < Int32(LAQ_ISA_AVX512) || !(rows <= 16 && columns <= 64) else { return nil }
        precondition(values.count == rows * columns, "\(values.count) values for \(rows) × \(columns)")
        self.rows = rows
        self.columns = columns
        finite = values.allSatisfy(\.isFinite)
        panels = [Float](unsafeUninitializedCapacity: laq_panels_length(rows, columns)) { buffer, initialized in
            values.withUnsafeBufferPointer { laq_panels_pack($0.baseAddress!, rows, columns, buffer.baseAddress!, CPU.isa) }
            initialized = buffer.count
        }
    }

    var panelCount: Int { (columns + 31) / 32 }

    /// C (m×N, row stride N) = A (m×K, row stride `lda`) · W (+ C when `accumulate`), in tasks
    /// of one panel by a block of rows shared between threads, block by block.
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (k, n) = (rows, columns)
        let (a, c) = (SharedPointer(a), SharedPointer(c))
        forEachTask(m: m) { w, first, end, panel in
            laq_panels_multiply(a.base, lda, w, k, n, c.base, n, first, end, panel, accumulate ? 1 : 0, CPU.isa)
        }
    }

    /// The convolution of `x` (NHWC, `shape`) with W as its kernel: C (m×N, m output positions) =
    /// epilogue(im2col(x) · W) without the im2col matrix (`laq_panels_convolve`: the bits of
    /// im2col, ``multiply(_:lda:m:into:accumulate:)`` and the epilogue's passes, taps outside the
    /// input skipped where W is finite). Tasks are a block of tiles through every panel (a tile's
    /// tap sources serve them all) where there are blocks enough to share between threads. Else
    /// they are one panel by one tile, panel by panel, so that each thread's contiguous share is
    /// the same number of tile-panels and reads its panels of W once: ResNet50's 14×14 layers at
    /// batch 1 had had tasks of 72, 72 and 52 rows by one panel, shares of 12 tasks giving one
    /// thread 864 row-panels and the other 704; tiles first read its 7×7 layers' 8 MB of W once
    /// per tile.
    func convolve(_ x: UnsafePointer<Float>, shape: laq_conv_shape, m: Int, epilogue: laq_epilogue, into c: UnsafeMutablePointer<Float>) {
        precondition(shape.kernel_h * shape.kernel_w * shape.channels == rows, "a \(rows)-row kernel for this convolution")
        guard m > 0 else { return }
        let (k, panelCount) = (rows, self.panelCount)
        let tiles = Self.tiles(shape, m: m)
        let tileBlocks = Self.tileBlocks(tiles.count, threads: Parallel.threadCount)
        let byBlocks = tileBlocks >= 4 * Parallel.threadCount
        panels.withUnsafeBufferPointer { panels in
            let w = SharedPointer(panels.baseAddress!)
            Self.convolve(x, shape: shape, m: m, n: columns, epilogue: epilogue, into: c, tasks: byBlocks ? tileBlocks : panelCount * tiles.count,
                          skips: finite) { range, convolve in
                guard !byBlocks else {
                    for block in range {
                        let (first, end) = (block * tiles.count / tileBlocks, (block + 1) * tiles.count / tileBlocks)
                        convolve(w.base, tiles.start(first), tiles.start(end), 0, panelCount)
                    }
                    return
                }
                // Consecutive tasks of one panel: one call through their tiles.
                var task = range.lowerBound
                while task < range.upperBound {
                    let panel = task / tiles.count
                    let last = min(range.upperBound, (panel + 1) * tiles.count)
                    convolve(w.base + panel * k * 32, tiles.start(task % tiles.count), tiles.start((last - 1) % tiles.count + 1), panel, panel + 1)
                    task = last
                }
            }
        }
    }

    /// A convolution's tiles of output positions (`laq_panels_tile_count`): up to 12 positions
    /// each, along output rows where the kernel has several taps. A function of the shape and
    /// the instruction set.
    struct Tiles: Sendable {
        let shape: laq_conv_shape
        let m: Int
        let count: Int

        /// The first position of tile `tile` (m for `count`).
        func start(_ tile: Int) -> Int {
            withUnsafePointer(to: shape) { laq_panels_tile_start($0, m, tile, CPU.isa) }
        }
    }

    static func tiles(_ shape: laq_conv_shape, m: Int) -> Tiles {
        // Tiles split whole images (or output rows): m is a batch of them.
        precondition(shape.out_height > 0 && shape.out_width > 0 && m % (shape.out_height * shape.out_width) == 0,
                     "\(m) output positions for images of \(shape.out_height) × \(shape.out_width)")
        return Tiles(shape: shape, m: m, count: withUnsafePointer(to: shape) { laq_panels_tile_count($0, m, CPU.isa) })
    }

    /// A convolution on panels in `tasks` tasks shared between laq's threads: each part of them
    /// runs `part(tasks, convolve)`, where convolve(panels, first, end, panelBegin, panelEnd)
    /// computes output positions [first, end) of panels [panelBegin, panelEnd), those panels'
    /// values from `panels` on (`laq_panels_convolve`, with the part's table of tap sources, and
    /// room to copy a tile's rows where `copiesRows` and the kernel may). `skips`: the panels'
    /// values are all finite, so taps outside the input may be skipped. `isa`: the instruction
    /// set the panels are laid out for (`laq_panel_offset`).
    static func convolve(_ x: UnsafePointer<Float>, shape: laq_conv_shape, m: Int, n: Int, epilogue: laq_epilogue,
                         into c: UnsafeMutablePointer<Float>, tasks: Int, copiesRows: Bool = true, skips: Bool, isa: Int32 = CPU.isa,
                         _ part: @Sendable (Range<Int>, (UnsafePointer<Float>, Int, Int, Int, Int) -> Void) -> Void) {
        guard m > 0, n > 0 else { return }
        let taps = shape.kernel_h * shape.kernel_w, k = taps * shape.channels
        ProductCount.add(m * k * n)
        let zeros = [Float](repeating: 0, count: max(1, shape.channels))
        let (x, c) = (SharedPointer(x), SharedPointer(c))
        zeros.withUnsafeBufferPointer { zeros in
            withUnsafePointer(to: shape) { shape in
                withUnsafePointer(to: epilogue) { epilogue in
                    let (zeros, shape, epilogue) = (SharedPointer(zeros.baseAddress!), SharedPointer(shape), SharedPointer(epilogue))
                    // One part below 2¹⁸ multiply-adds (the threads' start would cost more).
                    // Room for a tile's rows of A where a 1×1 kernel's may be copied (`laq_panels_convolve`).
                    let copied = copiesRows ? laq_panels_rows_copy_length(shape.base) : 0
                    Parallel.forEach(tasks, work: m * k * n >= BLAS.leastBlockWork ? tasks : 1, grain: 1, tapered: true) { range in
                        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: taps * 12) { sources in
                            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * taps) { steps in
                                withUnsafeTemporaryAllocation(of: Float.self, capacity: copied) { rows in
                                    part(range) { panels, first, end, panelBegin, panelEnd in
                                        laq_panels_convolve(x.base, shape.base, zeros.base, panels, n, epilogue.base, c.base, first, end,
                                                            panelBegin, panelEnd, sources.baseAddress!, steps.baseAddress!,
                                                            copied > 0 ? rows.baseAddress : nil, skips ? 1 : 0, isa)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body(panels, first row, end row, panel)` over tasks of one panel by a block of rows,
    /// shared between threads, block by block.
    private func forEachTask(m: Int, _ body: @Sendable (UnsafePointer<Float>, Int, Int, Int) -> Void) {
        guard m > 0 else { return }
        ProductCount.add(m * rows * columns)
        let (blockRows, rowBlocks) = Self.rowBlocks(m)
        let tasks = panelCount * rowBlocks
        let panelCount = self.panelCount
        panels.withUnsafeBufferPointer { panels in
            let w = SharedPointer(panels.baseAddress!)
            // One task per part below 2¹⁸ multiply-adds (the threads' start would cost more).
            Parallel.forEach(tasks, work: m * rows * columns >= BLAS.leastBlockWork ? tasks : 1, grain: 1, tapered: true) { range in
                for task in range {
                    // A block of rows through every panel: its rows of A stay in cache while
                    // the panels stream (a panel through every block would read A once per panel).
                    let (block, panel) = (task / panelCount, task % panelCount)
                    let first = block * blockRows
                    body(w.base, first, min(first + blockRows, m), panel)
                }
            }
        }
    }

    /// Blocks of about 96 of m rows (whole tiles of 12), so that a batch-1 product with one or
    /// two panels still has tasks for every thread: the rows of a block, and how many blocks.
    private static func rowBlocks(_ m: Int) -> (rows: Int, count: Int) {
        let blocks = (m + 95) / 96
        let blockRows = ((m + blocks - 1) / blocks + 11) / 12 * 12
        return (blockRows, (m + blockRows - 1) / blockRows)
    }

    /// Blocks of about 8 of a convolution's tiles (96 positions where tiles are whole), their
    /// count a multiple of `threads` where that changes it by no more than a quarter (ResNet50's
    /// 28×28 layers: 84 tiles in 11 blocks gave one of two threads 6 and the other 5; 12 give
    /// each 6): how many blocks, block b being tiles [b·tiles/count, (b + 1)·tiles/count).
    private static func tileBlocks(_ tiles: Int, threads: Int) -> Int {
        let blocks = (tiles + 7) / 8
        let even = (blocks + threads - 1) / threads * threads
        return even <= blocks + blocks / 4 ? even : blocks
    }
}

extension laq_epilogue {
    /// An epilogue without a residual connection: + bias, then the affine map and its ReLU.
    init(bias: UnsafePointer<Float>?, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, relu: Int32, threshold: Float, slope: Float,
         ceiling: Float) {
        self.init(bias: bias, scale: scale, shift: shift, relu: relu, threshold: threshold, slope: slope, ceiling: ceiling, residual: nil,
                  residual_first: 0, after_relu: Int32(LAQ_RELU_NONE), after_threshold: 0, after_slope: 0, after_ceiling: 0)
    }
}
