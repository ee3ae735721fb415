import CLAQKernels
import Foundation
import LAQTestSupport
import Testing
@testable import LAQEngine

/// The bit-plane kernels (`CLAQKernels`): every instruction set this machine has (scalar always,
/// AVX2 and AVX-512 where present) gives dequantize-then-multiply's products, at widths that end
/// inside, at and past a 64-column block, with zeros in A, accumulating or not.
@Suite struct PlaneKernelTests {
    static var instructionSets: [Int32] { Array(0...PlaneMatrix.bestISA) }

    struct Case {
        var k: Int, n: Int, levelCount: Int, perColumn: Bool, zeroLevel: Bool
        /// More than 3 levels: logarithmic, α·{0, ±¼, ±½, ±1} (7) or α·{0, ±¼, ±1} (5), as signed
        /// planes, not linear.
        var log = false
        /// With `zeroLevel` and 3 levels: code 1 = −code 0 in every table (LAT's and TWN's
        /// ±α, 0), which int8 activations multiply with one signed dot product per word pair.
        var symmetric = false
    }

    /// One-hot planes (1–3 levels), bit planes (4–16 affine levels) and signed planes (5 and 7
    /// logarithmic levels).
    static let cases: [Case] = {
        var cases: [Case] = []
        let kinds: [(Int, Bool)] = [(1, false), (2, false), (3, false), (4, false), (7, false), (8, false), (15, false), (16, false), (5, true), (7, true)]
        let sizes: [(Int, Int)] = [(1, 1), (7, 63), (100, 64), (33, 65), (64, 130)]
        for (levelCount, log) in kinds {
            for (k, n) in sizes {
                for perColumn in [false, true] {
                    for zeroLevel in levelCount <= 3 ? [false, true] : [false] {
                        cases.append(Case(k: k, n: n, levelCount: levelCount, perColumn: perColumn, zeroLevel: zeroLevel, log: log))
                    }
                    if levelCount == 3 {
                        cases.append(Case(k: k, n: n, levelCount: 3, perColumn: perColumn, zeroLevel: true, symmetric: true))
                    }
                }
            }
        }
        return cases
    }()

    /// Levels in [−1, 1]; with `zeroLevel`, code L − 1 is 0 in every table (as ternary's middle
    /// level is), which the planes renumber to code 0. More than 3 levels are affine in the
    /// code, rounded to float32 as the quantizers' α·i/k are.
    /// `code(k, n, random)`, where given, chooses each element's code in place of the random one.
    static func matrix(_ item: Case, isa: Int32, seed: UInt64, int8: Bool = false,
                       code: ((Int, Int, UInt8) -> UInt8)? = nil) -> (PlaneMatrix, codes: [UInt8], levels: [Float])? {
        var generator = SplitMix64(seed: seed)
        let tables = item.perColumn ? item.n : 1
        var levels = (0..<(tables * item.levelCount)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 }
        if item.log {
            let units: [Float] = item.levelCount == 5 ? [-1, -0.25, 0, 0.25, 1] : [-1, -0.5, -0.25, 0, 0.25, 0.5, 1]
            for table in 0..<tables {
                let alpha = Float(1 + generator.next() % 1000) / 1000
                for code in 0..<item.levelCount { levels[table * item.levelCount + code] = alpha * units[code] }
            }
        } else if item.levelCount > 3 {
            for table in 0..<tables {
                let first = -Double(generator.next() % 1000) / 1000, step = Double(1 + generator.next() % 300) / 1000
                for code in 0..<item.levelCount { levels[table * item.levelCount + code] = Float(first + Double(code) * step) }
            }
        }
        if item.zeroLevel { for table in 0..<tables { levels[table * item.levelCount + item.levelCount - 1] = 0 } }
        if item.symmetric { for table in 0..<tables { levels[table * 3 + 1] = -levels[table * 3] } }
        var codes = (0..<(item.k * item.n)).map { _ in UInt8(generator.next() % UInt64(item.levelCount)) }
        if let code { for index in codes.indices { codes[index] = code(index / item.n, index % item.n, codes[index]) } }
        let matrix = PlaneMatrix(rows: item.k, columns: item.n, levelCount: item.levelCount, levels: levels,
                                 perColumn: item.perColumn, int8Activations: int8, isa: isa) { start, count, output in
            for index in 0..<(count * item.n) { output[index] = codes[start * item.n + index] }
            return true
        }
        return matrix.map { ($0, codes, levels) }
    }

