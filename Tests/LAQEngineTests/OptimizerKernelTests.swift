import CLAQKernels
import Testing
@testable import LAQEngine

/// The vectorised Adam update (`laq_adam_update`): every instruction set this machine has gives
/// the scalar formula's bits, at lengths that end inside and past a vector.
@Suite struct OptimizerKernelTests {
    @Test("Adam's update gives the same bits on every instruction set as Keras' formula in scalar float32")
    func adamBits() {
        for count in [1, 7, 8, 15, 16, 17, 33, 100] {
            var generator = SplitMix64(seed: UInt64(count))
            func random(_ scale: Float) -> [Float] { (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 * scale } }
            let g = random(2), w0 = random(1), m0 = random(0.1), v0 = random(0.01).map(abs)
            let (scale, beta1, beta2, alpha, epsilon): (Float, Float, Float, Float, Float) = (0.7, 0.9, 0.999, 3e-3, 1e-7)
            // The reference: Keras' update written out element by element.
            var (w, m, v) = (w0, m0, v0)
            for i in 0..<count {
                let grad = g[i] * scale
                m[i] = m[i] + (grad - m[i]) * (1 - beta1)
                v[i] = v[i] + (grad * grad - v[i]) * (1 - beta2)
                w[i] = w[i] - alpha * m[i] / (v[i].squareRoot() + epsilon)
            }
            for isa in Int32(0)...CPU.isa {
                var (ww, mm, vv) = (w0, m0, v0)
                laq_adam_update(&ww, &mm, &vv, g, count, scale, beta1, beta2, alpha, epsilon, isa)
                #expect(ww.map(\.bitPattern) == w.map(\.bitPattern) && mm == m && vv == v, "n = \(count), isa \(isa)")
            }
        }
    }
}

/// Products `BLAS.gemm` does not hand to OpenBLAS' sgemm, against a scalar reference: one row
/// (gemv), a short inner dimension and a long one with a small result (laq's kernels).
@Suite struct ProductShapeTests {
    /// C (m×n, row stride ldc) starting from `start` (or NaN), plus A·B or Aᵀ·B with the given strides.
    static func check(m: Int, n: Int, k: Int, transposeA: Bool, lda: Int, ldb: Int, ldc: Int, accumulate: Bool, seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 } }
        let a = random((transposeA ? k : m) * lda), b = random(k * ldb), start = random(m * ldc)
        var c = accumulate ? start : [Float](repeating: .nan, count: m * ldc)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                              transposeA: transposeA, accumulate: accumulate)
                }
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var expected: Double = accumulate ? Double(start[i * ldc + j]) : 0
                for t in 0..<k { expected += Double(transposeA ? a[t * lda + i] : a[i * lda + t]) * Double(b[t * ldb + j]) }
                #expect(abs(Double(c[i * ldc + j]) - expected) < 1e-4 * Double(max(k, 1)).squareRoot(),
                        "m \(m), n \(n), k \(k), transposeA \(transposeA), accumulate \(accumulate): (\(i), \(j))")
            }
        }
    }

    @Test("a short inner dimension (k ≤ 16, n ≤ 64): widths inside and past a vector, strides, accumulation, two threads")
    func shortInner() {
        for (index, (k, n)) in [(1, 1), (9, 32), (16, 64), (3, 17), (5, 33)].enumerated() {
            for accumulate in [false, true] {
                Self.check(m: 300, n: n, k: k, transposeA: false, lda: k + 2, ldb: n + 1, ldc: n + 3, accumulate: accumulate, seed: UInt64(index))
                // Large enough for two threads.
                Self.check(m: 4100, n: n, k: k, transposeA: false, lda: k, ldb: n, ldc: n, accumulate: accumulate, seed: UInt64(10 + index))
            }
        }
    }

    @Test("the narrow-product kernels on every instruction set (scalar loops and AVX-512) agree with the reference")
    func narrowKernelsEveryISA() {
        let (rows, k, n, m) = (37, 9, 33, 7)
        var generator = SplitMix64(seed: 99)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 } }
        let a = random(rows * 16), b = random(rows * 64)
        for isa in Int32(0)...CPU.isa {
            var c = [Float](repeating: 0, count: rows * n)
            laq_short_inner_product(a, 16, b, 64, &c, n, rows, k, n, 0, isa)
            var w = [Float](repeating: .nan, count: m * n)
            laq_long_inner_product(a, 16, b, 64, &w, m, rows, n, isa)
            for i in 0..<rows {
                for j in 0..<n {
                    var expected: Float = 0
                    for t in 0..<k { expected += a[i * 16 + t] * b[t * 64 + j] }
                    #expect(abs(c[i * n + j] - expected) < 1e-5, "short inner, isa \(isa)")
                    if isa >= Int32(LAQ_ISA_AVX512) {
                        // Four rows at a time or one: each element is the same chain of fused multiply-adds.
                        var fused: Float = 0
                        for t in 0..<k { fused = fused.addingProduct(a[i * 16 + t], b[t * 64 + j]) }
                        #expect(c[i * n + j].bitPattern == fused.bitPattern, "short inner, isa \(isa), row \(i)")
                    }
                }
            }
            for t in 0..<m {
                for j in 0..<n {
                    var expected: Float = 0
                    for r in 0..<rows { expected += a[r * 16 + t] * b[r * 64 + j] }
                    #expect(abs(w[t * n + j] - expected) < 1e-4, "long inner, isa \(isa)")
                }
            }
        }
    }

    @Test("a long inner dimension with a small result (Aᵀ·B, m ≤ 16, n ≤ 64): odd halves, strides, accumulation")
    func longInner() {
        for (index, (m, n)) in [(1, 1), (9, 32), (16, 64), (5, 17)].enumerated() {
            for accumulate in [false, true] {
                Self.check(m: m, n: n, k: 3001, transposeA: true, lda: m + 1, ldb: n + 2, ldc: n, accumulate: accumulate, seed: UInt64(20 + index))
            }
        }
    }

    @Test("m = 1: every transpose, a strided row of A, accumulation, and C starting as NaN; a large B stored k×n in parts of its rows",
          arguments: [(37, 23), (1500, 700)])
    func oneRow(_ size: (Int, Int)) {
        let (k, n) = size
        var generator = SplitMix64(seed: 5)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 } }
        let a = random(k * 3), b = random(k * n), start = random(n)
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                for accumulate in [false, true] {
                    // A: the row itself, or column 0 of a k×3 matrix (lda 3) when transposed.
                    func aValue(_ i: Int) -> Float { transposeA ? a[i * 3] : a[i] }
                    // B: k×n, or n×k stored when transposed.
                    func bValue(_ i: Int, _ j: Int) -> Float { transposeB ? b[j * k + i] : b[i * n + j] }
                    var c = accumulate ? start : [Float](repeating: .nan, count: n)
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            c.withUnsafeMutableBufferPointer { pc in
                                BLAS.gemm(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!, m: 1, n: n, k: k, lda: transposeA ? 3 : nil,
                                          transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
                            }
                        }
                    }
                    for j in 0..<n {
                        var expected: Double = accumulate ? Double(start[j]) : 0
                        for i in 0..<k { expected += Double(aValue(i)) * Double(bValue(i, j)) }
                        #expect(abs(Double(c[j]) - expected) < 1e-4, "transposeA \(transposeA), transposeB \(transposeB), accumulate \(accumulate), column \(j)")
                    }
                }
            }
        }
    }
}
