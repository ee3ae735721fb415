import CBLAS

/// The one place LAQEngine calls OpenBLAS.
enum BLAS {
    /// C = A·B (+ C when `accumulate`), row-major, A m×k, B k×n, C m×n; transposes as flagged.
    /// `lda`, `ldb`, `ldc`: row strides when A, B or C is a column block of a wider matrix
    /// (default: their widths).
    static func gemm(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if !accumulate { for row in 0..<m { (c + row * (ldc ?? n)).update(repeating: 0, count: n) } }
            return
        }
        if m == 1 {
            // One row: a matrix-vector product. OpenBLAS 0.3.21's sgemm does not forward this
            // to gemv, which is ~3× faster at 4096×4096 (4.2 → 1.4 ms; laq-bench --packed).
            // C may be uninitialized (Matrix.uninitialized): zeroed here, not by β = 0, which
            // some OpenBLAS versions apply as a multiplication (NaN · 0 = NaN).
            if !accumulate { c.update(repeating: 0, count: n) }
            let x = transposeA ? (lda ?? m) : 1
            if transposeB {  // B stored n×k: c += B·a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, b, Int32(ldb ?? k), a, Int32(x), 1, c, 1)
            } else {  // B stored k×n: c += Bᵀ·a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, b, Int32(ldb ?? n), a, Int32(x), 1, c, 1)
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), 1, a, Int32(lda ?? (transposeA ? m : k)), b, Int32(ldb ?? (transposeB ? k : n)),
            accumulate ? 1 : 0, c, Int32(ldc ?? n))
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
}
