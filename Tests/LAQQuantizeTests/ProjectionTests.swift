import Foundation
import LAQQuantize
import Testing

/// The projections against brute force and against their defining properties
/// (loss-aware-quantization.md §7).
@Suite struct ProjectionTests {
    struct Problem {
        var w: [Float]
        var d: [Float]
    }

    /// Deterministic random problems: w ~ N(0, 0.1²)-ish, d = √v + 1e-8 with v ≥ 0.
    static func problems(count: Int, size: Int, seed: UInt64) -> [Problem] {
        var state = seed
        func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        return (0..<count).map { _ in
            let w = (0..<size).map { _ in Float((next() - 0.5) * 0.4 * (next() + 0.2)) }
            let d = (0..<size).map { _ in Float(next() * next() * 3) + 1e-8 }
            return Problem(w: w, d: d)
        }
    }

    static func objective(_ p: Problem, _ values: [Float]) -> Double {
        zip(zip(p.w, p.d), values).reduce(0.0) { sum, item in
            let ((w, d), q) = item
            return sum + Double(d) * Double(q - w) * Double(q - w)
        }
    }

    /// min over every support T and sign pattern of (P) with one scale, by enumeration.
    static func bruteTernary(_ p: Problem) -> Double {
        var best = Double.infinity
        for mask in 0..<(1 << p.w.count) {
            var num = 0.0, den = 0.0
            for i in p.w.indices where mask & (1 << i) != 0 {
                num += Double(p.d[i]) * Double(abs(p.w[i]))
                den += Double(p.d[i])
            }
            let alpha = den > 0 ? num / den : 0
            let values = p.w.indices.map { i -> Float in mask & (1 << i) != 0 ? Float(p.w[i] >= 0 ? alpha : -alpha) : 0 }
            best = min(best, objective(p, values))
        }
        return best
    }

    @Test("LATe equals the brute-force optimum of the weighted ternary projection")
    func lateIsExact() {
        for p in Self.problems(count: 200, size: 9, seed: 1) {
            let late = Self.objective(p, Projection.quantize(.late, w: p.w, d: p.d).values)
            let brute = Self.bruteTernary(p)
            #expect(late <= brute * (1 + 1e-5) + 1e-12, "LATe \(late) vs brute force \(brute)")
        }
    }

    /// Two-scale optimum: each half independently.
    static func bruteTwoScale(_ p: Problem) -> Double {
        func half(_ sign: Float) -> Double {
            let positive = Problem(w: p.w.map { $0 * sign > 0 ? abs($0) : 0 }, d: p.d)
            return bruteTernary(positive)
        }
        // Each half's problem has the other sign's entries at 0, where they cost nothing.
        return half(1) + half(-1)
    }

    @Test("LAT2e equals the brute-force optimum per half (the reference code's negative-half bug is fixed)")
    func lat2eIsExact() {
        for p in Self.problems(count: 150, size: 8, seed: 2) {
            let lat2e = Self.objective(p, Projection.quantize(.lat2e, w: p.w, d: p.d).values)
            let brute = Self.bruteTwoScale(p)
            #expect(lat2e <= brute * (1 + 1e-5) + 1e-12, "LAT2e \(lat2e) vs brute force \(brute)")
        }
    }

    @Test("LATa and LAT2a stay within 1% of the exact optimum on average, never below it")
    func alternatingIsClose() {
        var gaps: [Double] = []
        for p in Self.problems(count: 200, size: 64, seed: 3) {
            let exact = Self.objective(p, Projection.quantize(.late, w: p.w, d: p.d).values)
            let approx = Self.objective(p, Projection.quantize(.lata, w: p.w, d: p.d).values)
            #expect(approx >= exact * (1 - 1e-6))
            gaps.append((approx - exact) / max(exact, 1e-12))
            let exact2 = Self.objective(p, Projection.quantize(.lat2e, w: p.w, d: p.d).values)
            let approx2 = Self.objective(p, Projection.quantize(.lat2a, w: p.w, d: p.d).values)
            #expect(approx2 >= exact2 * (1 - 1e-6))
        }
        #expect(gaps.reduce(0, +) / Double(gaps.count) < 0.01)
    }

    @Test("LAB's α is the d-weighted mean of |w|; with d ≡ 1 it is BWN")
    func labAndBWN() {
        let w: [Float] = [0.5, -0.25, 0, 1]
        let d: [Float] = [1, 2, 3, 4]
        let lab = Projection.quantize(.lab, w: w, d: d)
        #expect(lab.codes == [1, 0, 1, 1])  // sign(0) = +1
        #expect(abs(lab.levels[1] - Float((0.5 + 0.5 + 0 + 4) / 10)) < 1e-7)
        #expect(Projection.quantize(.lab, w: w, d: nil) == Projection.quantize(.bwn, w: w, d: nil))
        #expect(Projection.quantize(.bc, w: w, d: d).levels == [-1, 1])
    }

