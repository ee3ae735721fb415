import CBLAS
import LAQFormat
import CLAQKernels

/// The one place LAQEngine calls OpenBLAS.
///
/// OpenBLAS runs single-threaded; laq's threads share a product by splitting C into blocks of
/// rows or columns fixed by the product's shape (``blocks(m:n:k:)``), one OpenBLAS call each.
/// OpenBLAS' own threading gives results that depend on its thread count (measured with 0.3.21:
/// 1 × 3000 · 3000 × 900 through gemv differed in 8 of 900 outputs between 1 and 2 threads, and
/// 8 × 1497 · 1497 × 700 through gemm in 4,033 of 5,600); fixed blocks give the same bits on any
/// number of threads.
///
/// Two shapes OpenBLAS spends more time packing than multiplying run laq's kernels instead
/// (`laq_short_inner_product`, `laq_long_inner_product`): a short inner dimension (k ≤ 16,
/// n ≤ 64: a convolution over one input channel, such as the first layer of the CNN benchmark,
/// 67,600 × 9 · 9 × 32) and a long one with a small result (Aᵀ·B, m ≤ 16, n ≤ 64: its kernel
/// gradient). docs/PERFORMANCE.md ("Kernels beside OpenBLAS") has the measurements. One row
/// times a large B stored k×n (a Dense layer at batch 1) is shared by parts of B's rows instead
/// of blocks of its columns (``rowTimesRows(_:_:_:n:k:stride:ldb:accumulate:)``).
enum BLAS {
    /// C = A·B (+ C when `accumulate`), row-major, A m×k, B k×n, C m×n; transposes as flagged.
    /// `lda`, `ldb`, `ldc`: row strides when A, B or C is a column block of a wider matrix
    /// (default: their widths).
    static func gemm(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        ProductCount.add(m * n * k)
        let (lda, ldb, ldc) = (lda ?? (transposeA ? m : k), ldb ?? (transposeB ? k : n), ldc ?? n)
        if k == 0 {
            if !accumulate { for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) } }
            return
        }
        if !transposeA, !transposeB, k <= 16, n <= 64, m >= 64 {
            let (a, b, c) = (SharedPointer(a), SharedPointer(b), SharedPointer(c))
            Parallel.forEach(m, work: m * n) { rows in
                laq_short_inner_product(a.base + rows.lowerBound * lda, lda, b.base, ldb, c.base + rows.lowerBound * ldc, ldc,
                                        rows.count, k, n, accumulate ? 1 : 0, CPU.isa)
            }
            return
        }
        if transposeA, !transposeB, m <= 16, n <= 64, k >= 1024, ldc == n {
            longInnerProduct(a, b, c, m: m, n: n, k: k, lda: lda, ldb: ldb, accumulate: accumulate)
            return
        }
        if m == 1, !transposeB, k >= 256, k * n >= 1 << 20 {
            rowTimesRows(a, b, c, n: n, k: k, stride: transposeA ? lda : 1, ldb: ldb, accumulate: accumulate)
            return
        }
        // Blocks of rows (A's rows, C's rows) or of columns (B's columns, C's columns).
        let (split, size, count) = blocks(m: m, n: n, k: k)
        let (a, b, c) = (SharedPointer(a), SharedPointer(b), SharedPointer(c))
        Parallel.forEach(count, work: count, grain: 1) { range in
            for block in range {
                let start = block * size
                if split == .rows {
                    let rows = min(size, m - start)
                    product(a.base + (transposeA ? start : start * lda), b.base, c.base + start * ldc, m: rows, n: n, k: k,
                            lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
                } else {
                    let columns = min(size, n - start)
                    product(a.base, b.base + (transposeB ? start * ldb : start), c.base + start, m: m, n: columns, k: k,
                            lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
                }
            }
        }
    }

    enum Split { case rows, columns }

    /// The least multiply-adds in a block of ``blocks(m:n:k:)``.
    static let leastBlockWork = 1 << 18

    /// C = A·B (+ C when `accumulate`) on arrays: A, B and C start at `offsets` and have the
    /// row strides and transposes of ``gemm(_:_:_:m:n:k:lda:ldb:ldc:transposeA:transposeB:accumulate:)``.
    /// Every matrix must lie inside its array (checked).
    static func gemm(
        _ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int, offsets: (a: Int, b: Int, c: Int) = (0, 0, 0),
        lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        let (lda, ldb, ldc) = (lda ?? (transposeA ? m : k), ldb ?? (transposeB ? k : n), ldc ?? n)
        precondition(Self.fits(a.count, offsets.a, rows: transposeA ? k : m, width: transposeA ? m : k, stride: lda)
                     && Self.fits(b.count, offsets.b, rows: transposeB ? n : k, width: transposeB ? k : n, stride: ldb)
                     && Self.fits(c.count, offsets.c, rows: m, width: n, stride: ldc),
                     "a \(m)×\(k) · \(k)×\(n) product outside its arrays (\(a.count), \(b.count), \(c.count) values)")
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    // An empty operand (k = 0) has no storage: any valid address serves, nothing is read.
                    let (pa, pb) = (a.baseAddress ?? UnsafePointer(c.baseAddress!), b.baseAddress ?? UnsafePointer(c.baseAddress!))
                    gemm(pa + offsets.a, pb + offsets.b, c.baseAddress! + offsets.c, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                         transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
                }
            }
        }
    }

    /// Whether `rows` rows of `width` values, `stride` apart from `offset`, lie inside `count` values.
    private static func fits(_ count: Int, _ offset: Int, rows: Int, width: Int, stride: Int) -> Bool {
        rows == 0 || width == 0 || (offset >= 0 && stride >= width && offset + (rows - 1) * stride + width <= count)
    }

    /// How a product of m×k by k×n is shared between threads: blocks of C's rows when it has
    /// more rows than columns, else of its columns, each a multiple of 64 wide and at least
    /// ``leastBlockWork`` (2¹⁸) multiply-adds (a block's call packs its own copy of the other
    /// operand, a cost of one 64th of its work at most), and no more than 64 blocks. A function
    /// of the shape alone. The least work sets how finely a product of batch-1 inference is
    /// shared (those of training and batched inference reach the 64-wide floor first): `laq
    /// bench`, two cores, alternating, MobileNetV2 224² at batch 1 ran 8.5–9.9 ms with 2²², 7.2–7.7
    /// with 2²⁰ to 2¹⁶, 6.9–7.3 with 2¹⁸ (blocks of 2²² left most of its products whole or in two
    /// or three blocks, on one core or unevenly on two); ResNet50 58 → 55.5 ms; batch 16 and
    /// training (MLP, CNN at batch 100) within noise or faster.
    static func blocks(m: Int, n: Int, k: Int) -> (split: Split, size: Int, count: Int) {
        let split: Split = m > n ? .rows : .columns
        let (length, across) = split == .rows ? (m, n) : (n, m)
        func roundUp(_ value: Int) -> Int { (value + 63) / 64 * 64 }
        let size = max(roundUp(leastBlockWork / max(1, across * k)), roundUp((length + 63) / 64), 64)
        guard size < length else { return (split, length, 1) }
        return (split, size, (length + size - 1) / size)
    }

    /// One OpenBLAS call (single-threaded): a product of one block.
    private static func product(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, transposeA: Bool, transposeB: Bool, accumulate: Bool
    ) {
        if m == 1 {
            // One row: a matrix-vector product. OpenBLAS 0.3.21's sgemm does not forward this
            // to gemv, whose kernel streams the matrix once (docs/PERFORMANCE.md, "Kernel tuning").
            // C may be uninitialized (Matrix.uninitialized): zeroed here, not by β = 0, which
            // some OpenBLAS versions apply as a multiplication (NaN · 0 = NaN).
            if !accumulate { c.update(repeating: 0, count: n) }
            let x = transposeA ? lda : 1
            if transposeB {  // B stored n×k: c += B·a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, b, Int32(ldb), a, Int32(x), 1, c, 1)
            } else {  // B stored k×n: c += Bᵀ·a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, b, Int32(ldb), a, Int32(x), 1, c, 1)
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
    }
}

extension BLAS {
    /// c (+)= a·B for one row a (k values, `stride` apart) and B k×n (a Dense layer at batch
    /// 1): B's k rows in 8 parts (fewer where k < 1,024; fixed by k, so the sum is the same on any
    /// number of threads), each part's product a partial sum (gemv), then the partials added in
    /// order. A part reads one contiguous run of B: blocks of B's columns are short runs of every
    /// row, which the memory's prefetchers follow worse, and a batch-1 product reads B from
    /// memory (ResNet50's last layer, 2,048 × 1,000, in the model at batch 1: 0.39–0.42 → 0.26–0.28 ms).
    private static func rowTimesRows(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        n: Int, k: Int, stride: Int, ldb: Int, accumulate: Bool
    ) {
        let parts = max(1, min(8, k / 128))
        let (a, b) = (SharedPointer(a), SharedPointer(b))
        Parallel.sumOfParts(parts, length: n, work: k * n, into: c, accumulate: accumulate) { part, partial in
            let rows = (k * part / parts)..<(k * (part + 1) / parts)
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows.count), Int32(n), 1, b.base + rows.lowerBound * ldb, Int32(ldb),
                        a.base + rows.lowerBound * stride, Int32(stride), 1, partial, 1)
        }
    }

    /// C (m×n, dense) (+)= Aᵀ·B with A k×m and B k×n: the k rows in up to 8 parts of at least
    /// 512 (fixed by k, so the sum is the same on any number of threads), each part's product a
    /// partial sum, then the partials added in order.
    private static func longInnerProduct(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, lda: Int, ldb: Int, accumulate: Bool
    ) {
        let parts = max(1, min(8, k / 512))
        let (a, b) = (SharedPointer(a), SharedPointer(b))
        Parallel.sumOfParts(parts, length: m * n, work: k * n, into: c, accumulate: accumulate) { part, partial in
            let rows = (k * part / parts)..<(k * (part + 1) / parts)
            laq_long_inner_product(a.base + rows.lowerBound * lda, lda, b.base + rows.lowerBound * ldb, ldb, partial, m, rows.count, n, CPU.isa)
        }
    }
}

