import Foundation

/// One quantized group of weights: a table of levels and one code per weight (`w[i] ≈ levels[codes[i]]`).
public struct QuantizedGroup: Sendable, Equatable {
    public var levels: [Float]
    public var codes: [UInt8]

    public var values: [Float] { codes.map { levels[Int($0)] } }
}

/// The projections of spec/QUANTIZATION.md: each solves (or, for the baselines, approximates)
///
///     min over α, b   Σ d_i (α·b_i − w_i)²
///
/// for one group of weights `w` with curvature `d` (d ≡ 1 when nil). Sums accumulate in Double.
public enum Projection {
    /// Quantizes one group.
    ///
    /// - Parameters:
    ///   - w: the full-precision weights.
    ///   - d: the curvature, element-wise positive; nil means d ≡ 1.
    ///   - warm: the previous quantized values of this group (alternating methods start from their
    ///     signs); nil starts from the TWN ternarization, as the reference code's `initialize_b`.
    public static func quantize(_ method: Method, w: [Float], d: [Float]?, warm: [Float]? = nil) -> QuantizedGroup {
        precondition(d == nil || d!.count == w.count)
        let d = d ?? [Float](repeating: 1, count: w.count)
        switch method {
        case .bc:
            return QuantizedGroup(levels: [-1, 1], codes: w.map { $0 >= 0 ? 1 : 0 })
        case .bwn:
            return binary(w, alpha: mean(w.map(abs)))
        case .lab:
            return binary(w, alpha: weightedMean(w.map(abs), d))
        case .twn:
            let (alpha, support) = twn(w)
            return ternary(w, alphaPositive: alpha, alphaNegative: alpha, positive: support, negative: support)
        case .late:
            let (alpha, support) = exactSupport(w.map(abs), d)
            return ternary(w, alphaPositive: alpha, alphaNegative: alpha, positive: support, negative: support)
        case .lata:
            return lata(w, d, warm: warm)
        case .lat2e:
            let positive = w.map { max($0, 0) }
            let negative = w.map { max(-$0, 0) }
            let (alphaP, supportP) = exactSupport(positive, d)
            let (alphaN, supportN) = exactSupport(negative, d)
            return ternary(w, alphaPositive: alphaP, alphaNegative: alphaN, positive: supportP, negative: supportN)
        case .lat2a:
            return lat2a(w, d, warm: warm)
        case let .laq(bits, spacing, update):
            return laq(w, d, unitLevels: unitLevels(bits: bits, spacing: spacing), update: update, warm: warm)
        case let .dorefa(bits):
            return dorefa(w, bits: bits)
        case let .rtn(bits):
            let k = (1 << (bits - 1)) - 1
            let alpha = w.map(abs).max() ?? 0
            let levels = (-k...k).map { Float(Double(alpha) * Double($0) / Double(k)) }
            let codes = w.map { value -> UInt8 in
                guard alpha > 0 else { return UInt8(k) }
                let scaled = (Double(value) / Double(alpha) * Double(k)).rounded(.toNearestOrAwayFromZero)
                return UInt8(Int(min(max(scaled, Double(-k)), Double(k))) + k)
            }
            return QuantizedGroup(levels: levels, codes: codes)
        }
    }

    /// d-weighted relative error of a quantization: Σ d (ŵ − w)² / Σ d w² (0 for an all-zero group).
    public static func relativeError(w: [Float], d: [Float]?, quantized: QuantizedGroup) -> Double {
        var error = 0.0
        var norm = 0.0
        for (i, value) in w.enumerated() {
            let weight = Double(d?[i] ?? 1)
            let q = Double(quantized.levels[Int(quantized.codes[i])])
            error += weight * (q - Double(value)) * (q - Double(value))
            norm += weight * Double(value) * Double(value)
        }
        return norm > 0 ? error / norm : 0
    }

    // MARK: - Building blocks

    static func mean(_ values: [Float]) -> Float {
        values.isEmpty ? 0 : Float(values.reduce(0.0) { $0 + Double($1) } / Double(values.count))
    }

    static func weightedMean(_ values: [Float], _ d: [Float]) -> Float {
        var numerator = 0.0
        var denominator = 0.0
        for (value, weight) in zip(values, d) {
            numerator += Double(weight) * Double(value)
            denominator += Double(weight)
        }
        return denominator > 0 ? Float(numerator / denominator) : 0
    }

    static func binary(_ w: [Float], alpha: Float) -> QuantizedGroup {
        QuantizedGroup(levels: [-alpha, alpha], codes: w.map { $0 >= 0 ? 1 : 0 })
    }

