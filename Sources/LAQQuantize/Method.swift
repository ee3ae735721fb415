/// The quantization methods (spec/QUANTIZATION.md).
public enum Method: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// BinaryConnect: sign(w) ∈ {−1, +1}, no scale.
    case bc
    /// Binary weight network: α·sign(w), α = mean|w|.
    case bwn
    /// Loss-aware binarization: α·sign(w), α = Σd|w| / Σd.
    case lab
    /// Ternary weight network: threshold 0.7·mean|w|, α = mean|w| over the support.
    case twn
    /// Loss-aware ternarization, exact (by sorting).
    case late
    /// Loss-aware ternarization, alternating (≤ 10 rounds, warm-started).
    case lata
    /// Two-scale loss-aware ternarization, exact per half.
    case lat2e
    /// Two-scale loss-aware ternarization, alternating.
    case lat2a
    /// Loss-aware m-bit quantization, linear or logarithmic levels.
    case laq(bits: Int, levels: LevelSpacing, alpha: AlphaUpdate)
    /// DoReFa-Net m-bit weights: 2^m levels in [−1, 1], no zero.
    case dorefa(bits: Int)
    /// Round to the nearest of 2^m − 1 linear levels scaled by max|w|.
    case rtn(bits: Int)

    /// Whether the method uses the curvature d.
    public var isLossAware: Bool {
        switch self {
        case .lab, .late, .lata, .lat2e, .lat2a, .laq: true
        default: false
        }
    }

    public var bits: Int {
        switch self {
        case .bc, .bwn, .lab: 1
        case .twn, .late, .lata, .lat2e, .lat2a: 2
        case let .laq(bits, _, _), let .dorefa(bits), let .rtn(bits): bits
        }
    }

    public var name: String {
        switch self {
        case .bc: "bc"
        case .bwn: "bwn"
        case .lab: "lab"
        case .twn: "twn"
        case .late: "late"
        case .lata: "lata"
        case .lat2e: "lat2e"
        case .lat2a: "lat2a"
        case .laq: "laq"
        case .dorefa: "dorefa"
        case .rtn: "rtn"
        }
    }

    public var description: String {
        switch self {
        case let .laq(bits, levels, alpha): "laq \(bits)-bit \(levels.rawValue)\(alpha == .reference ? " (reference α)" : "")"
        case let .dorefa(bits): "dorefa \(bits)-bit"
        case let .rtn(bits): "rtn \(bits)-bit"
        default: name
        }
    }

    /// Parses `--method NAME` with `--bits`, `--levels` and `--alpha`.
    public init(name: String, bits: Int?, levels: LevelSpacing = .linear, alpha: AlphaUpdate = .exact) throws(QuantizeError) {
        func needBits(_ range: ClosedRange<Int>, _ fallback: Int) throws(QuantizeError) -> Int {
            let value = bits ?? fallback
            guard range.contains(value) else { throw .invalidOption("\(name) takes --bits in \(range.lowerBound)…\(range.upperBound), not \(value)") }
            return value
        }
        switch name.lowercased() {
        case "bc", "binaryconnect": self = .bc
        case "bwn": self = .bwn
        case "lab": self = .lab
        case "twn": self = .twn
        case "late": self = .late
        case "lata": self = .lata
        case "lat2e": self = .lat2e
        case "lat2a": self = .lat2a
        case "laq": self = .laq(bits: try needBits(2...8, 3), levels: levels, alpha: alpha)
        case "dorefa": self = .dorefa(bits: try needBits(1...8, 3))
        case "rtn": self = .rtn(bits: try needBits(2...8, 4))
        default:
            throw .invalidOption("unknown method '\(name)' (bc, bwn, lab, twn, late, lata, lat2e, lat2a, laq, dorefa, rtn)")
        }
        if let bits, [.bc, .bwn, .lab, .twn, .late, .lata, .lat2e, .lat2a].contains(self), bits != self.bits {
            throw .invalidOption("\(name) is \(self.bits)-bit; --bits \(bits) does not apply")
        }
    }
}

/// Spacing of LAQ's m-bit levels.
public enum LevelSpacing: String, Sendable, CaseIterable {
    /// α·i/k, i = −k…k, k = 2^(m−1) − 1.
    case linear
    /// α·{0, ±2^−(k−1), …, ±1/2, ±1}.
    case log
}

/// The α update of LAQ's alternation.
public enum AlphaUpdate: String, Sendable, CaseIterable {
    /// α* = Σ d·b·w / Σ d·b², the exact minimiser for fixed b.
    case exact
    /// Σ|b|·d·|w| / Σ|b|·d, the published code's formula (for reproduction).
    case reference
}

/// Why a quantization request cannot be carried out.
public enum QuantizeError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidOption(String)
    case noSuchLayer(String)
    case mismatch(String)
    /// A weight of the model holds NaN or infinity.
    case nonFinite(weight: String, count: Int)

    public var description: String {
        switch self {
        case let .invalidOption(text), let .mismatch(text): text
        case let .noSuchLayer(name): "no layer named '\(name)' in the model"
        case let .nonFinite(weight, count): "weight '\(weight)' holds \(count) non-finite value\(count == 1 ? "" : "s") (NaN or infinity): the model computes NaN, and laq quantizes finite models only"
        }
    }

    /// Whether the command line asked for something impossible (exit 2), rather than the model
    /// being unfit (exit 1).
    public var isUsage: Bool { if case .nonFinite = self { false } else { true } }
}
