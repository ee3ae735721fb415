import CLAQKernels
import LAQTestSupport
import Testing
@testable import LAQEngine

/// The depthwise convolution kernel (`laq_depthwise_conv2d`) against the scalar definition,
/// bit for bit, on every instruction set this machine has: strides, dilation, `same` and `valid`
/// padding, depth multipliers, odd channel counts, with and without a bias, with a fused
/// BatchNormalization and ReLU, and any split of the output rows.
@Suite struct DepthwiseKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var batch = 2, height = 9, width = 7, channels = 13, kernel = (3, 3), multiplier = 1, strides = (1, 1), dilation = (1, 1), same = true
        var testDescription: String {
            "\(batch)×\(height)×\(width)×\(channels) kernel \(kernel) ×\(multiplier) strides \(strides) dilation \(dilation) \(same ? "same" : "valid")"
        }
    }

    static let cases: [Case] = [
        Case(), Case(same: false), Case(channels: 32, strides: (2, 2)), Case(channels: 5, multiplier: 3),
        Case(height: 11, width: 12, channels: 17, kernel: (5, 5), dilation: (2, 2)), Case(kernel: (1, 3), strides: (1, 2), same: false),
        Case(batch: 1, height: 1, width: 1, channels: 64, kernel: (3, 3)), Case(height: 6, width: 5, channels: 100, strides: (2, 2)), Case(height: 5, width: 4, channels: 144, same: false),
        // Rows wide enough for whole groups of eight positions and a remainder of each count.
        Case(batch: 1, height: 4, width: 45, channels: 48), Case(batch: 1, height: 5, width: 37, channels: 20, strides: (2, 2)),
        Case(batch: 1, height: 10, width: 30, channels: 16, kernel: (5, 5), strides: (1, 2), dilation: (2, 1), same: false),
        Case(batch: 1, height: 3, width: 33, channels: 7, kernel: (3, 5), dilation: (1, 3)),
        Case(batch: 1, height: 3, width: 14, channels: 40), Case(batch: 1, height: 3, width: 16, channels: 16),
        Case(batch: 1, height: 3, width: 17, channels: 33),
        Case(batch: 1, height: 6, width: 30, channels: 20, kernel: (5, 5)), Case(batch: 1, height: 7, width: 37, channels: 16, kernel: (5, 5), strides: (2, 2)),
    ]

    /// Σ over in-bounds taps in order (rows, then columns) of x·k, per output channel.
    static func reference(_ x: [Float], _ k: [Float], _ c: Case, _ rows: Window, _ cols: Window) -> [Float] {
        let outChannels = c.channels * c.multiplier
        var y = [Float](repeating: 0, count: c.batch * rows.output * cols.output * outChannels)
        for n in 0..<c.batch {
            for oh in 0..<rows.output {
                for ow in 0..<cols.output {
                    let out = ((n * rows.output + oh) * cols.output + ow) * outChannels
                    for th in 0..<c.kernel.0 {
                        let ih = rows.source(oh, th)
                        guard ih >= 0, ih < c.height else { continue }
                        for tw in 0..<c.kernel.1 {
                            let iw = cols.source(ow, tw)
                            guard iw >= 0, iw < c.width else { continue }
                            for ch in 0..<c.channels {
                                for j in 0..<c.multiplier {
                                    let value = x[((n * c.height + ih) * c.width + iw) * c.channels + ch]
                                    y[out + ch * c.multiplier + j] += value * k[(th * c.kernel.1 + tw) * outChannels + ch * c.multiplier + j]
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    @Test("equals the scalar definition bit for bit, for every instruction set and split of the rows", arguments: cases)
    func matchesScalar(_ c: Case) {
        var random = SplitMix64(seed: 4)
        let x = (0..<(c.batch * c.height * c.width * c.channels)).map { _ in Float(Int(random.next() % 2001) - 1000) / 300 }
        let k = (0..<(c.kernel.0 * c.kernel.1 * c.channels * c.multiplier)).map { _ in Float(Int(random.next() % 2001) - 1000) / 700 }
        let rows = Window(input: c.height, kernel: c.kernel.0, stride: c.strides.0, dilation: c.dilation.0, same: c.same)
        let cols = Window(input: c.width, kernel: c.kernel.1, stride: c.strides.1, dilation: c.dilation.1, same: c.same)
        let sums = Self.reference(x, k, c, rows, cols)
        let outChannels = c.channels * c.multiplier
        let bias = (0..<outChannels).map { _ in Float(Int(random.next() % 2001) - 1000) / 500 }
        let outputRows = c.batch * rows.output
        let scale = (0..<outChannels).map { _ in Float(Int(random.next() % 2001) - 1000) / 400 }
        let shift = (0..<outChannels).map { _ in Float(Int(random.next() % 2001) - 1000) / 600 }
        // Without a bias, with one added after the taps' sum, and then an inference
        // BatchNormalization with a ReLU (max(·, 0), or Keras' with a ceiling and a slope).
        let relus: [Elementwise.FollowingReLU?] = [nil, nil, .relu(threshold: 0, slope: 0, ceiling: 6), .max0, .relu(threshold: 0.5, slope: 0.1, ceiling: 2),
                                                   .relu(threshold: -0.0, slope: 0.5, ceiling: 1)]
        for (variant, relu) in relus.enumerated() {
            let withBias = variant % 2 == 1 || variant == 4
            var values = sums.indices.map { withBias ? sums[$0] + bias[$0 % outChannels] : sums[$0] }
            if let relu { Elementwise.scaleShift(&values, scale: scale, shift: shift, then: relu) }
            let expected = values.map(\.bitPattern)
            let parameters = (relu ?? .none).parameters
            for isa in 0...Int(CPU.isa) {
                for split in Set([0, 1, outputRows / 2, outputRows]) {
                    var y = [Float](repeating: .nan, count: expected.count)
                    y.withUnsafeMutableBufferPointer { out in
                        bias.withUnsafeBufferPointer { bias in
                            scale.withUnsafeBufferPointer { scale in
                                shift.withUnsafeBufferPointer { shift in
                                    var epilogue = laq_epilogue(bias: withBias ? bias.baseAddress : nil, scale: relu == nil ? nil : scale.baseAddress,
                                                                shift: shift.baseAddress, relu: parameters.mode, threshold: parameters.threshold,
                                                                slope: parameters.slope, ceiling: parameters.ceiling)
                                    for range in [0..<split, split..<outputRows] where !range.isEmpty {
                                        laq_depthwise_conv2d(x, c.height, c.width, c.channels, k, c.kernel.0, c.kernel.1, c.multiplier, c.strides.0,
                                                             c.strides.1, c.dilation.0, c.dilation.1, rows.padBefore, cols.padBefore, rows.output,
                                                             cols.output, out.baseAddress!, range.lowerBound, range.upperBound, &epilogue, Int32(isa))
                                    }
                                }
                            }
                        }
                    }
                    #expect(y.map(\.bitPattern) == expected, "isa \(isa), rows split at \(split), bias \(withBias), normalization \(String(describing: relu))")
                }
            }
        }
    }
}
