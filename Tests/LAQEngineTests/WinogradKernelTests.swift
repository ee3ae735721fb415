import CLAQKernels
import Foundation
import LAQFormat
import LAQTestSupport
import Testing
@testable import LAQEngine

/// Winograd's F(2×2, 3×3) (`winograd.c`, ``WinogradPanels``): the transformed kernel, the
/// transforms' sums in the order the kernel's comment writes them, the chains of the panel
/// product and the epilogue, bit for bit on every instruction set and split of tiles and panels
/// and on any number of threads; and the convolution it computes, against the exact one.
@Suite(.serialized) struct WinogradKernelTests {
    typealias Case = PanelKernelTests.ConvolutionCase

    static let cases = [
        Case(height: 8, width: 8, channels: 16, filters: 32, kernel: (3, 3), pad: (1, 1)),
        // Odd outputs (tiles past the last row and column), a channel tail, a narrow last panel.
        Case(batch: 2, height: 7, width: 9, channels: 17, filters: 40, kernel: (3, 3), pad: (1, 1)),
        // Valid padding; a folded ZeroPadding2D's wider margins; three panels.
        Case(height: 6, width: 7, channels: 16, filters: 70, kernel: (3, 3)),
        Case(height: 5, width: 4, channels: 24, filters: 20, kernel: (3, 3), pad: (2, 1)),
        // More channels than 128 (blocks of 24 tiles): 50 tiles in three blocks.
        Case(batch: 2, height: 10, width: 10, channels: 130, filters: 33, kernel: (3, 3), pad: (1, 1)),
        // One output row and column.
        Case(height: 3, width: 3, channels: 16, filters: 16, kernel: (3, 3)),
    ]

    /// U[ξ][c][f] = G·g·Gᵀ in double, rounded once.
    static func transformed(_ w: [Float], channels: Int, filters: Int) -> [Float] {
        var u = [Float](repeating: 0, count: 16 * channels * filters)
        for c in 0..<channels {
            for f in 0..<filters {
                let g = (0..<9).map { Double(w[$0 * channels * filters + c * filters + f]) }
                func combine(_ a: Double, _ b: Double, _ c: Double) -> [Double] { [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c] }
                let columns = (0..<3).map { tw in combine(g[tw], g[3 + tw], g[6 + tw]) }  // (G·g)[row][tw] = columns[tw][row]
                for row in 0..<4 {
                    let point = combine(columns[0][row], columns[1][row], columns[2][row])
                    for s in 0..<4 { u[(row * 4 + s) * channels * filters + c * filters + f] = Float(point[s]) }
                }
            }
        }
        return u
    }

    /// The output before the epilogue: Bᵀ·d·B per tile and channel, the 16 chains of fused
    /// multiply-adds over the channels in order from 0, and Aᵀ·m·A, each sum in the kernel's order.
    static func reference(_ item: Case, _ x: [Float], _ u: [Float]) -> [Float] {
        let (oh, ow) = item.output, (channels, filters) = (item.channels, item.filters)
        var out = [Float](repeating: .nan, count: item.batch * oh * ow * filters)
        for image in 0..<item.batch {
            for ty in 0..<((oh + 1) / 2) {
                for tx in 0..<((ow + 1) / 2) {
                    var v = [[Float]](repeating: [Float](repeating: 0, count: channels), count: 16)
                    for c in 0..<channels {
                        var d = [Float](repeating: 0, count: 16)
                        for r in 0..<4 {
                            for q in 0..<4 {
                                let ih = 2 * ty - item.pad.0 + r, iw = 2 * tx - item.pad.1 + q
                                if ih >= 0, ih < item.height, iw >= 0, iw < item.width { d[r * 4 + q] = x[((image * item.height + ih) * item.width + iw) * channels + c] }
                            }
                        }
                        var s = [Float](repeating: 0, count: 16)
                        for q in 0..<4 {
                            s[q] = d[q] - d[8 + q]
                            s[4 + q] = d[4 + q] + d[8 + q]
                            s[8 + q] = d[8 + q] - d[4 + q]
                            s[12 + q] = d[4 + q] - d[12 + q]
                        }
                        for r in 0..<4 {
                            v[r * 4][c] = s[r * 4] - s[r * 4 + 2]
                            v[r * 4 + 1][c] = s[r * 4 + 1] + s[r * 4 + 2]
                            v[r * 4 + 2][c] = s[r * 4 + 2] - s[r * 4 + 1]
                            v[r * 4 + 3][c] = s[r * 4 + 1] - s[r * 4 + 3]
                        }
                    }
                    for f in 0..<filters {
                        var m = [Float](repeating: 0, count: 16)
                        for point in 0..<16 {
                            var sum: Float = 0
                            for c in 0..<channels { sum = sum.addingProduct(v[point][c], u[point * channels * filters + c * filters + f]) }
                            m[point] = sum
                        }
                        var a = [Float](repeating: 0, count: 8)
                        for q in 0..<4 {
                            a[q] = (m[q] + m[4 + q]) + m[8 + q]
                            a[4 + q] = (m[4 + q] - m[8 + q]) - m[12 + q]
                        }
                        for r in 0..<2 where 2 * ty + r < oh {
                            let y = [(a[r * 4] + a[r * 4 + 1]) + a[r * 4 + 2], (a[r * 4 + 1] - a[r * 4 + 2]) - a[r * 4 + 3]]
                            for q in 0..<2 where 2 * tx + q < ow { out[((image * oh + 2 * ty + r) * ow + 2 * tx + q) * filters + f] = y[q] }
                        }
                    }
                }
            }
        }
        return out
    }

