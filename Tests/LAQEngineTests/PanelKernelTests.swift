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

    /// W (k×n, row-major) in panels laid out for `isa` (`laq_panel_offset`).
    static func packed(_ w: [Float], k: Int, n: Int, isa: Int32) -> [Float] {
        var panels = [Float](repeating: .nan, count: laq_panels_length(k, n))
        laq_panels_pack(w, k, n, &panels, isa)
        return panels
    }

    static func random(_ count: Int, _ generator: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 997 }
    }

    @Test("packing puts W[t][32p + j] at panel p's laq_panel_offset(t, j), zeros past N, on every instruction set")
    func packing() {
        for (k, n) in [(1, 1), (3, 16), (2, 17), (5, 32), (4, 40), (3, 70)] {
            var generator = SplitMix64(seed: UInt64(k * 100 + n))
            let w = Self.random(k * n, &generator)
            for isa in Int32(0)...max(CPU.isa, Int32(LAQ_ISA_AVX512)) {
                let panels = Self.packed(w, k: k, n: n, isa: isa)
                var expected = [Float](repeating: .nan, count: panels.count)
                for p in 0..<((n + 31) / 32) {
                    for t in 0..<k {
                        for j in 0..<32 { expected[p * k * 32 + laq_panel_offset(k, t, j, isa)] = 32 * p + j < n ? w[t * n + 32 * p + j] : 0 }
                    }
                }
                #expect(panels.map(\.bitPattern) == expected.map(\.bitPattern), "\(k)×\(n), isa \(isa)")
            }
        }
        // AVX-512 rows of 32; otherwise halves of 16 one after the other.
        #expect(laq_panel_offset(5, 2, 17, Int32(LAQ_ISA_AVX512)) == 2 * 32 + 17)
        #expect(laq_panel_offset(5, 2, 17, Int32(LAQ_ISA_AVX2)) == 5 * 16 + 2 * 16 + 1)
        #expect(laq_panel_offset(5, 2, 3, 0) == 2 * 16 + 3)
    }

    @Test("tiles cover the positions once, at most 12 each, near-equal within a row (kernels of several taps, rows of 8 or more) or within an image")
    func tiles() {
        func shape(_ hw: Int, kernel: Int) -> laq_conv_shape {
            laq_conv_shape(height: hw, width: hw, channels: 4, out_height: hw, out_width: hw, kernel_h: kernel, kernel_w: kernel, stride_h: 1,
                           stride_w: 1, dilation_h: 1, dilation_w: 1, pad_top: kernel / 2, pad_left: kernel / 2)
        }
        for isa in Int32(0)...max(CPU.isa, Int32(LAQ_ISA_AVX512)) {
            for (hw, kernel) in [(7, 1), (7, 3), (14, 1), (14, 3), (56, 1), (28, 3), (3, 3)] {
                var s = shape(hw, kernel: kernel)
                let perImage = hw * hw, m = 3 * perImage
                let count = laq_panels_tile_count(&s, m, isa)
                let starts = (0...count).map { laq_panels_tile_start(&s, m, $0, isa) }
                #expect(starts.first == 0 && starts.last == m, "\(hw)², \(kernel)×\(kernel), isa \(isa)")
                let lengths = zip(starts, starts.dropFirst()).map { $1 - $0 }
                #expect(lengths.allSatisfy { 1...12 ~= $0 }, "\(hw)², \(kernel)×\(kernel), isa \(isa): \(lengths)")
                // No tile crosses an image; along rows, none crosses a row.
                let span = kernel > 1 && hw >= 8 ? hw : perImage
                #expect(zip(starts, starts.dropFirst()).allSatisfy { ($0 / span) == ($1 - 1) / span }, "\(hw)², \(kernel)×\(kernel), isa \(isa)")
            }
            // 49 positions an image: five tiles of 9 or 10, not four of 12 and one of 1.
            var s = shape(7, kernel: 1)
            #expect((0...5).map { laq_panels_tile_start(&s, 49, $0, isa) } == [0, 9, 19, 29, 39, 49])
        }
    }

    @Test("the kernel equals the fused-multiply-add chains on every instruction set, in any split of rows and panels")
    func kernelBits() {
        for (m, k, n) in [(1, 1, 1), (13, 9, 17), (25, 27, 32), (12, 5, 33), (47, 64, 70), (3, 200, 16), (30, 11, 96), (26, 19, 24), (36, 40, 56), (24, 7, 16)] {
            var generator = SplitMix64(seed: UInt64(m * 1000 + k * 10 + n))
            let lda = k + 3
            let a = Self.random(m * lda, &generator), w = Self.random(k * n, &generator), c0 = Self.random(m * n, &generator)
            for accumulate in [false, true] {
                let expected = Self.reference(a, lda: lda, w, m: m, k: k, n: n, c: c0, accumulate: accumulate)
                for isa in Int32(0)...CPU.isa {
                    let panels = Self.packed(w, k: k, n: n, isa: isa)
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

    /// A convolution's geometry for the direct kernel.
    struct ConvolutionCase {
        var batch = 1, height: Int, width: Int, channels: Int, filters: Int
        var kernel: (Int, Int), stride = (1, 1), dilation = (1, 1), pad = (0, 0)
        var output: (Int, Int) {
            ((height + 2 * pad.0 - (kernel.0 - 1) * dilation.0 - 1) / stride.0 + 1, (width + 2 * pad.1 - (kernel.1 - 1) * dilation.1 - 1) / stride.1 + 1)
        }
        var shape: laq_conv_shape {
            laq_conv_shape(height: height, width: width, channels: channels, out_height: output.0, out_width: output.1,
                           kernel_h: kernel.0, kernel_w: kernel.1, stride_h: stride.0, stride_w: stride.1,
                           dilation_h: dilation.0, dilation_w: dilation.1, pad_top: pad.0, pad_left: pad.1)
        }
        /// im2col: one row per output position, taps in (row, column) order, zeros outside.
        func columns(_ x: [Float]) -> [Float] {
            var out: [Float] = []
            for n in 0..<batch {
                for oh in 0..<output.0 {
                    for ow in 0..<output.1 {
                        for th in 0..<kernel.0 {
                            for tw in 0..<kernel.1 {
                                let ih = oh * stride.0 + th * dilation.0 - pad.0, iw = ow * stride.1 + tw * dilation.1 - pad.1
                                let inside = ih >= 0 && ih < height && iw >= 0 && iw < width
                                for c in 0..<channels { out.append(inside ? x[((n * height + ih) * width + iw) * channels + c] : 0) }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    @Test("a convolution read in place equals im2col, the panel product and the epilogue's passes (bias, affine map, ReLU, a residual Add and its ReLU) bit for bit, on every instruction set and split")
    func convolutionBits() throws {
        let cases = [
            ConvolutionCase(height: 7, width: 9, channels: 3, filters: 32, kernel: (3, 3), stride: (2, 2), pad: (1, 1)),
            ConvolutionCase(batch: 2, height: 6, width: 5, channels: 16, filters: 45, kernel: (1, 1)),
            ConvolutionCase(height: 8, width: 8, channels: 17, filters: 70, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(batch: 2, height: 9, width: 11, channels: 5, filters: 33, kernel: (3, 2), stride: (1, 2), dilation: (2, 1), pad: (2, 0)),
            ConvolutionCase(height: 5, width: 13, channels: 8, filters: 64, kernel: (5, 5), pad: (2, 3)),
            ConvolutionCase(height: 1, width: 30, channels: 12, filters: 40, kernel: (1, 3), stride: (1, 3)),
            // Rows of several tiles: tiles inside the input, tiles with taps in the padding, tiles across two rows.
            ConvolutionCase(height: 5, width: 41, channels: 3, filters: 32, kernel: (3, 3), stride: (2, 2), pad: (1, 1)),
            ConvolutionCase(height: 3, width: 50, channels: 4, filters: 33, kernel: (3, 3), pad: (1, 1)),
            // Narrow last panels in whole tiles: 24 columns (16 + 8 in 256-bit registers), 32 + 24.
            ConvolutionCase(height: 6, width: 30, channels: 5, filters: 24, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(batch: 2, height: 5, width: 14, channels: 9, filters: 56, kernel: (1, 1)),
            // Tiles along output rows, padding taps skipped: rows of 8 (one tile), 14 (7 + 7), 13 (6 + 7);
            // a 7×7 kernel at stride 2 whose first column is outside at two positions (multiplied as zeros).
            ConvolutionCase(batch: 2, height: 7, width: 8, channels: 20, filters: 40, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(height: 14, width: 14, channels: 6, filters: 36, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(height: 4, width: 13, channels: 7, filters: 20, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(height: 20, width: 23, channels: 3, filters: 64, kernel: (7, 7), stride: (2, 2), pad: (3, 3)),
            // Rows of 5 and 7: tiles across rows, padding taps multiplied as zeros.
            ConvolutionCase(batch: 3, height: 4, width: 5, channels: 10, filters: 48, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(batch: 2, height: 7, width: 7, channels: 20, filters: 40, kernel: (3, 3), pad: (1, 1)),
            // 1×1 kernels of 1,024 channels through 8 panels or more: each tile's rows copied apart.
            ConvolutionCase(height: 2, width: 7, channels: 1024, filters: 520, kernel: (1, 1)),
            ConvolutionCase(height: 3, width: 9, channels: 1024, filters: 530, kernel: (1, 1), stride: (2, 2)),
            ConvolutionCase(batch: 2, height: 5, width: 7, channels: 512, filters: 520, kernel: (1, 1), stride: (2, 2)),
            // Kernel rows as one tap in tiles inside the input horizontally: a stem (7×7 at stride 2,
            // 3 channels; rows of 32, middle tiles inside) and kernel rows dilated vertically.
            ConvolutionCase(height: 9, width: 64, channels: 3, filters: 40, kernel: (7, 7), stride: (2, 2), pad: (3, 3)),
            ConvolutionCase(batch: 2, height: 7, width: 40, channels: 5, filters: 33, kernel: (3, 3), dilation: (2, 1), pad: (2, 1)),
        ]
        let relus: [Elementwise.FollowingReLU] = [.none, .max0, .relu(threshold: 0.1, slope: 0.2, ceiling: 0.75), .relu(threshold: 0, slope: 0, ceiling: 6), .relu(threshold: -0.0, slope: 0.5, ceiling: 1)]
        for (index, item) in cases.enumerated() {
            var generator = SplitMix64(seed: UInt64(index + 40))
            // Every seventh input −0, every eleventh large (ReLU ceilings reached).
            let x = Self.random(item.batch * item.height * item.width * item.channels, &generator).enumerated()
                .map { $0.offset % 7 == 3 ? -0.0 : $0.offset % 11 == 5 ? $0.element * 50 : $0.element }
            let k = item.kernel.0 * item.kernel.1 * item.channels, n = item.filters
            let w = Self.random(k * n, &generator), bias = Self.random(n, &generator)
            let scale = Self.random(n, &generator), shift = Self.random(n, &generator)
            let m0 = item.batch * item.output.0 * item.output.1
            let other = Self.random(m0 * n, &generator).enumerated().map { $0.offset % 5 == 1 ? -0.0 : $0.offset % 13 == 2 ? $0.element * 40 : $0.element }
            let m = item.batch * item.output.0 * item.output.1
            let columns = item.columns(x)
            for (variant, relu) in relus.enumerated() {
                let withBias = variant != 1, normalized = variant != 0 || index % 2 == 0
                var expected = Self.reference(columns, lda: k, w, m: m, k: k, n: n,
                                              c: withBias ? (0..<m).flatMap { _ in bias } : [Float](repeating: 0, count: m * n), accumulate: withBias)
                if normalized { Elementwise.scaleShift(&expected, scale: scale, shift: shift, then: relu) }
                // Then a residual connection's Add (the other input first or second) and the
                // ReLU after it, as the Add and activation ops compute them.
                let residual: FusedResidual? = variant < 2 ? nil
                    : FusedResidual(first: variant % 2 == 0, activation: [.function(.relu), .relu(maxValue: 6, slope: 0, threshold: 0), nil][variant - 2],
                                    add: "add")
                if let residual {
                    var sum = try MergeOp(name: "add", kind: .add).forward(residual.first ? [Tensor(shape: [m, n], data: other), Tensor(shape: [m, n], data: expected)]
                                                                                         : [Tensor(shape: [m, n], data: expected), Tensor(shape: [m, n], data: other)])
                    if let activation = residual.activation { ActivationOp(kind: activation).apply(&sum) }
                    expected = sum.data
                }
                let parameters = relu.parameters, after = (residual?.relu ?? .none).parameters
                for isa in Int32(0)...CPU.isa {
                    let panels = Self.packed(w, k: k, n: n, isa: isa)
                    var c = [Float](repeating: .nan, count: m * n)
                    bias.withUnsafeBufferPointer { bias in
                        scale.withUnsafeBufferPointer { scale in
                            shift.withUnsafeBufferPointer { shift in
                              other.withUnsafeBufferPointer { other in
                                var epilogue = laq_epilogue(bias: withBias ? bias.baseAddress : nil, scale: normalized ? scale.baseAddress : nil,
                                                            shift: shift.baseAddress, relu: parameters.mode, threshold: parameters.threshold,
                                                            slope: parameters.slope, ceiling: parameters.ceiling,
                                                            residual: residual == nil ? nil : other.baseAddress, residual_first: residual?.first == true ? 1 : 0,
                                                            after_relu: after.mode, after_threshold: after.threshold, after_slope: after.slope,
                                                            after_ceiling: after.ceiling)
                                var shape = item.shape
                                let zeros = [Float](repeating: 0, count: item.channels)
                                let taps = item.kernel.0 * item.kernel.1
                                var sources = [UnsafePointer<Float>?](repeating: nil, count: taps * 12)
                                var steps = [Int](repeating: 0, count: 2 * taps)
                                var rowsCopy = [Float](repeating: .nan, count: max(1, laq_panels_rows_copy_length(&shape)))
                                // Rows in two uneven parts (across a tile), the panels in two groups;
                                // padding taps skipped or multiplied.
                                let (split, panelCount) = (m / 3, (n + 31) / 32)
                                for (begin, end) in [(0, split), (split, m)] {
                                    for (first, last) in [(0, panelCount / 2), (panelCount / 2, panelCount)] {
                                        panels.withUnsafeBufferPointer { panels in
                                            laq_panels_convolve(x, &shape, zeros, panels.baseAddress! + first * k * 32, n, &epilogue, &c, begin, end,
                                                                first, last, &sources, &steps, &rowsCopy, Int32(begin == 0 ? 1 : variant % 2), isa)
                                        }
                                    }
                                }
                              }
                            }
                        }
                    }
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "case \(index), \(relu), bias \(withBias), residual \(variant >= 2), isa \(isa)")
                }
            }
        }
    }

    /// The chains of a convolution with the padding taps `laq_panels_convolve` skips left out
    /// (`skips`): where tiles run along output rows (more than one tap, rows of 8 or more), a tap
    /// whose input row is outside, or whose column is outside at this position and at no more
    /// than one position at either end of a row; other padding taps multiply zeros.
    static func skippingReference(_ item: ConvolutionCase, _ x: [Float], _ w: [Float], skips: Bool) -> [Float] {
        let (oh0, ow0) = item.output, n = item.filters
        let aligned = item.kernel.0 * item.kernel.1 > 1 && ow0 >= 8
        func column(_ ow: Int, _ tw: Int) -> Int { ow * item.stride.1 + tw * item.dilation.1 - item.pad.1 }
        // Positions of a row outside at its start and at its end, per kernel column.
        let first = (0..<item.kernel.1).map { tw in (0..<ow0).filter { column($0, tw) < 0 }.count }
        let last = (0..<item.kernel.1).map { tw in (0..<ow0).filter { column($0, tw) >= item.width }.count }
        var out = [Float](repeating: 0, count: item.batch * oh0 * ow0 * n)
        for b in 0..<item.batch {
            for oh in 0..<oh0 {
                for ow in 0..<ow0 {
                    for j in 0..<n {
                        var sum: Float = 0
                        for th in 0..<item.kernel.0 {
                            for tw in 0..<item.kernel.1 {
                                let ih = oh * item.stride.0 + th * item.dilation.0 - item.pad.0, iw = column(ow, tw)
                                let rowInside = ih >= 0 && ih < item.height, inside = rowInside && iw >= 0 && iw < item.width
                                if !inside && skips && aligned && (!rowInside || (first[tw] <= 1 && last[tw] <= 1)) { continue }
                                for c in 0..<item.channels {
                                    let value = inside ? x[((b * item.height + ih) * item.width + iw) * item.channels + c] : 0
                                    sum = sum.addingProduct(value, w[((th * item.kernel.1 + tw) * item.channels + c) * n + j])
                                }
                            }
                        }
                        out[((b * oh0 + oh) * ow0 + ow) * n + j] = sum
                    }
                }
            }
        }
        return out
    }

    @Test("a convolution skips the padding taps the kernel's comment names, and only where its weights are finite (an infinite weight shows which: ∞·0 is NaN)")
    func paddingTaps() throws {
        defer { Parallel.configure(threads: nil) }
        let cases = [
            ConvolutionCase(batch: 2, height: 7, width: 7, channels: 5, filters: 40, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(batch: 2, height: 6, width: 8, channels: 5, filters: 40, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(height: 14, width: 14, channels: 3, filters: 20, kernel: (3, 3), pad: (1, 1)),
            ConvolutionCase(height: 20, width: 23, channels: 3, filters: 33, kernel: (7, 7), stride: (2, 2), pad: (3, 3)),
            ConvolutionCase(height: 5, width: 13, channels: 4, filters: 24, kernel: (5, 5), pad: (2, 3)),
            ConvolutionCase(batch: 2, height: 9, width: 11, channels: 5, filters: 33, kernel: (3, 2), stride: (1, 2), dilation: (2, 1), pad: (2, 0)),
            ConvolutionCase(batch: 3, height: 4, width: 5, channels: 4, filters: 48, kernel: (3, 3), pad: (1, 1)),
        ]
        // NaN where a zero met an infinite weight, whatever its payload.
        func bits(_ values: [Float]) -> [UInt32] { values.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern } }
        for (index, item) in cases.enumerated() {
            var generator = SplitMix64(seed: UInt64(index + 90))
            let x = Self.random(item.batch * item.height * item.width * item.channels, &generator)
            let k = item.kernel.0 * item.kernel.1 * item.channels, n = item.filters, m = item.batch * item.output.0 * item.output.1
            // Column j's weight of tap j % taps is infinite: each tap reveals where it was skipped.
            let taps = item.kernel.0 * item.kernel.1
            var w = Self.random(k * n, &generator)
            for j in 0..<n { w[(j % taps * item.channels) * n + j] = .infinity }
            var shape = item.shape
            let tiles = FloatPanels.tiles(shape, m: m)
            let epilogue = laq_epilogue(bias: nil, scale: nil, shift: nil, relu: Int32(LAQ_RELU_NONE), threshold: 0, slope: 0, ceiling: 0)
            for skips in [true, false] {
                let expected = Self.skippingReference(item, x, w, skips: skips)
                #expect(skips || expected.map(\.isNaN) == Self.reference(item.columns(x), lda: k, w, m: m, k: k, n: n, c: [Float](repeating: 0, count: m * n),
                                                                       accumulate: false).map(\.isNaN))
                for isa in Int32(0)...CPU.isa {
                    let panels = Self.packed(w, k: k, n: n, isa: isa)
                    // Whole tiles one by one, and rows in two uneven parts.
                    for splits in [(0...tiles.count).map { tiles.start($0) }, [0, m / 3, m]] {
                        var c = [Float](repeating: 1, count: m * n)
                        var sources = [UnsafePointer<Float>?](repeating: nil, count: taps * 12)
                        var steps = [Int](repeating: 0, count: 2 * taps)
                        let zeros = [Float](repeating: 0, count: item.channels)
                        var tileEpilogue = epilogue
                        for (begin, end) in zip(splits, splits.dropFirst()) {
                            laq_panels_convolve(x, &shape, zeros, panels, n, &tileEpilogue, &c, begin, end, 0, (n + 31) / 32, &sources, &steps, nil,
                                                skips ? 1 : 0, isa)
                        }
                        #expect(bits(c) == bits(expected), "case \(index), skips \(skips), isa \(isa), \(splits.count - 1) parts")
                    }
                }
            }
            // FloatPanels skips nothing for this kernel (an infinite weight), on any number of threads.
            guard let matrix = FloatPanels(w, rows: k, columns: n) else { continue }  // no AVX2: no panels
            #expect(!matrix.finite)
            let expected = Self.skippingReference(item, x, w, skips: false)
            for threads in [1, 3] {
                Parallel.configure(threads: threads, environment: [:])
                var c = [Float](repeating: 1, count: m * n)
                c.withUnsafeMutableBufferPointer { c in matrix.convolve(x, shape: item.shape, m: m, epilogue: epilogue, into: c.baseAddress!) }
                #expect(bits(c) == bits(expected), "case \(index), FloatPanels, \(threads) threads")
            }
        }
    }

    @Test("FloatPanels gives the same bits on 1, 2, 3 and 8 threads, and the bias is added after the sum")
    func threads() throws {
        guard FloatPanels([1], rows: 1, columns: 1, anyShape: true) != nil else { return }  // no AVX2: OpenBLAS multiplies
        defer { Parallel.configure(threads: nil) }
        var generator = SplitMix64(seed: 3)
        let (m, k, n) = (1000, 147, 90)
        let a = Self.random(m * k, &generator), w = Self.random(k * n, &generator), bias = Self.random(n, &generator)
        let panels = try #require(FloatPanels(w, rows: k, columns: n))
        // Every width takes panels (a narrow last panel computes its own columns only); K ≤ 16
        // with N ≤ 64 is left to the short-inner kernel with AVX-512 (a function of the shape and the CPU).
        for (columns, expected) in [(16, true), (24, true), (28, true), (32, true), (40, true), (48, true), (60, true), (144, true)] {
            #expect((FloatPanels([Float](repeating: 1, count: 20 * columns), rows: 20, columns: columns) != nil) == expected, "\(columns) columns")
        }
        // With AVX-512 its short-inner kernel; without, that kernel is scalar and the panels take it.
        #expect((FloatPanels([Float](repeating: 1, count: 9 * 32), rows: 9, columns: 32) == nil) == (CPU.isa >= Int32(LAQ_ISA_AVX512)))
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

    @Test("FloatPanels.convolve equals im2col and the panel product on 1, 2, 3 and 8 threads, in tasks of row blocks or of panels by tiles")
    func convolveThreads() throws {
        guard FloatPanels([1], rows: 1, columns: 1, anyShape: true) != nil else { return }
        defer { Parallel.configure(threads: nil) }
        // 49, 196 and 147 positions: panels by tiles (too few blocks of tiles for the threads); 1,600
        // (160 tiles along rows): blocks on up to 4 threads (20 blocks, 21 on 3), panels by tiles on 8.
        for (index, item) in [ConvolutionCase(height: 7, width: 7, channels: 40, filters: 200, kernel: (1, 1)),
                              ConvolutionCase(height: 14, width: 14, channels: 24, filters: 100, kernel: (3, 3), pad: (1, 1)),
                              ConvolutionCase(batch: 4, height: 20, width: 20, channels: 8, filters: 70, kernel: (3, 3), pad: (1, 1)),
                              ConvolutionCase(batch: 3, height: 7, width: 7, channels: 16, filters: 100, kernel: (3, 3), pad: (1, 1)),
                              // 294 positions: row blocks on one thread (each tile's 1,024-channel rows copied), panels by tiles on more.
                              ConvolutionCase(batch: 6, height: 7, width: 7, channels: 1024, filters: 260, kernel: (1, 1))].enumerated() {
            var generator = SplitMix64(seed: UInt64(index + 60))
            let x = Self.random(item.batch * item.height * item.width * item.channels, &generator)
            let k = item.kernel.0 * item.kernel.1 * item.channels, n = item.filters, m = item.batch * item.output.0 * item.output.1
            let w = Self.random(k * n, &generator)
            let panels = try #require(FloatPanels(w, rows: k, columns: n))
            let expected = Self.reference(item.columns(x), lda: k, w, m: m, k: k, n: n, c: [Float](repeating: 0, count: m * n), accumulate: false)
            let epilogue = laq_epilogue(bias: nil, scale: nil, shift: nil, relu: Int32(LAQ_RELU_NONE), threshold: 0, slope: 0, ceiling: 0)
            for threads in [1, 2, 3, 8] {
                Parallel.configure(threads: threads, environment: [:])
                var c = [Float](repeating: .nan, count: m * n)
                c.withUnsafeMutableBufferPointer { c in panels.convolve(x, shape: item.shape, m: m, epilogue: epilogue, into: c.baseAddress!) }
                #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "case \(index), \(threads) threads")
            }
        }
    }
}
