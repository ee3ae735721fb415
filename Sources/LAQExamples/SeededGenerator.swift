/// SplitMix64: a small, fast, seeded generator, so that example models, tests and benchmarks
/// produce the same bytes on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

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

#if canImport(Glibc)
import Glibc
#endif
