import CLAQKernels
import Testing
@testable import LAQEngine

/// Float32 products on packed panels (`laq_panels_multiply`, ``FloatPanels``): each element is
/// the chain of fused multiply-adds over the inner dimension in order, then C's value added, on
/// every instruction set, for any split of rows and panels, on any number of threads.
@Suite(.serialized) struct PanelKernelTests {
    /// Σ_t a·w by fused multiply-adds in t order from 0, then + c when accumulating.
    static func reference(_ a: [Float], lda: Int, _ w: [Float], m: Int, k: Int, n: Int, c: [Float], accumulate: Bool) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for t in 0..<k { sum = sum.addingProduct(a[i * lda + t], w[t * n + j]) }
                out[i * n + j] = accumulate ? sum + c[i * n + j] : sum
            }
        }
        return out
    }

    static func random(_ count: Int, _ generator: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 997 }
    }

    @Test("the kernel equals the fused-multiply-add chains on every instruction set, in any split of rows and panels")
    func kernelBits() {
        for (m, k, n) in [(1, 1, 1), (13, 9, 17), (25, 27, 32), (12, 5, 33), (47, 64, 70), (3, 200, 16), (30, 11, 96)] {
            var generator = SplitMix64(seed: UInt64(m * 1000 + k * 10 + n))
            let lda = k + 3
            let a = Self.random(m * lda, &generator), w = Self.random(k * n, &generator), c0 = Self.random(m * n, &generator)
            var panels = [Float](repeating: .nan, count: laq_panels_length(k, n))
            laq_panels_pack(w, k, n, &panels)
            for accumulate in [false, true] {
                let expected = Self.reference(a, lda: lda, w, m: m, k: k, n: n, c: c0, accumulate: accumulate)
                for isa in Int32(0)...CPU.isa {
                    var c = c0
                    // Rows in two uneven parts, every panel on its own.
                    let split = m / 3
                    for panel in 0..<((n + 31) / 32) {
                        for (begin, end) in [(0, split), (split, m)] {
                            laq_panels_multiply(a, lda, panels, k, n, &c, n, begin, end, panel, accumulate ? 1 : 0, isa)
                        }
                    }
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(m)×\(k)·\(k)×\(n), accumulate \(accumulate), isa \(isa)")
                }
            }
        }
    }

    @Test("FloatPanels gives the same bits on 1, 2, 3 and 8 threads, and the bias is added after the sum")
    func threads() throws {
        guard FloatPanels([1], rows: 1, columns: 1, anyShape: true) != nil else { return }  // no AVX-512: OpenBLAS multiplies
        defer { Parallel.configure(threads: nil) }
        var generator = SplitMix64(seed: 3)
        let (m, k, n) = (1000, 147, 90)
        let a = Self.random(m * k, &generator), w = Self.random(k * n, &generator), bias = Self.random(n, &generator)
        let panels = try #require(FloatPanels(w, rows: k, columns: n))
        // Narrow panels are left to OpenBLAS, and K ≤ 16 with N ≤ 64 to the short-inner kernel
        // (a function of the shape alone).
        for (columns, expected) in [(16, false), (24, false), (28, true), (32, true), (40, false), (48, false), (60, true), (144, true)] {
            #expect((FloatPanels([Float](repeating: 1, count: 20 * columns), rows: 20, columns: columns) != nil) == expected, "\(columns) columns")
        }
        #expect(FloatPanels([Float](repeating: 1, count: 9 * 32), rows: 9, columns: 32) == nil)
        #expect(FloatPanels([Float](repeating: 1, count: 9 * 96), rows: 9, columns: 96) != nil)
        let start = (0..<m).flatMap { _ in bias }
        let expected = Self.reference(a, lda: k, w, m: m, k: k, n: n, c: start, accumulate: true)
        for threads in [1, 2, 3, 8] {
            Parallel.configure(threads: threads, environment: [:])
            var c = start
            KernelMatrix.panels(panels).multiply(a, m: m, k: k, n: n, into: &c, accumulate: true)
            #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(threads) threads")
        }
    }
}