    /// Levels [−α⁻, 0, α⁺]; codes 2 on `positive` where w > 0, 0 on `negative` where w < 0, else 1.
    static func ternary(_ w: [Float], alphaPositive: Float, alphaNegative: Float, positive: [Bool], negative: [Bool]) -> QuantizedGroup {
        var codes = [UInt8](repeating: 1, count: w.count)
        for i in w.indices {
            if w[i] > 0, positive[i] { codes[i] = 2 } else if w[i] < 0, negative[i] { codes[i] = 0 }
        }
        return QuantizedGroup(levels: [-alphaNegative, 0, alphaPositive], codes: codes)
    }

    /// TWN: Δ = 0.7·mean|w|; the support |w| > Δ; α = mean |w| over it.
    static func twn(_ w: [Float]) -> (Float, [Bool]) {
        let delta = 0.7 * mean(w.map(abs))
        let support = w.map { abs($0) > delta }
        let chosen = zip(w, support).filter { $0.1 }.map { abs($0.0) }
        return (mean(chosen), support)
    }

    /// The exact weighted projection onto {0, α} of non-negative values `s`: the support is the j
    /// largest values (ties broken by index) for the j maximising (Σ_{≤j} d·s)² / Σ_{≤j} d, and α
    /// is their d-weighted mean. Returns α and the support mask (one sort); (0, none) when every
    /// value is 0.
    static func exactSupport(_ s: [Float], _ d: [Float]) -> (Float, [Bool]) {
        let order = sortedOrder(s)
        var best = 0.0
        var bestCount = 0
        var bestAlpha: Float = 0
        var sum = 0.0
        var weight = 0.0
        for (j, index) in order.enumerated() where s[index] > 0 {
            sum += Double(d[index]) * Double(s[index])
            weight += Double(d[index])
            guard weight > 0 else { continue }
            let gain = sum * sum / weight
            if gain > best {
                best = gain
                bestCount = j + 1
                bestAlpha = Float(sum / weight)
            }
        }
        var mask = [Bool](repeating: false, count: s.count)
        for index in order.prefix(bestCount) { mask[index] = true }
        return (bestAlpha, mask)
    }

    /// Indices of non-negative values sorted by value, descending; ties by index. The order is
    /// one sort of 64-bit keys (complemented value bits above the index), several times faster
    /// than sorting indices with a comparator; non-negative floats order as their bit patterns.
    static func sortedOrder(_ s: [Float]) -> [Int] {
        precondition(s.count < 1 << 32)
        var keys = s.enumerated().map { index, value -> UInt64 in
            let bits = value > 0 ? value.bitPattern : 0
            return UInt64(~bits) << 32 | UInt64(index)
        }
        keys.sort()
        return keys.map { Int($0 & 0xFFFF_FFFF) }
    }

    static let maxRounds = 10
    static let tolerance = 1e-6

    /// LATa: from the warm start's signs, alternate α = Σ|b|·d·|w| / Σ|b|·d and b = I_{α/2}(w).
    static func lata(_ w: [Float], _ d: [Float], warm: [Float]?) -> QuantizedGroup {
        var support = (warm ?? twnValues(w)).map { $0 != 0 }
        var alpha = supportMean(w, d, support)
        for _ in 0..<maxRounds {
            support = w.map { abs($0) > alpha / 2 }
            let next = supportMean(w, d, support)
            let change = abs(Double(next - alpha))
            alpha = next
            if change < tolerance { break }
        }
        support = w.map { abs($0) > alpha / 2 }
        return ternary(w, alphaPositive: alpha, alphaNegative: alpha, positive: support, negative: support)
    }

    /// LAT2a: as LATa, with one scale per sign, both halves updated each round, stopping when
    /// both scales have settled (the reference code's test looked at α⁻ only).
    static func lat2a(_ w: [Float], _ d: [Float], warm: [Float]?) -> QuantizedGroup {
        let start = warm ?? twnValues(w)
        var positive = zip(w, start).map { $0.0 > 0 && $0.1 > 0 }
        var negative = zip(w, start).map { $0.0 < 0 && $0.1 < 0 }
        var alphaP = supportMean(w, d, positive)
        var alphaN = supportMean(w, d, negative)
        for _ in 0..<maxRounds {
            positive = w.map { $0 > alphaP / 2 }
            negative = w.map { $0 < -alphaN / 2 }
            let nextP = supportMean(w, d, positive)
            let nextN = supportMean(w, d, negative)
            let change = max(abs(Double(nextP - alphaP)), abs(Double(nextN - alphaN)))
            alphaP = nextP
            alphaN = nextN
            if change < tolerance { break }
        }
        positive = w.map { $0 > alphaP / 2 }
        negative = w.map { $0 < -alphaN / 2 }
        return ternary(w, alphaPositive: alphaP, alphaNegative: alphaN, positive: positive, negative: negative)
    }

