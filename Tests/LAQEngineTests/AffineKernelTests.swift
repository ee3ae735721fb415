import CLAQKernels
import Testing
@testable import LAQEngine

/// The per-channel affine map with its ReLU (`laq_scale_shift`): every instruction set this
/// machine has gives the bits of the scalar definitions the unfused layers use
/// (BatchNormalization's x·scale + shift, then ``Elementwise/relu(_:)`` or Keras' ReLU), with
/// NaN, infinities and signed zeros, at widths that end inside and past a vector.
@Suite struct AffineKernelTests {
    /// The values a ReLU treats specially, and ordinary ones.
    static let specials: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 6, -6, 5.999999, 1e-30, -1e-30, 0.5, -0.5, 3, 7]

    static func reference(_ x: Float, _ scale: Float, _ shift: Float, _ relu: Elementwise.FollowingReLU) -> Float {
        let v = x * scale + shift  // two roundings: Swift does not contract
        switch relu {
        case .none: return v
        case .max0: return max(v, 0)
        case let .relu(threshold, slope, ceiling):
            let y = v >= threshold ? v : slope * (v - threshold)
            return y > ceiling ? ceiling : y
        }
    }

    @Test("laq_scale_shift equals the scalar definitions, bit for bit, on every instruction set")
    func bits() {
        let relus: [Elementwise.FollowingReLU] = [.none, .max0, .relu(threshold: 0, slope: 0, ceiling: 6),
                                                  .relu(threshold: 0.5, slope: 0.1, ceiling: .infinity), .relu(threshold: -1, slope: 0.3, ceiling: 2)]
        for channels in [1, 7, 8, 15, 16, 17, 33, 40] {
            var generator = SplitMix64(seed: UInt64(channels))
            let rows = 5
            func random(_ scale: Float) -> Float { Float(Int(generator.next() % 2001) - 1000) / 1000 * scale }
            let x = (0..<(rows * channels)).map { i in i % 3 == 0 ? Self.specials[(i / 3) % Self.specials.count] : random(8) }
            let scale = (0..<channels).map { c in c % 5 == 4 ? -1 : random(2) }
            let shift = (0..<channels).map { c in c % 4 == 3 ? 0 : random(1) }
            for relu in relus {
                let expected = x.indices.map { Self.reference(x[$0], scale[$0 % channels], shift[$0 % channels], relu) }
                let (mode, threshold, slope, ceiling): (Int32, Float, Float, Float) = switch relu {
                case .none: (Int32(LAQ_RELU_NONE), 0, 0, 0)
                case .max0: (Int32(LAQ_RELU_MAX0), 0, 0, 0)
                case let .relu(t, s, c): (Int32(LAQ_RELU_KERAS), t, s, c)
                }
                for isa in Int32(0)...CPU.isa {
                    var y = [Float](repeating: 1, count: x.count)
                    laq_scale_shift(x, &y, rows, channels, scale, shift, mode, threshold, slope, ceiling, isa)
                    #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "channels \(channels), \(relu), isa \(isa)")
                    var inPlace = x
                    inPlace.withUnsafeMutableBufferPointer { laq_scale_shift($0.baseAddress, $0.baseAddress, rows, channels, scale, shift, mode, threshold, slope, ceiling, isa) }
                    #expect(inPlace.map(\.bitPattern) == expected.map(\.bitPattern), "in place: channels \(channels), \(relu), isa \(isa)")
                }
                // And through Elementwise, which splits rows between threads.
                var values = x
                Elementwise.scaleShift(&values, scale: scale, shift: shift, then: relu)
                #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "Elementwise: channels \(channels), \(relu)")
            }
        }
    }

    /// A value's bits, every NaN as one.
    static func bits(_ value: Float) -> UInt32 { value.isNaN ? Float.nan.bitPattern : value.bitPattern }

    @Test("column sums and ReLU's gradient equal their scalar definitions, bit for bit, on every instruction set")
    func backwardBits() {
        for width in [1, 7, 8, 16, 17, 31, 32, 33, 64, 65, 100, 130] {
            var generator = SplitMix64(seed: UInt64(width))
            let rows = 37
            let a = (0..<(rows * width)).map { i in i % 11 == 0 ? Self.specials[(i / 11) % Self.specials.count] : Float(Int(generator.next() % 2001) - 1000) / 7 }
            var expected = [Float](repeating: 0, count: width)
            for r in 0..<rows { for j in 0..<width { expected[j] += a[r * width + j] } }
            for isa in Int32(0)...CPU.isa {
                // Every split the thread blocks can make: [first, end) on multiples of 16.
                for first in stride(from: 0, to: width, by: 16) {
                    var sums = [Float](repeating: .nan, count: width)
                    laq_column_sums(a, rows, width, first, width, &sums, isa)
                    // Bit for bit, a NaN as any NaN (which operand's NaN an addition keeps is the compiler's choice).
                    #expect(sums[first...].map(Self.bits) == expected[first...].map(Self.bits), "width \(width) from \(first), isa \(isa)")
                    #expect(sums[..<first].allSatisfy { $0.isNaN }, "columns before \(first) untouched")
                }
                let g = a, z = a.reversed().map { $0 - 1 }
                let reference = a.indices.map { g[$0] * (z[$0] > 0 ? 1 : 0) }
                var out = [Float](repeating: 7, count: a.count)
                laq_relu_gradient(g, z, &out, a.count, isa)
                #expect(out.map(Self.bits) == reference.map(Self.bits), "ReLU gradient, \(a.count) values, isa \(isa)")
            }
        }
    }
}
