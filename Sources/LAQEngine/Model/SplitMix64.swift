/// SplitMix64: a small, fast, seeded generator, so that example models, shuffles, dropout masks
/// and benchmarks repeat exactly on every machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 24 bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A seeded permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        guard count > 1 else { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(next() % UInt64(i + 1)))
        }
        return order
    }
}