/// OpenBLAS' worker threads, for programs that run other work before (or instead of) products.
public enum BLASThreads {
    /// Stops OpenBLAS' idle workers. Its pthread build starts them when the library loads, and
    /// each spins (sched_yield) for about 2^28 cycles, some 0.1 s, before it sleeps: long
    /// enough to take a core from a command's first 0.1 s, such as a whole import. The next
    /// threaded product starts them again. Returns false where the OpenBLAS build has no such
    /// threads (OpenMP).
    @discardableResult
    public static func stopIdle() -> Bool { laq_blas_stop_idle_threads() == 0 }

    /// Stops OpenBLAS' idle workers, as ``stopIdle()`` does, and makes the workers it starts
    /// later sleep after 2^4 idle cycles instead of 2^28 (OPENBLAS_THREAD_TIMEOUT = 4, unless the
    /// environment sets it). A spinning worker takes the second core from laq's own two-thread
    /// kernels between products, and makes their times bimodal (docs/PERFORMANCE.md, "Kernel
    /// tuning"); waking a sleeping worker costs microseconds per product. Returns false where the build
    /// has no such threads.
    @discardableResult
    public static func sleepWhenIdle() -> Bool { laq_blas_sleep_when_idle() == 0 }

    /// Makes OpenBLAS run each call on the calling thread only (laq shares products between
    /// its own threads: see ``BLAS``).
    public static func runOnCallingThread() { laq_blas_set_num_threads(1) }

    /// Address space OpenBLAS takes for its working buffer on the first product of a thread
    /// (BUFFER_SIZE: 128 MiB on x86-64), with room for the allocator's overhead.
    public static let bufferBytes = 160 << 20

    /// Makes OpenBLAS take its working buffer now, if the process can afford it. OpenBLAS
    /// (0.3.21) retries a failed allocation of that buffer forever, so under an address-space
    /// limit (`ulimit -v`) the first product would hang instead of failing; a program under such
    /// a limit calls this first, and reports running out of memory when it returns false.
    public static func reserveBuffer() -> Bool {
        guard Memory.canAllocate(bufferBytes) else { return false }
        // Large enough, and with α ≠ 1, that OpenBLAS takes its packing path, which maps the
        // buffer: a 64³ product with α = 1 runs in its small-matrix kernels and maps nothing
        // (measured: VmSize +0 MiB for 64³, +128 MiB for 128³ with α = 0.5).
        let n: Int32 = 128
        let a = [Float](repeating: 0, count: Int(n * n))
        var c = [Float](repeating: 0, count: Int(n * n))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 0.5, a, n, a, n, 0, &c, n)
        return true
    }
}