    @Test("scaling d by a constant changes nothing", arguments: [Method.lab, .late, .lata, .lat2e, .lat2a, .laq(bits: 3, levels: .linear, alpha: .exact), .laq(bits: 4, levels: .log, alpha: .exact)])
    func scaleInvariance(method: Method) {
        for p in Self.problems(count: 20, size: 50, seed: 4) {
            let a = Projection.quantize(method, w: p.w, d: p.d)
            let b = Projection.quantize(method, w: p.w, d: p.d.map { $0 * 1000 })
            #expect(a.codes == b.codes)
            for (x, y) in zip(a.levels, b.levels) { #expect(abs(x - y) <= 1e-5 * max(abs(x), 1e-6)) }
        }
    }

    @Test("TWN: threshold 0.7·mean|w|, α the mean over the support; d ≡ 1 LATe is the exact unweighted ternarization")
    func twn() {
        let w: [Float] = [1, -0.9, 0.1, 0.05, -0.02, 0.6]
        let twn = Projection.quantize(.twn, w: w, d: nil)
        let delta: Float = 0.7 * w.map(abs).reduce(0, +) / 6
        let support = w.filter { abs($0) > delta }.map(abs)
        #expect(twn.levels[2] == support.reduce(0, +) / Float(support.count))
        let unweighted = Problem(w: w, d: [Float](repeating: 1, count: 6))
        let late = Self.objective(unweighted, Projection.quantize(.late, w: w, d: nil).values)
        let brute = Self.bruteTernary(unweighted)
        #expect(abs(late - brute) < 1e-9)
    }

    @Test("LAQ levels: linear ±i/k and log powers of two, 2^m − 1 of them")
    func levels() {
        let third: Double = 1.0 / 3
        let linear: [Double] = [-1, -2 * third, -third, 0, third, 2 * third, 1]
        let log: [Double] = [-1, -0.5, -0.25, 0, 0.25, 0.5, 1]
        #expect(Projection.unitLevels(bits: 3, spacing: .linear) == linear)
        #expect(Projection.unitLevels(bits: 3, spacing: .log) == log)
        #expect(Projection.unitLevels(bits: 8, spacing: .linear).count == 255)
    }

    @Test("LAQ: the exact α minimises (P) for the codes, which are (at convergence) the nearest levels")
    func laqProjection() {
        for spacing in LevelSpacing.allCases {
            for p in Self.problems(count: 30, size: 200, seed: 5) {
                let q = Projection.quantize(.laq(bits: 3, levels: spacing, alpha: .exact), w: p.w, d: p.d)
                let alpha = Double(q.levels.last!)
                let unit = Projection.unitLevels(bits: 3, spacing: spacing)
                var nearest = 0
                for (i, w) in p.w.enumerated() {
                    let x = min(max(Double(w) / alpha, -1), 1)
                    let best = unit.map { abs($0 - x) }.min()!
                    if abs(unit[Int(q.codes[i])] - x) <= best + 1e-9 { nearest += 1 }
                }
                // ≤ 10 rounds do not always reach the fixed point; most codes are already nearest.
                #expect(nearest >= p.w.count * 95 / 100)
                // α on a fine grid around the solution, codes fixed: none does better.
                let values = q.codes.map { unit[Int($0)] }
                func objective(_ a: Double) -> Double {
                    var total = 0.0
                    for i in p.w.indices {
                        let diff = a * values[i] - Double(p.w[i])
                        total += Double(p.d[i]) * diff * diff
                    }
                    return total
                }
                let found = objective(alpha)
                for step in stride(from: 0.5, through: 1.5, by: 0.01) { #expect(found <= objective(alpha * step) + 1e-12) }
            }
        }
    }

    @Test("LAQ with m = 2 is LATa; the exact α update never loses to the reference one")
    func laqTwoBits() {
        for p in Self.problems(count: 50, size: 100, seed: 6) {
            let laq = Projection.quantize(.laq(bits: 2, levels: .linear, alpha: .exact), w: p.w, d: p.d)
            let lata = Projection.quantize(.lata, w: p.w, d: p.d)
            let laqObjective = Self.objective(p, laq.values)
            let lataObjective = Self.objective(p, lata.values)
            #expect(abs(laqObjective - lataObjective) <= 1e-9 * max(lataObjective, 1e-12))
            let exact = Self.objective(p, Projection.quantize(.laq(bits: 3, levels: .linear, alpha: .exact), w: p.w, d: p.d).values)
            let reference = Self.objective(p, Projection.quantize(.laq(bits: 3, levels: .linear, alpha: .reference), w: p.w, d: p.d).values)
            #expect(exact <= reference * (1 + 1e-6))
        }
    }

    @Test("edge cases: empty, all-zero and one-signed groups give finite levels")
    func edgeCases() {
        for method in [Method.bc, .bwn, .lab, .twn, .late, .lata, .lat2e, .lat2a, .laq(bits: 3, levels: .log, alpha: .exact), .dorefa(bits: 2), .rtn(bits: 3)] {
            for w in [[Float](), [0, 0, 0], [0.5, 0.25, 1], [-0.5, -0.25]] {
                let q = Projection.quantize(method, w: w, d: nil)
                #expect(q.codes.count == w.count)
                let finite = q.levels.allSatisfy { $0.isFinite }
                #expect(finite, "\(method) on \(w)")
                #expect(q.codes.allSatisfy { Int($0) < q.levels.count })
            }
        }
    }

    @Test("DoReFa: 2^m levels in [−1, 1], no zero; RTN: symmetric levels scaled by max|w|")
    func baselines() {
        let q = Projection.quantize(.dorefa(bits: 2), w: [-1, -0.1, 0.1, 1], d: nil)
        #expect(q.levels == [-1, -1.0 / 3, 1.0 / 3, 1])
        #expect(q.codes == [0, 1, 2, 3])
        let r = Projection.quantize(.rtn(bits: 3), w: [-0.9, 0.3, 0.05], d: nil)
        #expect(r.levels.count == 7)
        #expect(r.levels.last == Float(0.9))
        #expect(abs(r.values[1] - 0.3) < 1e-6)
    }
}
