import CLAQKernels

/// A float32 weight matrix packed once into panels of 32 columns for laq's AVX-512 product
/// kernel (`laq_panels_multiply`): a convolution's kernel. OpenBLAS packs the weights again at
/// every call, which costs more than the multiplication on the small products of batch-1
/// convolutions; here each element of C is one chain of fused multiply-adds over the inner
/// dimension in order, so the bits do not depend on how rows and panels are shared between
/// threads (docs/PERFORMANCE.md, "Convolutions on packed panels").
struct FloatPanels: Sendable {
    /// K and N of the K×N matrix.
    let rows: Int
    let columns: Int
    let panels: [Float]
    /// The matrix row-major, for the products OpenBLAS does better (the op holds the same array).
    let values: [Float]

    /// The panels of the row-major `rows`×`columns` matrix `values`; nil where the CPU lacks
    /// AVX-512 (OpenBLAS multiplies there).
    init?(_ values: [Float], rows: Int, columns: Int) {
        guard CPU.isa >= Int32(LAQ_ISA_AVX512), rows > 0, columns > 0 else { return nil }
        precondition(values.count == rows * columns, "\(values.count) values for \(rows) × \(columns)")
        self.rows = rows
        self.columns = columns
        self.values = values
        panels = [Float](unsafeUninitializedCapacity: laq_panels_length(rows, columns)) { buffer, initialized in
            values.withUnsafeBufferPointer { laq_panels_pack($0.baseAddress!, rows, columns, buffer.baseAddress!) }
            initialized = buffer.count
        }
    }

    var panelCount: Int { (columns + 31) / 32 }

    /// C (m×N, row stride N) = A (m×K, row stride `lda`) · W (+ C when `accumulate`), in tasks
    /// of one panel by a block of rows shared between threads, block by block.
    /// `panelsOnly`: the panels whatever the shape (benchmarks).
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool, panelsOnly: Bool = false) {
        guard m > 0 else { return }
        // OpenBLAS where the panels measured slower: when the last panel leaves more than an
        // eighth of its lanes empty (`laq-bench --panels`, one core, against laq's OpenBLAS path:
        // 24 columns 0.82×, 16 columns 0.51×, full panels 1.03–1.43×). A function of the shape.
        if !panelsOnly, columns * 8 < panelCount * 32 * 7 {
            values.withUnsafeBufferPointer { w in
                BLAS.gemm(a, w.baseAddress!, c, m: m, n: columns, k: rows, lda: lda, accumulate: accumulate)
            }
            return
        }
        ProductCount.add(m * rows * columns)
        // Blocks of about 96 rows (whole tiles of 12), so that a batch-1 product with one or two
        // panels still has tasks for every thread.
        let blocks = (m + 95) / 96
        let blockRows = ((m + blocks - 1) / blocks + 11) / 12 * 12
        let rowBlocks = (m + blockRows - 1) / blockRows
        let tasks = panelCount * rowBlocks
        let (k, n) = (rows, columns)
        let (a, c) = (SharedPointer(a), SharedPointer(c))
        panels.withUnsafeBufferPointer { panels in
            let w = SharedPointer(panels.baseAddress!)
            // One task per part below 2¹⁸ multiply-adds (the threads' start would cost more).
            Parallel.forEach(tasks, work: m * k * n >= BLAS.leastBlockWork ? tasks : 1, grain: 1) { range in
                for task in range {
                    // A block of rows through every panel: its rows of A stay in cache while
                    // the panels stream (a panel through every block would read A once per panel).
                    let (block, panel) = (task / panelCount, task % panelCount)
                    let first = block * blockRows
                    laq_panels_multiply(a.base, lda, w.base, k, n, c.base, n, first, min(first + blockRows, m), panel,
                                        accumulate ? 1 : 0, CPU.isa)
                }
            }
        }
    }
}
