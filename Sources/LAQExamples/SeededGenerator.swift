import Foundation
import LAQEngine

/// The seeded generator of example weights (SplitMix64), so that example files are the same bytes
/// on every machine.
public typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    /// A normal variate (Box–Muller).
    public mutating func normal(mean: Float = 0, std: Float = 1) -> Float {
        let u1 = Float.random(in: Float.ulpOfOne..<1, using: &self)
        let u2 = Float.random(in: 0..<1, using: &self)
        return mean + std * (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }

    /// `count` normal variates.
    public mutating func normals(_ count: Int, std: Float = 1) -> [Float] {
        (0..<count).map { _ in normal(std: std) }
    }
}
