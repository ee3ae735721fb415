import CBLAS
import LAQFormat
import CLAQKernels

/// The one place LAQEngine calls OpenBLAS. Two shapes OpenBLAS spends more time packing than
/// multiplying run laq's kernels instead (`laq_short_inner_product`, `laq_long_inner_product`):
/// a short inner dimension (k ≤ 16, n ≤ 64: a convolution over one input channel; the CNN
/// benchmark's first layer, 67,600 × 9 · 9 × 32, took 1.6–2.2 ms in OpenBLAS on two threads and
/// 0.8 ms in the kernel on one) and a long one with a small result (Aᵀ·B, m ≤ 16, n ≤ 64: its
/// kernel gradient, 1.5–1.6 ms against 0.9 ms on one thread). Both run on two threads here; the
/// CNN's training step gained 14 % (`laq-bench --train`, alternating runs with and without).
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
        if !transposeA, !transposeB, k <= 16, n <= 64, m >= 64 {
            let (a, b, c) = (SharedPointer(a), SharedPointer(b), SharedPointer(c))
            let (lda, ldb, ldc) = (lda ?? k, ldb ?? n, ldc ?? n)
            Parallel.halves(m, large: m * n >= Parallel.elementwiseCount) { rows in
                laq_short_inner_product(a.base + rows.lowerBound * lda, lda, b.base, ldb, c.base + rows.lowerBound * ldc, ldc,
                                        rows.count, k, n, accumulate ? 1 : 0, CPU.isa)
            }
            return
        }
        if transposeA, !transposeB, m <= 16, n <= 64, k >= 1024, ldc == nil || ldc == n {
            longInnerProduct(a, b, c, m: m, n: n, k: k, lda: lda ?? m, ldb: ldb ?? n, accumulate: accumulate)
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

extension BLAS {
    /// C (m×n, dense) (+)= Aᵀ·B with A k×m and B k×n: each thread sums half of the k rows, then
    /// the halves are added.
    private static func longInnerProduct(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, lda: Int, ldb: Int, accumulate: Bool
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * m * n) { partials in
            let (a, b, partials) = (SharedPointer(a), SharedPointer(b), SharedPointer(partials.baseAddress!))
            Parallel.halves(2, large: k * n >= Parallel.elementwiseCount) { parts in
                for part in parts {
                    let rows = part == 0 ? 0..<(k / 2) : (k / 2)..<k
                    laq_long_inner_product(a.base + rows.lowerBound * lda, lda, b.base + rows.lowerBound * ldb, ldb,
                                           partials.base + part * m * n, m, rows.count, n, CPU.isa)
                }
            }
            for index in 0..<(m * n) {
                let sum = partials.base[index] + partials.base[m * n + index]
                c[index] = accumulate ? c[index] + sum : sum
            }
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
    /// kernels between products: a batch-1 ternary product (`laq-bench --packed`, 4096²) took
    /// 0.37–0.45 ms in 5 runs with this and 0.35–0.65 ms without (3 of 5 in the slow mode),
    /// alternating; CNN training ran 1–13 % faster, MLP training 0–4 % (`laq-bench --train`).
    /// Waking a sleeping worker costs microseconds per product. Returns false where the build
    /// has no such threads.
    @discardableResult
    public static func sleepWhenIdle() -> Bool { laq_blas_sleep_when_idle() == 0 }

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
