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
}