    /// C = A·W (+ C, starting at `initial`, when `accumulate`) for m rows of A, all in one call or
    /// one row at a time.
    static func product(_ matrix: PlaneMatrix, _ a: [Float], _ item: Case, m: Int, initial: Float = 0, accumulate: Bool = false,
                        oneRowAtATime: Bool = false) -> [Float] {
        var c = [Float](repeating: initial, count: m * item.n)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                let rows: [(first: Int, count: Int)] = oneRowAtATime ? (0..<m).map({ ($0, 1) }) : [(0, m)]
                for (first, count) in rows {
                    matrix.multiply(a.baseAddress! + first * item.k, lda: item.k, m: count, into: c.baseAddress! + first * item.n, ldc: item.n,
                                    accumulate: accumulate)
                }
            }
        }
        return c
    }

    static func dequantized(_ item: Case, _ codes: [UInt8], _ levels: [Float]) -> [Float] {
        codes.enumerated().map { index, code in
            levels[(item.perColumn ? (index % item.n) * item.levelCount : 0) + Int(code)]
        }
    }

    @Test("products equal dequantize-then-multiply for every instruction set, one-hot (1–3 levels) and bit planes (4–16 affine levels), per tensor and per channel, m = 1, 2, 3, 5")
    func products() throws {
        for isa in Self.instructionSets {
            for (index, item) in Self.cases.enumerated() {
                let (matrix, codes, levels) = try #require(Self.matrix(item, isa: isa, seed: UInt64(index)))
                let w = Self.dequantized(item, codes, levels)
                for m in [1, 2, 3, 5] {
                    for accumulate in [false, true] {
                        var generator = SplitMix64(seed: UInt64(m * 31 + index))
                        // Every third input is zero (ReLU outputs): the skipped terms change nothing.
                        let a = (0..<(m * item.k)).map { $0 % 3 == 0 ? 0 : Float(Int(generator.next() % 2001) - 1000) / 500 }
                        let start: [Float] = (0..<(m * item.n)).map { Float($0 % 5) }
                        var c = accumulate ? start : [Float](repeating: .nan, count: m * item.n)
                        a.withUnsafeBufferPointer { a in
                            c.withUnsafeMutableBufferPointer {
                                matrix.multiply(a.baseAddress!, lda: item.k, m: m, into: $0.baseAddress!, ldc: item.n, accumulate: accumulate)
                            }
                        }
                        var expected = PackedKernelTests.reference(a, w, m: m, k: item.k, n: item.n)
                        if accumulate { expected = zip(expected, start).map(+) }
                        let error = zip(c, expected).map { abs($0 - $1) }.max() ?? 0
                        #expect(error <= 2e-6 * Float(item.k + 4) * 4,
                                "isa \(isa), \(item), m = \(m), accumulate \(accumulate): max |Δ| \(error)")
                    }
                }
            }
        }
    }

    @Test("rows decode to the dequantized values for every instruction set; element ranges decode likewise")
    func decoding() throws {
        for isa in Self.instructionSets {
            for (index, item) in Self.cases.enumerated() {
                let (matrix, codes, levels) = try #require(Self.matrix(item, isa: isa, seed: UInt64(500 + index)))
                let w = Self.dequantized(item, codes, levels)
                var rows = [Float](repeating: .nan, count: w.count)
                rows.withUnsafeMutableBufferPointer { matrix.decodeRows(from: 0, count: item.k, into: $0.baseAddress!) }
                #expect(rows == w, "isa \(isa), \(item)")
                let start = w.count / 3, count = w.count - start
                var range = [Float](repeating: .nan, count: count)
                range.withUnsafeMutableBufferPointer { matrix.decode(from: start, count: count, into: $0.baseAddress!) }
                #expect(range == Array(w[start...]), "isa \(isa), \(item)")
            }
        }
    }

    @Test("panels decoded from the planes hold the levels on every instruction set, and their products (and a convolution read in place) have the dequantized matrix's panel-product bits")
    func decodedPanels() throws {
        for isa in Self.instructionSets {
            for (index, item) in Self.cases.enumerated() {
                let (matrix, codes, levels) = try #require(Self.matrix(item, isa: isa, seed: UInt64(700 + index)))
                let w = Self.dequantized(item, codes, levels)
                let packed = PanelKernelTests.packed(w, k: item.k, n: item.n, isa: isa)
                var panel = [Float](repeating: .nan, count: item.k * 32)
                for p in 0..<((item.n + 31) / 32) {
                    matrix.words.withUnsafeBufferPointer { words in
                        matrix.columnLevels.withUnsafeBufferPointer { levels in
                            laq_planes_decode_panel(words.baseAddress!, Int32(matrix.planeCount), matrix.kind, item.k, item.n,
                                                    levels.baseAddress!, p, &panel, isa)
                        }
                    }
                    let width = min(32, item.n - 32 * p)
                    for t in 0..<item.k {
                        // Both in the instruction set's layout (`laq_panel_offset`).
                        let offsets = (0..<32).map { laq_panel_offset(item.k, t, $0, isa) }
                        let decoded = offsets.prefix(width).map { panel[$0] }, expected = offsets.prefix(width).map { packed[p * item.k * 32 + $0] }
                        #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern), "isa \(isa), \(item), panel \(p), row \(t)")
                        let finite = offsets.allSatisfy { panel[$0].isFinite }
                        #expect(finite, "isa \(isa), \(item): finite past n")
                    }
                }
                guard matrix.decodesPanels else { continue }
                for (m, accumulate) in [(1, false), (13, true), (400, false)] {
                    var generator = SplitMix64(seed: UInt64(m + index))
                    let lda = item.k + 2
                    let a = PanelKernelTests.random(m * lda, &generator), start = PanelKernelTests.random(m * item.n, &generator)
                    var c = start
                    a.withUnsafeBufferPointer { a in
                        c.withUnsafeMutableBufferPointer {
                            matrix.multiplyDecodingPanels(a.baseAddress!, lda: lda, m: m, into: $0.baseAddress!, ldc: item.n, accumulate: accumulate)
                        }
                    }
                    let expected = PanelKernelTests.reference(a, lda: lda, w, m: m, k: item.k, n: item.n, c: start, accumulate: accumulate)
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(item), m = \(m), accumulate \(accumulate)")
                }
                // Read in place as a 1×1 convolution over 250 positions (for some cases 1,600: two
                // groups of positions), with a bias: the same chains.
                var generator = SplitMix64(seed: UInt64(index))
                let m = index % 16 == 0 ? 1_600 : 250
                let x = PanelKernelTests.random(m * item.k, &generator), bias = PanelKernelTests.random(item.n, &generator)
                let shape = laq_conv_shape(height: 1, width: m, channels: item.k, out_height: 1, out_width: m, kernel_h: 1, kernel_w: 1,
                                           stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, pad_top: 0, pad_left: 0)
                var convolved = [Float](repeating: .nan, count: m * item.n)
                bias.withUnsafeBufferPointer { bias in
                    let epilogue = laq_epilogue(bias: bias.baseAddress, scale: nil, shift: nil, relu: Int32(LAQ_RELU_NONE), threshold: 0, slope: 0, ceiling: 0)
                    x.withUnsafeBufferPointer { x in
                        convolved.withUnsafeMutableBufferPointer { matrix.convolveDecodingPanels(x.baseAddress!, shape: shape, m: m, epilogue: epilogue, into: $0.baseAddress!) }
                    }
                }
                let expected = PanelKernelTests.reference(x, lda: item.k, w, m: m, k: item.k, n: item.n, c: (0..<m).flatMap { _ in bias }, accumulate: true)
                #expect(convolved.map(\.bitPattern) == expected.map(\.bitPattern), "\(item): a convolution read in place")
            }
        }
    }

    @Test("a float32 product goes to decoded panels where they cost less than the plane sums: with AVX-512 never for one plane, from 12 rows for two, 6 for three, 4 for four; with AVX2 from 8 rows for one plane, 3 for more")
    func panelRule() throws {
        let avx512 = PlaneMatrix.bestISA >= Int32(LAQ_ISA_AVX512)
        let rules: [(Int, [Int: Bool])] = avx512
            ? [(2, [100: false]), (3, [11: false, 12: true]), (8, [5: false, 6: true]), (16, [3: false, 4: true])]
            : [(2, [7: false, 8: true]), (3, [2: false, 3: true]), (8, [2: false, 3: true]), (16, [2: false, 3: true])]
        for (levelCount, rule) in rules {
            let item = Case(k: 8, n: 40, levelCount: levelCount, perColumn: false, zeroLevel: false)
            let (matrix, _, _) = try #require(Self.matrix(item, isa: PlaneMatrix.bestISA, seed: 1))
            for (m, expected) in rule {
                #expect(matrix.prefersPanels(rows: m) == (expected && matrix.decodesPanels), "\(levelCount) levels, \(m) rows")
            }
            if let int8 = Self.matrix(item, isa: PlaneMatrix.bestISA, seed: 1, int8: true)?.0 { #expect(!int8.prefersPanels(rows: 100)) }
        }
    }

    @Test("int8 activations: every instruction set gives the same bits, the exact int32 sums of the quantized row, and stays within the quantization bound")
    func int8Products() throws {
        for (index, item) in Self.cases.enumerated() {
            var results: [[Float]] = []
            for isa in Self.instructionSets {
                let (matrix, codes, levels) = try #require(Self.matrix(item, isa: isa, seed: UInt64(index), int8: true))
                let w = Self.dequantized(item, codes, levels)
                var decoded = [Float](repeating: .nan, count: w.count)
                decoded.withUnsafeMutableBufferPointer { matrix.decodeRows(from: 0, count: item.k, into: $0.baseAddress!) }
                #expect(decoded == w, "isa \(isa), \(item): dot planes decode")
                let m = 3
                var generator = SplitMix64(seed: UInt64(index))
                var a = (0..<(m * item.k)).map { $0 % 3 == 0 ? 0 : Float(Int(generator.next() % 2001) - 1000) / 500 }
                for column in 0..<item.k { a[2 * item.k + column] = 0 }  // an all-zero row
                var c = [Float](repeating: 1, count: m * item.n)
                a.withUnsafeBufferPointer { a in
                    c.withUnsafeMutableBufferPointer { matrix.multiply(a.baseAddress!, lda: item.k, m: m, into: $0.baseAddress!, ldc: item.n, accumulate: true) }
                }
                for row in 0..<m {
                    let x = Array(a[(row * item.k)..<((row + 1) * item.k)])
                    let scale = (x.map(abs).max() ?? 0) / 127
                    let q = x.map { scale == 0 ? 0 : Double(($0 / scale).rounded(.toNearestOrEven)) }
                    for column in 0..<item.n {
                        var quantized = 0.0, exact = 0.0, bound = 0.0
                        for k in 0..<item.k {
                            let weight = Double(w[k * item.n + column])
                            quantized += q[k] * weight
                            exact += Double(x[k]) * weight
                            bound += abs(weight)
                        }
                        let actual = Double(c[row * item.n + column]) - 1
                        // Signed planes have no dot planes: float32 activations.
                        let expected = matrix.int8Activations ? Double(scale) * quantized : exact
                        #expect(abs(actual - expected) <= 1e-5 * (1 + abs(expected)),
                                "isa \(isa), \(item), row \(row), column \(column): \(actual) vs \(expected)")
                        #expect(abs(actual - exact) <= Double(scale) / 2 * bound + 1e-5, "isa \(isa), \(item): beyond the quantization bound")
                    }
                }
                #expect(matrix.int8Activations == (matrix.kind != PlaneMatrix.signedPlanes))
                #expect((matrix.signedPair != nil) == item.symmetric, "\(item): the one-dot kernel for symmetric ternary levels")
                #expect((matrix.codeLevels != nil) == (matrix.kind == PlaneMatrix.bitPlanes), "\(item): the code-sum kernel for bit planes")
                if matrix.int8Activations { results.append(c) }
            }
            #expect(Set(results.map { $0.map(\.bitPattern) }).count <= 1, "\(item): instruction sets differ")
        }
    }

    @Test("int8 activations, many rows: tiles of rows (every size, 1–4 planes, ±α ternary on its one-dot kernel) give the bits of one row at a time")
    func int8Rows() throws {
        for (index, levelCount) in [2, 3, 3, 4, 8, 16].enumerated() {
            // The second ternary has ±α levels: the signed-pair combination.
            let item = Case(k: 37, n: 130, levelCount: levelCount, perColumn: index % 2 == 0, zeroLevel: levelCount == 3, symmetric: index == 2)
            for isa in Self.instructionSets {
                let (matrix, _, _) = try #require(Self.matrix(item, isa: isa, seed: UInt64(40 + index), int8: true))
                #expect((matrix.signedPair != nil) == item.symmetric)
                // Tiles of every size up to 24 rows (then 30, and 60: ≥ 48, split by rows).
                for m in Array(6...25) + [30, 60] {
                    var generator = SplitMix64(seed: UInt64(index))
                    var a = (0..<(m * item.k)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 300 }
                    a[5 * item.k + 3] = .nan  // row 5 gives NaN outputs
                    let together = Self.product(matrix, a, item, m: m, initial: 0.5, accumulate: true)
                    let alone = Self.product(matrix, a, item, m: m, initial: 0.5, accumulate: true, oneRowAtATime: true)
                    #expect(together.map(\.bitPattern) == alone.map(\.bitPattern), "\(levelCount) levels, isa \(isa), m = \(m)")
                    let nanRow = together[(5 * item.n)..<(6 * item.n)].allSatisfy { $0.isNaN }
                    #expect(nanRow, "\(levelCount) levels, isa \(isa), m = \(m): the row holding a NaN")
                }
            }
        }
    }

    @Test("int8 activations, long rows at full scale: sums far past int16 (every column of a code, q = ±127) have the same bits on every instruction set and the exact value",
          arguments: [1030, 2102])
    func int8LongRows(k: Int) throws {
        // K = 1030: 258 groups of 4 rows, past the AVX2 kernels' int16 runs (129 groups for
        // plane bits, 64 for ternary pairs and for one row's tables, 8 for 4-bit codes), and not
        // a multiple of 4; K = 2102: 526 groups, more tables than one row keeps on its stack.
        let kinds: [(levels: Int, zero: Bool, symmetric: Bool)] = [(2, false, false), (3, true, false), (3, true, true), (3, false, false),
                                                                    (8, false, false), (16, false, false)]
        for (index, kind) in kinds.enumerated() {
            let item = Case(k: k, n: 70, levelCount: kind.levels, perColumn: true, zeroLevel: kind.zero, symmetric: kind.symmetric)
            let m = 13
            var generator = SplitMix64(seed: UInt64(90 + index))
            var a = (0..<(m * item.k)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 300 }
            for k in 0..<item.k { a[k] = 1; a[item.k + k] = -1; a[2 * item.k + k] = k % 2 == 0 ? 2 : -2 }  // q = 127, −127, ±127
            var results: [[UInt32]] = []
            for isa in Self.instructionSets {
                // Two of every three columns hold one code throughout (each code in turn), the rest random.
                let (matrix, codes, levels) = try #require(Self.matrix(item, isa: isa, seed: UInt64(90 + index), int8: true) { _, n, random in
                    n % 3 == 2 ? random : UInt8((n / 3) % kind.levels)
                })
                #expect(matrix.int8Activations && (matrix.signedPair != nil) == kind.symmetric)
                let w = Self.dequantized(item, codes, levels)
                let c = Self.product(matrix, a, item, m: m)
                for row in 0..<m {
                    let x = Array(a[(row * item.k)..<((row + 1) * item.k)])
                    let scale = x.map(abs).max()! / 127
                    let q = x.map { Double(($0 / scale).rounded(.toNearestOrEven)) }
                    // The combinations' terms reach scale·Σ|q|·max|level| and cancel (affine codes).
                    let magnitude = Double(scale) * q.map(abs).reduce(0, +)
                    for column in 0..<item.n {
                        var sum = 0.0
                        for k in 0..<item.k { sum += q[k] * Double(w[k * item.n + column]) }
                        let largest = (0..<kind.levels).map { Double(abs(levels[column * kind.levels + $0])) }.max()!
                        let expected = Double(scale) * sum, actual = Double(c[row * item.n + column])
                        #expect(abs(actual - expected) <= 1e-5 * (1 + magnitude * largest), "isa \(isa), \(kind), row \(row), column \(column): \(actual) vs \(expected)")
                    }
                }
                // One row at a time gives the tiles' bits.
                let alone = Self.product(matrix, a, item, m: m, oneRowAtATime: true)
                #expect(alone.map(\.bitPattern) == c.map(\.bitPattern), "isa \(isa), \(kind): one row at a time")
                results.append(c.map(\.bitPattern))
            }
            #expect(Set(results).count == 1, "\(kind): instruction sets differ")
        }
    }

    @Test("int8 activations with an epilogue (bias, normalization and ReLU(6), a residual in either order and written over itself, ReLU after it): the bits of the product and then the passes, on every instruction set, for one row, tiles split by column blocks and by rows, and long rows",
          arguments: [(37, 30), (37, 60), (37, 1), (2102, 1), (2102, 13)])
    func int8Epilogue(k: Int, m: Int) throws {
        for (index, (levelCount, symmetric)) in [(3, false), (3, true), (8, false)].enumerated() {
            let item = Case(k: k, n: 70, levelCount: levelCount, perColumn: true, zeroLevel: levelCount == 3, symmetric: symmetric)
            var generator = SplitMix64(seed: UInt64(70 + index))
            let a = (0..<(m * item.k)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 300 }
            let bias = (0..<item.n).map { _ in Float(Int(generator.next() % 2001) - 1000) / 500 }
            let scale = (0..<item.n).map { _ in Float(Int(generator.next() % 2001) - 1000) / 400 }
            let shift = (0..<item.n).map { _ in Float(Int(generator.next() % 2001) - 1000) / 300 }
            let residual = (0..<(m * item.n)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 200 }
            for isa in Self.instructionSets {
                let (matrix, _, _) = try #require(Self.matrix(item, isa: isa, seed: UInt64(70 + index), int8: true))
                let product = Self.product(matrix, a, item, m: m)
                for (first, inPlace) in [(true, false), (false, false), (false, true)] {
                    // The passes, as the layers run one by one.
                    let expected = product.indices.map { i -> Float in
                        let j = i % item.n
                        var v = product[i] + bias[j]
                        v = v * scale[j] + shift[j]
                        v = v >= 0 ? v : 0 * v
                        v = v > 6 ? 6 : v
                        let sum = first ? residual[i] + v : v + residual[i]
                        return 0 >= sum ? 0 : sum
                    }
                    var c = inPlace ? residual : [Float](repeating: .nan, count: m * item.n)
                    bias.withUnsafeBufferPointer { bias in
                        scale.withUnsafeBufferPointer { scale in
                            shift.withUnsafeBufferPointer { shift in
                                residual.withUnsafeBufferPointer { other in
                                    c.withUnsafeMutableBufferPointer { c in
                                        let epilogue = laq_epilogue(bias: bias.baseAddress, scale: scale.baseAddress, shift: shift.baseAddress,
                                                                    relu: Int32(LAQ_RELU_KERAS), threshold: 0, slope: 0, ceiling: 6,
                                                                    residual: inPlace ? UnsafePointer(c.baseAddress) : other.baseAddress,
                                                                    residual_first: first ? 1 : 0, after_relu: Int32(LAQ_RELU_MAX0),
                                                                    after_threshold: 0, after_slope: 0, after_ceiling: .infinity)
                                        a.withUnsafeBufferPointer { a in
                                            matrix.multiplyInt8(a.baseAddress!, lda: item.k, m: m, epilogue: epilogue, into: c.baseAddress!, ldc: item.n)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(levelCount) levels, symmetric \(symmetric), isa \(isa), first \(first), in place \(inPlace)")
                }
            }
        }
    }

    @Test("int8 activations only where the int32 sums cannot overflow: K below 2³¹/(15·127) for bit planes, 2³¹/254 for one-hot")
    func int8Bound() throws {
        for (levelCount, limit) in [(16, Int(Int32.max) / (15 * 127) / 4 * 4), (3, Int(Int32.max) / 254 / 4 * 4)] {
            for (k, expected) in [(limit, true), (limit + 4, false)] {
                let matrix = try #require(PlaneMatrix(rows: k, columns: 1, levelCount: levelCount, levels: (0..<levelCount).map { Float($0) - 1 },
                                                      perColumn: false, int8Activations: true) { _, count, output in
                    output.update(repeating: 1, count: count)
                    return true
                })
                #expect(matrix.int8Activations == expected, "\(levelCount) levels, K = \(k)")
            }
        }
    }

    @Test("int8 activations: a row with a NaN gives NaN outputs, not a number")
    func int8NaN() throws {
        let item = Case(k: 9, n: 5, levelCount: 3, perColumn: false, zeroLevel: true)
        let (matrix, _, _) = try #require(Self.matrix(item, isa: PlaneMatrix.bestISA, seed: 1, int8: true))
        var a = [Float](repeating: 1, count: 9)
        a[4] = .nan
        var c = [Float](repeating: 0, count: 5)
        a.withUnsafeBufferPointer { a in c.withUnsafeMutableBufferPointer { matrix.multiply(a.baseAddress!, lda: 9, m: 1, into: $0.baseAddress!, ldc: 5, accumulate: false) } }
        #expect(c.allSatisfy { $0.isNaN })
    }

    @Test("the kinds of planes: ⌈log₂ L⌉ bit planes for affine levels, a sign and M magnitude planes for logarithmic ones, none for other tables")
    func planeKinds() throws {
        let linear = try #require(Self.matrix(Case(k: 9, n: 70, levelCount: 7, perColumn: true, zeroLevel: false), isa: PlaneMatrix.bestISA, seed: 3)).0
        #expect(linear.planeCount == 3 && linear.kind == PlaneMatrix.bitPlanes)
        #expect(linear.words.count == 2 * 9 * 3, "two blocks × 9 rows × 3 planes")
        let log = try #require(Self.matrix(Case(k: 9, n: 70, levelCount: 7, perColumn: true, zeroLevel: false, log: true), isa: PlaneMatrix.bestISA, seed: 3)).0
        #expect(log.planeCount == 4 && log.kind == PlaneMatrix.signedPlanes, "a sign plane and 3 magnitudes")
        // int8 activations have no signed dot planes: such a matrix keeps float32 planes.
        let logInt8 = try #require(Self.matrix(Case(k: 9, n: 70, levelCount: 7, perColumn: true, zeroLevel: false, log: true), isa: PlaneMatrix.bestISA, seed: 3, int8: true)).0
        #expect(!logInt8.int8Activations)
        func planes(_ levels: [Float]) -> PlaneMatrix? {
            PlaneMatrix(rows: 2, columns: 2, levelCount: levels.count, levels: levels, perColumn: false) { _, count, output in
                for index in 0..<(count * 2) { output[index] = UInt8(index % levels.count) }
                return true
            }
        }
        #expect(planes([-1, -0.3, 0, 0.2, 1, 2, 5]) == nil, "neither affine nor signed")
        #expect(planes([-8, -4, -2, -1, 0, 1, 2, 4, 8]) == nil, "4 magnitudes: 5 planes, more than 4")
    }

    @Test("a code out of range is refused, not laid into the planes")
    func codeOutOfRange() {
        let matrix = PlaneMatrix(rows: 2, columns: 3, levelCount: 3, levels: [-1, 0, 1], perColumn: false) { _, count, output in
            for index in 0..<(count * 3) { output[index] = index == 4 ? 3 : 1 }
            return true
        }
        #expect(matrix == nil)
    }

    @Test("the instruction set is detected from CPUID: the level Linux's CPU flags name")
    func detection() throws {
        let best = laq_kernels_best_isa()
        #expect((0...4).contains(best))
        #expect(PlaneMatrix.bestISA == best)
        // /proc/cpuinfo lists the features both the CPU and the kernel support.
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(line.split(separator: " ").map(String.init))
        let has = { (names: [String]) in names.allSatisfy(flags.contains) }
        let expected: Int32 = has(["avx512f", "avx512bw", "avx512_vnni", "avx512vbmi", "gfni", "fma"]) ? 4
            : has(["avx512f", "avx512bw", "avx512_vnni", "fma"]) ? 3 : has(["avx512f", "fma"]) ? 2 : has(["avx2", "fma"]) ? 1 : 0
        #expect(best == expected, "flags: \(flags.filter { $0.hasPrefix("avx") || $0 == "gfni" || $0 == "fma" }.sorted())")
    }

    @Test("int8 quantization of a row: round(x/s) to nearest even, clamped, s = max|x|/127, on every instruction set")
    func int8Quantize() {
        var random = SplitMix64(seed: 9)
        var rows: [[Float]] = [[127, 0.5, 1.5, 2.5, -0.5, -2.5, -0, 3.5], [0, -0, 0], [-1e-30, 2e-30]]
        for count in [1, 15, 16, 17, 64, 100, 1000] { rows.append((0..<count).map { _ in random.uniform() * 6 - 3 }) }
        for x in rows {
            let groups = (x.count + 3) / 4
            // The definition, in Swift.
            let largest = x.map(abs).max() ?? 0
            let s = largest / 127
            let expected: [Int8] = largest == 0 ? [Int8](repeating: 0, count: 4 * groups)
                : x.map { Int8(max(-127, min(127, ($0 / s).rounded(.toNearestOrEven)))) } + [Int8](repeating: 0, count: 4 * groups - x.count)
            for isa in Self.instructionSets {
                var q = [Int8](repeating: 99, count: 4 * groups)
                var (scale, total): (Float, Int32) = (-1, -1)
                #expect(laq_int8_quantize(x, x.count, groups, &q, &scale, &total, isa) == 1)
                #expect(q == expected, "isa \(isa), \(x.count) values")
                #expect(scale.bitPattern == (largest == 0 ? 0 : s).bitPattern && total == expected.reduce(0) { $0 + Int32($1) }, "isa \(isa)")
            }
        }
        // A NaN or an infinity anywhere (also past the first 16 values): refused, q untouched.
        for bad in [Float.nan, .infinity, -.infinity] {
            for position in [0, 5, 16, 20] {
                var x = [Float](repeating: 1, count: 21)
                x[position] = bad
                for isa in Self.instructionSets {
                    var q = [Int8](repeating: 99, count: 24)
                    var (scale, total): (Float, Int32) = (-1, -1)
                    #expect(laq_int8_quantize(x, 21, 6, &q, &scale, &total, isa) == 0)
                    #expect(q.allSatisfy { $0 == 99 } && scale == -1 && total == -1, "isa \(isa), \(bad) at \(position)")
                }
            }
        }
    }
}
