import CLAQKernels
import Foundation
import Testing
@testable import LAQEngine

/// The array kernels the layers call instead of raw pointers: products at offsets and strides
/// inside larger arrays, and element-wise and row-wise passes, each against plain scalar code.
struct ArrayKernelTests {
    /// Values in [−1, 1) from a fixed seed.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in random.uniform() * 2 - 1 }
    }

    /// C[i][j] = Σ_p A(i, p)·B(p, j) in Double, reading A and B as `gemm` is told to.
    static func reference(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, offsets: (a: Int, b: Int), lda: Int, ldb: Int,
                          transposeA: Bool, transposeB: Bool) -> [[Double]] {
        (0..<m).map { i in
            (0..<n).map { j in
                (0..<k).reduce(0.0) { sum, p in
                    let x = a[offsets.a + (transposeA ? p * lda + i : i * lda + p)]
                    let y = b[offsets.b + (transposeB ? j * ldb + p : p * ldb + j)]
                    return sum + Double(x) * Double(y)
                }
            }
        }
    }

    @Test("BLAS.gemm on arrays: blocks at offsets with row strides and transposes, into a block of C, accumulating or not",
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmAtOffsets(transposes: (Bool, Bool)) {
        let (m, n, k) = (5, 7, 9)
        let (transposeA, transposeB) = transposes
        // Each operand is a column block of a wider matrix, starting after a few values.
        let (lda, ldb, ldc) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 2, n + 4)
        let offsets = (a: 6, b: 1, c: 5)
        let a = Self.values(offsets.a + (transposeA ? k : m) * lda, seed: 1)
        let b = Self.values(offsets.b + (transposeB ? n : k) * ldb, seed: 2)
        let start = Self.values(offsets.c + m * ldc, seed: 3)
        let expected = Self.reference(a, b, m: m, n: n, k: k, offsets: (offsets.a, offsets.b), lda: lda, ldb: ldb,
                                      transposeA: transposeA, transposeB: transposeB)
        for accumulate in [false, true] {
            var c = start
            BLAS.gemm(a, b, into: &c, m: m, n: n, k: k, offsets: offsets, lda: lda, ldb: ldb, ldc: ldc,
                      transposeA: transposeA, transposeB: transposeB, accumulate: accumulate)
            for index in c.indices {
                let row = (index - offsets.c) / ldc, column = (index - offsets.c) % ldc
                guard index >= offsets.c, row < m, column < n else {
                    #expect(c[index] == start[index], "gemm wrote outside C's block at \(index)")
                    continue
                }
                let want = expected[row][column] + (accumulate ? Double(start[index]) : 0)
                #expect(abs(Double(c[index]) - want) <= 1e-5, "C[\(row)][\(column)]")
            }
        }
    }

    @Test("KernelMatrix.multiply on arrays (a float kernel): A at an offset with a row stride, C at an offset")
    func kernelMatrixAtOffsets() throws {
        let (m, k, n) = (3, 6, 4)
        let (lda, offsets) = (k + 2, (a: 3, c: 2))
        let a = Self.values(offsets.a + m * lda, seed: 4)
        let w = Self.values(k * n, seed: 5)
        var c = [Float](repeating: 7, count: offsets.c + m * n + 1)
        KernelMatrix.dense(w).multiply(a, lda: lda, m: m, k: k, n: n, into: &c, offsets: offsets)
        let expected = Self.reference(a, w, m: m, n: n, k: k, offsets: (offsets.a, 0), lda: lda, ldb: n, transposeA: false, transposeB: false)
        #expect(c[0] == 7 && c[1] == 7 && c.last == 7)
        for i in 0..<m {
            for j in 0..<n { #expect(abs(Double(c[offsets.c + i * n + j]) - expected[i][j]) <= 1e-5) }
        }
    }

    @Test("Elementwise passes match scalar code: ReLU and its gradient, Keras' ReLU options, sums, differences, products, maps")
    func elementwise() {
        // Large enough to be split between threads where there are several.
        let count = Parallel.elementwiseCount + 17
        let x = Self.values(count, seed: 6).map { $0 * 8 }
        let y = Self.values(count, seed: 7)
        var out = [Float](repeating: .nan, count: count)

        Elementwise.relu(x, into: &out)
        #expect(out == x.map { max($0, 0) })
        var inPlace = x
        Elementwise.relu(&inPlace)
        #expect(inPlace == out)
        Elementwise.reluGradient(y, preActivation: x, into: &out)
        #expect(out == zip(y, x).map { $1 > 0 ? $0 : 0 })

        let (threshold, slope, ceiling): (Float, Float, Float) = (0.5, 0.1, 6)
        Elementwise.relu(x, into: &out, threshold: threshold, slope: slope, ceiling: ceiling)
        #expect(out == x.map { min($0 >= threshold ? $0 : slope * ($0 - threshold), ceiling) })
        Elementwise.reluGradient(y, input: x, into: &out, threshold: threshold, slope: slope, ceiling: ceiling)
        #expect(out == zip(y, x).map { g, x in x >= ceiling ? 0 : x < threshold ? g * slope : g })

        for (operation, scalar) in [(Elementwise.Operation.add, (+) as (Float, Float) -> Float), (.subtract, (-)), (.multiply, (*))] {
            Elementwise.combine(x, y, into: &out, operation)
            #expect(out == zip(x, y).map(scalar))
            var accumulated = x
            Elementwise.combine(nil, y, into: &accumulated, operation)
            #expect(accumulated == out)
        }
        Elementwise.map(x, y, y, into: &out) { $0 * $1 - $2 }
        #expect(out == zip(x, y).map { $0 * $1 - $1 })
        var updated = x
        Elementwise.update(&updated) { -$0 }
        #expect(updated == x.map { -$0 })
    }

    @Test("Per-channel and per-row passes match scalar code: scale and shift (then a ReLU), softmax rows, layer normalization")
    func rows() {
        let (rows, width) = (37, 11)
        let x = Self.values(rows * width, seed: 8)
        let (scale, shift) = (Self.values(width, seed: 9), Self.values(width, seed: 10))
        var out = [Float](repeating: .nan, count: x.count)
        Elementwise.scaleShift(x, scale: scale, shift: shift, into: &out)
        #expect(out == x.indices.map { x[$0] * scale[$0 % width] + shift[$0 % width] })
        var inPlace = x
        Elementwise.scaleShift(&inPlace, scale: scale, shift: shift, then: .relu(threshold: 0.1, slope: 0.5, ceiling: 0.8))
        #expect(inPlace == out.map { v in min(v >= 0.1 ? v : 0.5 * (v - 0.1), 0.8) })

        var softmax = x
        Elementwise.softmaxRows(&softmax, width: width)
        var normalized = x
        Elementwise.normalizeRows(&normalized, width: width, gamma: scale, beta: shift, epsilon: 1e-3)
        for r in 0..<rows {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let exponentials = row.map { exp($0 - row.max()!) }
            let sum = exponentials.reduce(0, +)
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            for j in 0..<width {
                #expect(abs(Double(softmax[r * width + j]) - exponentials[j] / sum) <= 1e-6)
                let want = (row[j] - mean) / (variance + 1e-3).squareRoot() * Double(scale[j]) + Double(shift[j])
                #expect(abs(Double(normalized[r * width + j]) - want) <= 1e-5)
            }
        }
    }

    @Test("Matrix helpers: copies at offsets, sums, fills; Storage tells a shared buffer from a unique one")
    func matrixAndStorage() {
        let source = Self.values(10, seed: 11)
        var target = [Float](repeating: 0, count: 8)
        Matrix.copy(source, from: 3, into: &target, at: 2, count: 4)
        #expect(target == [0, 0] + Array(source[3..<7]) + [0, 0])
        Matrix.add(target, to: &target)
        #expect(target == [0, 0] + source[3..<7].map { $0 + $0 } + [0, 0])
        Matrix.fill(&target, with: 2)
        #expect(target == [Float](repeating: 2, count: 8))
        #expect(Matrix.columnSums(source, rows: 5, width: 2) == [0, 1].map { c in stride(from: c, to: 10, by: 2).reduce(Float(0)) { $0 + source[$1] } })

        var unique = source.map { $0 }
        #expect(!Storage.makeUnique(&unique))
        let shared = unique
        #expect(Storage.address(shared) == Storage.address(unique))
        #expect(Storage.makeUnique(&unique))
        #expect(Storage.address(shared) != Storage.address(unique) && shared == unique)
    }

    @Test("sigmoid and swish: within 4 ulp of σ in Double over [−90, 90], 1 and 0 beyond, NaN kept; the array kernels (8 lanes on AVX2, the rest scalar) give the scalar function's bits, ±0 and ±∞ included")
    func sigmoidAndSwish() throws {
        var inputs: [Float] = stride(from: -90.0, through: 90.0, by: 0.0137).map { Float($0) }
        inputs += [0, -0, .infinity, -.infinity, .nan, -87.3, -87.4, 1e-30, -1e-30, 88.8, .leastNonzeroMagnitude, -.greatestFiniteMagnitude]
        inputs += Self.values(1003, seed: 9).map { $0 * 20 }
        for x in inputs where x.isFinite {
            let sigma = Activation.sigmoid(x), exact = 1 / (1 + Foundation.exp(-Double(x)))
            if exact < 1.2e-38 {
                #expect(sigma >= 0 && Double(sigma) <= 1.2e-38, "σ(\(x))")
                continue
            }
            let ulp = Double(Float(exact).ulp)
            #expect(abs(Double(sigma) - exact) <= 4 * ulp, "σ(\(x)) = \(sigma), exactly \(exact)")
        }
        #expect(Activation.sigmoid(.infinity) == 1 && Activation.sigmoid(-.infinity) == 0 && Activation.sigmoid(.nan).isNaN)
        #expect(Activation.sigmoid(0) == 0.5 && Activation.sigmoid(-0.0) == 0.5)
        for swish in [false, true] {
            var values = inputs
            Elementwise.sigmoid(&values, swish: swish)
            let scalar = inputs.map { swish ? $0 * Activation.sigmoid($0) : Activation.sigmoid($0) }
            #expect(values.map(\.bitPattern) == scalar.map(\.bitPattern), "swish \(swish)")
            #expect(Activation.swish.scalar(3) == 3 * Activation.sigmoid(3))
        }
        // Through Activation.apply: sigmoid and swish as Keras' layers call them.
        var layer = inputs
        Activation.swish.apply(&layer, width: 1)
        #expect(layer.map(\.bitPattern) == inputs.map { ($0 * Activation.sigmoid($0)).bitPattern })
    }

    @Test("broadcast merges run by run (contiguous runs, repeated values, mixed axes) with the bits of the element-by-element definition")
    func broadcastRuns() throws {
        let pairs: [([Int], [Int])] = [([2, 3, 4, 5], [2, 1, 1, 5]), ([2, 3, 4, 5], [2, 3, 4, 1]), ([2, 3, 4, 5], [5]), ([2, 3, 4, 5], [1]),
                                       ([2, 3, 4, 5], [3, 1, 5]), ([2, 1, 4, 5], [2, 3, 1, 5]), ([3, 1, 1, 7], [3, 4, 6, 7]), ([1, 1], [4, 3])]
        for (index, (a, b)) in pairs.enumerated() {
            let x = Tensor(shape: a, data: Self.values(a.reduce(1, *), seed: UInt64(10 + index)))
            let y = Tensor(shape: b, data: Self.values(b.reduce(1, *), seed: UInt64(20 + index)))
            let shape = try #require(Broadcast.shape([a, b]))
            // Every run covers its elements once, in order, from the sources forEach names.
            var expected: [(Int, Int)] = [], runs: [(Int, Int)] = []
            Broadcast.forEach(shape, strides: [Broadcast.strides(of: b, in: shape)]) { i, offsets in expected.append((i, offsets[0])) }
            Broadcast.forEachRun(shape, strides: Broadcast.strides(of: b, in: shape)) { start, offset, length, step in
                for k in 0..<length { runs.append((start + k, offset + k * step)) }
            }
            #expect(runs.map(\.0) == expected.map(\.0) && runs.map(\.1) == expected.map(\.1), "\(a) with \(b)")
            for kind in [MergeOp.Kind.add, .subtract, .multiply, .maximum, .divide] {
                let merged = try MergeOp(name: "m", kind: kind).forward([x, y], workspace: nil)
                var reference = [Float](repeating: 0, count: shape.reduce(1, *))
                let (sa, sb) = (Broadcast.strides(of: a, in: shape), Broadcast.strides(of: b, in: shape))
                Broadcast.forEach(shape, strides: [sa, sb]) { i, offsets in
                    let (u, v) = (x.data[offsets[0]], y.data[offsets[1]])
                    switch kind {
                    case .add: reference[i] = u + v
                    case .subtract: reference[i] = u - v
                    case .multiply: reference[i] = u * v
                    case .maximum: reference[i] = v > u ? v : u
                    default: reference[i] = u / v
                    }
                }
                #expect(merged.shape == shape && merged.data.map(\.bitPattern) == reference.map(\.bitPattern), "\(a) \(kind) \(b)")
            }
        }
    }

    @Test("GELU: within 5·10⁻⁷·(1 + |x|) of the exact GELU in Double, erf within 4.2·10⁻⁷ over [−6, 6], NaN kept; the array kernel gives the scalar function's bits")
    func gelu() {
        var inputs: [Float] = stride(from: -12.0, through: 12.0, by: 0.00731).map { Float($0) }
        inputs += [0, -0, .infinity, -.infinity, .nan, 1e-30, -1e-30, 5.657, -5.657, .greatestFiniteMagnitude]
        for x in inputs where x.isFinite && abs(x) < 1e3 {
            let exact = 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
            #expect(abs(Double(Activation.gelu(x)) - exact) <= 5e-7 * (1 + abs(Double(x))), "GELU(\(x)) = \(Activation.gelu(x)), exactly \(exact)")
            if abs(x) <= 6 { #expect(abs(Double(laq_erff(x)) - Foundation.erf(Double(x))) <= 4.2e-7, "erf(\(x))") }
        }
        #expect(Activation.gelu(.infinity) == .infinity && Activation.gelu(.nan).isNaN && laq_erff(.nan).isNaN)
        var values = inputs
        Activation.gelu.apply(&values, width: 1)
        #expect(values.map(\.bitPattern) == inputs.map { Activation.gelu($0).bitPattern })
    }
}
