import CLAQKernels
import LAQModel
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

/// The one-row product (`BLAS.gemm` with m = 1 runs OpenBLAS' gemv) against a scalar reference.
@Suite struct OneRowProductTests {
    @Test("m = 1: every transpose, a strided row of A, accumulation, and C starting as NaN")
    func oneRow() {
        let (k, n) = (37, 23)
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