    /// Σ_support d·|w| / Σ_support d (0 on an empty support).
    static func supportMean(_ w: [Float], _ d: [Float], _ support: [Bool]) -> Float {
        var numerator = 0.0
        var denominator = 0.0
        for i in w.indices where support[i] {
            numerator += Double(d[i]) * Double(abs(w[i]))
            denominator += Double(d[i])
        }
        return denominator > 0 ? Float(numerator / denominator) : 0
    }

    /// The TWN ternarization's values, the reference code's `initialize_b` start.
    static func twnValues(_ w: [Float]) -> [Float] {
        let (alpha, support) = twn(w)
        return zip(w, support).map { $0.1 ? ($0.0 > 0 ? alpha : -alpha) : 0 }
    }

    /// LAQ's unit levels, ascending: linear ±i/k, or log {0, ±2^−(k−1), …, ±1}, k = 2^(m−1) − 1.
    public static func unitLevels(bits: Int, spacing: LevelSpacing) -> [Double] {
        let k = (1 << (bits - 1)) - 1
        let magnitudes: [Double] = switch spacing {
        case .linear: (1...k).map { Double($0) / Double(k) }
        case .log: (0..<k).reversed().map { pow(2, -Double($0)) }
        }
        return magnitudes.reversed().map { -$0 } + [0] + magnitudes
    }

    /// LAQ: alternate b = nearest unit level to w/α (clipped to [−1, 1]) and the α update.
    static func laq(_ w: [Float], _ d: [Float], unitLevels: [Double], update: AlphaUpdate, warm: [Float]?) -> QuantizedGroup {
        let midpoints = zip(unitLevels, unitLevels.dropFirst()).map { ($0 + $1) / 2 }
        let zeroCode = unitLevels.count / 2
        func project(_ alpha: Double) -> [Int] {
            w.map { value in
                guard alpha > 0 else { return zeroCode }
                let x = min(max(Double(value) / alpha, -1), 1)
                // First midpoint above x (ties go away from zero).
                var low = 0
                var high = midpoints.count
                while low < high {
                    let mid = (low + high) / 2
                    let above = x >= 0 ? midpoints[mid] > x : midpoints[mid] >= x
                    if above { high = mid } else { low = mid + 1 }
                }
                return low
            }
        }
        func alphaFor(_ codes: [Int]) -> Double {
            var numerator = 0.0
            var denominator = 0.0
            for i in w.indices {
                let b = unitLevels[codes[i]]
                let weight = Double(d[i])
                switch update {
                case .exact:
                    numerator += weight * b * Double(w[i])
                    denominator += weight * b * b
                case .reference:
                    numerator += abs(b) * weight * abs(Double(w[i]))
                    denominator += abs(b) * weight
                }
            }
            return denominator > 0 ? max(numerator / denominator, 0) : 0
        }
        // Start: b = sign(warm start), as the reference code; then alternate b-step and α-step,
        // ending on an α-step (with the exact update, (P) never increases).
        var codes = (warm ?? twnValues(w)).map { $0 > 0 ? unitLevels.count - 1 : $0 < 0 ? 0 : zeroCode }
        var alpha = alphaFor(codes)
        for _ in 0..<maxRounds {
            codes = project(alpha)
            let next = alphaFor(codes)
            let change = abs(next - alpha)
            alpha = next
            if change < tolerance { break }
        }
        return QuantizedGroup(levels: unitLevels.map { Float($0 * alpha) }, codes: codes.map { UInt8($0) })
    }

    /// DoReFa: 2·q_k(tanh(w) / (2·max|tanh w|) + ½) − 1, q_k rounding to multiples of 1/(2^k − 1).
    static func dorefa(_ w: [Float], bits: Int) -> QuantizedGroup {
        let steps = Double((1 << bits) - 1)
        let t = w.map { tanh(Double($0)) }
        let top = t.map(abs).max() ?? 0
        let levels = (0...Int(steps)).map { Float(2 * Double($0) / steps - 1) }
        let codes = t.map { value -> UInt8 in
            let x = top > 0 ? value / (2 * top) + 0.5 : 0.5
            return UInt8(Int((x * steps).rounded(.toNearestOrAwayFromZero)))
        }
        return QuantizedGroup(levels: levels, codes: codes)
    }
}
