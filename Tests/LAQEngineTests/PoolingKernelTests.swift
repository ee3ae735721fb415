import CLAQKernels
import Testing
@testable import LAQEngine

/// The max-pooling kernel (`laq_max_pool`) against a brute-force reference written from its
/// contract: per window, the first tap inside the image, replaced by later taps only when strictly
/// greater; every instruction set gives the same values and input indices.
@Suite struct PoolingKernelTests {
    struct Case {
        var height: Int, width: Int, channels: Int, kernel: (Int, Int), stride: (Int, Int), same: Bool
    }

    static func reference(_ x: [Float], batch: Int, _ c: Case, _ rows: Window, _ cols: Window) -> ([Float], [Int]) {
        var out: [Float] = [], best: [Int] = []
        for n in 0..<batch {
            for oh in 0..<rows.output {
                for ow in 0..<cols.output {
                    for channel in 0..<c.channels {
                        var value = -Float.infinity, index = -1
                        for th in 0..<rows.kernel {
                            for tw in 0..<cols.kernel {
                                let ih = rows.source(oh, th), iw = cols.source(ow, tw)
                                guard ih >= 0, ih < c.height, iw >= 0, iw < c.width else { continue }
                                let i = ((n * c.height + ih) * c.width + iw) * c.channels + channel
                                if index < 0 || x[i] > value { (value, index) = (x[i], i) }
                            }
                        }
                        out.append(value)
                        best.append(index)
                    }
                }
            }
        }
        return (out, best)
    }

    @Test("max pooling equals brute force on every instruction set: ties, NaN, −∞, same padding, strides, channels inside and past a vector")
    func maxPoolEqualsBruteForce() {
        let cases = [
            Case(height: 6, width: 6, channels: 1, kernel: (2, 2), stride: (2, 2), same: false),
            Case(height: 7, width: 5, channels: 5, kernel: (3, 2), stride: (2, 1), same: true),
            Case(height: 5, width: 5, channels: 16, kernel: (2, 2), stride: (2, 2), same: true),
            Case(height: 4, width: 6, channels: 17, kernel: (3, 3), stride: (1, 2), same: false),
            Case(height: 3, width: 3, channels: 33, kernel: (2, 2), stride: (1, 1), same: true),
        ]
        for (number, c) in cases.enumerated() {
            let batch = 2
            var generator = SplitMix64(seed: UInt64(number + 1))
            // Few distinct values: many ties, so the first-maximum rule is exercised.
            var x = (0..<(batch * c.height * c.width * c.channels)).map { _ in Float(Int(generator.next() % 5) - 2) }
            x[3 % x.count] = .nan
            x[7 % x.count] = -.infinity
            let rows = Window(input: c.height, kernel: c.kernel.0, stride: c.stride.0, dilation: 1, same: c.same)
            let cols = Window(input: c.width, kernel: c.kernel.1, stride: c.stride.1, dilation: 1, same: c.same)
            let (expected, expectedIndices) = Self.reference(x, batch: batch, c, rows, cols)
            let outputRows = batch * rows.output
            for isa in Int32(0)...CPU.isa {
                // All output rows in one call, and one call per row (as threads split them).
                for parts in [[0..<outputRows], (0..<outputRows).map { $0..<($0 + 1) }] {
                    var out = [Float](repeating: 0, count: expected.count), best = [Int](repeating: 0, count: expected.count)
                    for part in parts {
                        laq_max_pool(x, part.lowerBound, part.upperBound, c.height, c.width, c.channels, rows.output, rows.kernel, rows.stride,
                                     rows.padBefore, cols.output, cols.kernel, cols.stride, cols.padBefore, nil, &out, &best, isa)
                    }
                    #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "case \(number), isa \(isa), \(parts.count) calls")
                    #expect(best == expectedIndices, "case \(number), isa \(isa), \(parts.count) calls")
                }
                var valuesOnly = [Float](repeating: 0, count: expected.count)
                laq_max_pool(x, 0, outputRows, c.height, c.width, c.channels, rows.output, rows.kernel, rows.stride, rows.padBefore,
                             cols.output, cols.kernel, cols.stride, cols.padBefore, nil, &valuesOnly, nil, isa)
                #expect(valuesOnly.map(\.bitPattern) == expected.map(\.bitPattern), "case \(number), isa \(isa), no indices")
            }
        }
    }

    @Test("max pooling with a folded ZeroPadding2D equals valid pooling of the padded input: the margins' zeros in their places in tap order, against −0, NaN and negative values")
    func zeroMarginsEqualPaddedInput() {
        // (height, width, channels, kernel, stride, margins: top, bottom, left, right)
        for (number, (height, width, channels, kernel, step, margins)) in [(6, 7, 3, 3, 2, (1, 1, 1, 1)), (5, 5, 17, 2, 1, (0, 1, 2, 0)),
                                                                            (4, 9, 16, 3, 3, (2, 1, 0, 2))].enumerated() {
            let batch = 2
            var generator = SplitMix64(seed: UInt64(number + 20))
            var x = (0..<(batch * height * width * channels)).map { _ in Float(Int(generator.next() % 5) - 3) }
            for i in stride(from: 1, to: x.count, by: 9) { x[i] = -0.0 }
            x[4 % x.count] = .nan
            let (paddedHeight, paddedWidth) = (height + margins.0 + margins.1, width + margins.2 + margins.3)
            var padded = [Float](repeating: 0, count: batch * paddedHeight * paddedWidth * channels)
            for n in 0..<batch {
                for h in 0..<height {
                    for w in 0..<width {
                        for c in 0..<channels {
                            padded[((n * paddedHeight + h + margins.0) * paddedWidth + w + margins.2) * channels + c] = x[((n * height + h) * width + w) * channels + c]
                        }
                    }
                }
            }
            let paddedCase = Case(height: paddedHeight, width: paddedWidth, channels: channels, kernel: (kernel, kernel), stride: (step, step), same: false)
            let expected = Self.reference(padded, batch: batch, paddedCase,
                                          Window(input: paddedHeight, kernel: kernel, stride: step, dilation: 1, same: false),
                                          Window(input: paddedWidth, kernel: kernel, stride: step, dilation: 1, same: false)).0
            let rows = Window(input: height, kernel: kernel, stride: step, dilation: 1, same: false, margins: .init(before: margins.0, after: margins.1))
            let cols = Window(input: width, kernel: kernel, stride: step, dilation: 1, same: false, margins: .init(before: margins.2, after: margins.3))
            let zeros = [Float](repeating: 0, count: channels)
            for isa in Int32(0)...CPU.isa {
                var out = [Float](repeating: .nan, count: expected.count)
                let split = batch * rows.output / 3
                for (begin, end) in [(0, split), (split, batch * rows.output)] {
                    laq_max_pool(x, begin, end, height, width, channels, rows.output, rows.kernel, rows.stride, rows.padBefore,
                                 cols.output, cols.kernel, cols.stride, cols.padBefore, zeros, &out, nil, isa)
                }
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "case \(number), isa \(isa)")
            }
        }
    }
}