    @Test("the transformed kernel is G·g·Gᵀ rounded once; a convolution equals the transforms' sums, the chains and the epilogue (bias, affine map, ReLU, a residual Add and its ReLU) bit for bit, on every instruction set and split of tiles and panels")
    func bits() throws {
        for (index, item) in Self.cases.enumerated() {
            var generator = SplitMix64(seed: UInt64(index + 300))
            let (channels, n) = (item.channels, item.filters)
            // Every seventh input −0, every eleventh large (ReLU ceilings reached).
            let x = PanelKernelTests.random(item.batch * item.height * item.width * channels, &generator).enumerated()
                .map { $0.offset % 7 == 3 ? -0.0 : $0.offset % 11 == 5 ? $0.element * 50 : $0.element }
            let w = PanelKernelTests.random(9 * channels * n, &generator), bias = PanelKernelTests.random(n, &generator)
            let scale = PanelKernelTests.random(n, &generator), shift = PanelKernelTests.random(n, &generator)
            let m = item.batch * item.output.0 * item.output.1
            let other = PanelKernelTests.random(m * n, &generator)
            let u = Self.transformed(w, channels: channels, filters: n)
            var transformed = [Float](repeating: .nan, count: u.count)
            laq_winograd_transform_kernel(w, channels, n, &transformed)
            #expect(transformed.map(\.bitPattern) == u.map(\.bitPattern), "case \(index)")
            let sums = Self.reference(item, x, u)
            var shape = item.shape
            #expect(laq_winograd_applies(&shape) == 1)
            let tiles = laq_winograd_tile_count(&shape, item.batch), panelCount = (n + 31) / 32
            for (variant, relu) in [Elementwise.FollowingReLU.none, .relu(threshold: 0, slope: 0, ceiling: 6), .max0].enumerated() {
                var expected = zip(sums, (0..<m).flatMap { _ in bias }).map { variant == 0 ? $0 : $0 + $1 }
                if variant != 0 { Elementwise.scaleShift(&expected, scale: scale, shift: shift, then: relu) }
                let residual: FusedResidual? = variant == 2 ? FusedResidual(first: index % 2 == 0, activation: .function(.relu), add: "add") : nil
                if let residual {
                    let (a, b) = (Tensor(shape: [m, n], data: other), Tensor(shape: [m, n], data: expected))
                    var sum = try MergeOp(name: "add", kind: .add).forward(residual.first ? [a, b] : [b, a])
                    ActivationOp(kind: .function(.relu)).apply(&sum)
                    expected = sum.data
                }
                let parameters = relu.parameters, after = (residual?.relu ?? .none).parameters
                for isa in Int32(0)...CPU.isa {
                    var panels = [Float](repeating: .nan, count: laq_winograd_length(channels, n))
                    let length = laq_panels_length(channels, n)
                    u.withUnsafeBufferPointer { u in
                        panels.withUnsafeMutableBufferPointer { panels in
                            for point in 0..<16 { laq_panels_pack(u.baseAddress! + point * channels * n, channels, n, panels.baseAddress! + point * length, isa) }
                        }
                    }
                    var c = [Float](repeating: .nan, count: m * n)
                    var workspace = [Float](repeating: .nan, count: laq_winograd_workspace_length(channels))
                    bias.withUnsafeBufferPointer { bias in
                        scale.withUnsafeBufferPointer { scale in
                            shift.withUnsafeBufferPointer { shift in
                                other.withUnsafeBufferPointer { other in
                                    var epilogue = laq_epilogue(bias: variant == 0 ? nil : bias.baseAddress, scale: variant == 0 ? nil : scale.baseAddress,
                                                                shift: shift.baseAddress, relu: parameters.mode, threshold: parameters.threshold,
                                                                slope: parameters.slope, ceiling: parameters.ceiling,
                                                                residual: residual == nil ? nil : other.baseAddress, residual_first: residual?.first == true ? 1 : 0,
                                                                after_relu: after.mode, after_threshold: after.threshold, after_slope: after.slope,
                                                                after_ceiling: after.ceiling)
                                    // Tiles in two uneven parts, the panels in two groups.
                                    for (begin, end) in [(0, tiles / 3), (tiles / 3, tiles)] {
                                        for (first, last) in [(0, panelCount / 2), (panelCount / 2, panelCount)] {
                                            laq_winograd_convolve(x, &shape, panels, n, &epilogue, &c, begin, end, first, last, &workspace, isa)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "case \(index), \(relu), isa \(isa)")
                }
            }
        }
    }

    @Test("the convolution is within 5·10⁻⁷ of Σ|x·w| of the exact one (Double), and the kernel gives the same bits on 1, 2, 3 and 8 threads, in blocks of tiles or groups of panels")
    func accuracyAndThreads() throws {
        guard WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 16 * 16), channels: 16, filters: 16) != nil else { return }
        defer { Parallel.configure(threads: nil) }
        // 1,568 tiles (33 blocks: every panel on up to 8 threads), 16 tiles (a block: panel
        // groups), 49 and 64 of 512 channels (blocks of 24: groups of panels).
        let items = [Case(batch: 2, height: 56, width: 56, channels: 16, filters: 40, kernel: (3, 3), pad: (1, 1)),
                     Case(height: 7, width: 7, channels: 64, filters: 200, kernel: (3, 3), pad: (1, 1)),
                     Case(height: 14, width: 14, channels: 512, filters: 64, kernel: (3, 3), pad: (1, 1)),
                     Case(batch: 4, height: 7, width: 7, channels: 256, filters: 100, kernel: (3, 3), pad: (1, 1))]
        for (index, item) in items.enumerated() {
            var generator = SplitMix64(seed: UInt64(index + 400))
            let x = PanelKernelTests.random(item.batch * item.height * item.width * item.channels, &generator)
            let w = PanelKernelTests.random(9 * item.channels * item.filters, &generator)
            let n = item.filters, m = item.batch * item.output.0 * item.output.1
            let kernel = try #require(WinogradPanels(kernel: w, channels: item.channels, filters: n))
            let columns = item.columns(x)
            let epilogue = laq_epilogue(bias: nil, scale: nil, shift: nil, relu: Int32(LAQ_RELU_NONE), threshold: 0, slope: 0, ceiling: 0)
            var first: [UInt32]?
            for threads in [1, 2, 3, 8] {
                Parallel.configure(threads: threads, environment: [:])
                var c = [Float](repeating: .nan, count: m * n)
                c.withUnsafeMutableBufferPointer { c in kernel.convolve(x, shape: item.shape, m: m, epilogue: epilogue, into: c.baseAddress!) }
                if let first { #expect(c.map(\.bitPattern) == first, "case \(index), \(threads) threads") } else {
                    first = c.map(\.bitPattern)
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var exact = 0.0, magnitude = 0.0
                            for t in 0..<(9 * item.channels) {
                                let product = Double(columns[i * 9 * item.channels + t]) * Double(w[t * n + j])
                                exact += product
                                magnitude += abs(product)
                            }
                            worst = max(worst, abs(Double(c[i * n + j]) - exact) / max(magnitude, .leastNormalMagnitude))
                        }
                    }
                    #expect(worst < 5e-7, "case \(index): \(worst)")
                }
            }
        }
    }

    @Test("a kernel is transformed only where it helps and can: 3×3 with 16 channels and 16 filters or more, every weight finite")
    func eligibility() {
        guard CPU.isa >= Int32(LAQ_ISA_AVX2) else {
            #expect(WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 16 * 16), channels: 16, filters: 16) == nil)
            return
        }
        #expect(WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 16 * 16), channels: 16, filters: 16) != nil)
        #expect(WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 8 * 16), channels: 8, filters: 16) == nil)
        #expect(WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 16 * 8), channels: 16, filters: 8) == nil)
        var infinite = [Float](repeating: 1, count: 9 * 16 * 16)
        infinite[100] = .infinity
        #expect(WinogradPanels(kernel: infinite, channels: 16, filters: 16) == nil)
        let kernel = WinogradPanels(kernel: [Float](repeating: 1, count: 9 * 16 * 16), channels: 16, filters: 16)!
        var shape = Case(height: 8, width: 8, channels: 16, filters: 16, kernel: (3, 3), pad: (1, 1)).shape
        #expect(kernel.applies(shape))
        shape.stride_h = 2
        #expect(!kernel.applies(shape))
        shape = Case(height: 8, width: 8, channels: 16, filters: 16, kernel: (3, 3), dilation: (2, 2), pad: (2, 2)).shape
        #expect(!kernel.applies(shape))
        shape = Case(height: 8, width: 8, channels: 24, filters: 16, kernel: (3, 3), pad: (1, 1)).shape
        #expect(!kernel.applies(shape))
    }

    @Test("Conv2D takes the transformed kernel where it applies (3×3, unit strides, 16 channels and 16 filters or more; not in training) and predicts within 5·10⁻⁷ of Σ|x·w| of the exact convolution")
    func layers() throws {
        guard CPU.isa >= Int32(LAQ_ISA_AVX2) else { return }
        func conv(_ filters: Int, strides: Int = 1, padding: String = "same") -> JSONValue {
            ["filters": .int(Int64(filters)), "kernel_size": [3, 3], "strides": [.int(Int64(strides)), .int(Int64(strides))],
             "padding": .string(padding), "use_bias": true]
        }
        let model = try GradientTests.functional(input: [nil, 9, 10, 16], [
            ("Conv2D", conv(32), ["in"]), ("Conv2D", conv(24, padding: "valid"), ["l0"]),
            ("Conv2D", conv(24, strides: 2), ["l1"]), ("Conv2D", conv(8), ["l2"]), ("Conv2D", conv(16), ["l3"]),
        ])
        let executor = try Executor(model: model)
        let ops = try (0..<5).map { try #require(executor.ops["l\($0)"] as? ConvolutionOp) }
        // Strides of 2; 8 filters; 8 input channels.
        #expect(ops.map { $0.winograd != nil } == [true, true, false, false, false])
        // The transformed layers hold no direct panels (the model's values alone); training steps
        // keep their im2col matrices and panels: no transform is built.
        func onPanels(_ op: ConvolutionOp?) -> Bool {
            if case .panels = op?.kernelMatrix { return true }
            return false
        }
        #expect(ops.map(onPanels) == [false, false, true, true, true])
        let training = try Executor(model: model, training: true)
        #expect((0..<5).allSatisfy { (training.ops["l\($0)"] as? ConvolutionOp)?.winograd == nil && onPanels(training.ops["l\($0)"] as? ConvolutionOp) })
        var random = SplitMix64(seed: 31)
        let x = Tensor(shape: [2, 9, 10, 16], data: (0..<(2 * 9 * 10 * 16)).map { _ in random.uniform() * 4 - 2 })
        let outputs = try executor.activations([x])
        for (index, (input, channels, filters, pad)) in [(x, 16, 32, 1), (try #require(outputs["l0"]), 32, 24, 0)].enumerated() {
            let op = ops[index], output = try #require(outputs["l\(index)"])
            let item = Case(batch: 2, height: input.shape[1], width: input.shape[2], channels: channels, filters: filters, kernel: (3, 3), pad: (pad, pad))
            #expect(output.shape == [2, item.output.0, item.output.1, filters])
            let columns = item.columns(input.data), k = 9 * channels
            var worst = 0.0
            for i in 0..<(output.data.count / filters) {
                for j in 0..<filters {
                    var exact = Double(op.bias![j]), magnitude = abs(exact)
                    for t in 0..<k {
                        let product = Double(columns[i * k + t]) * Double(op.kernel[t * filters + j])
                        exact += product
                        magnitude += abs(product)
                    }
                    worst = max(worst, abs(Double(output.data[i * filters + j]) - exact) / magnitude)
                }
            }
            #expect(worst < 5e-7, "l\(index): \(worst)")
        }
    }
}
