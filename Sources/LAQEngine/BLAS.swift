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
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), 1, a, Int32(lda ?? (transposeA ? m : k)), b, Int32(ldb ?? (transposeB ? k : n)),
            accumulate ? 1 : 0, c, Int32(ldc ?? n))
    }
}
