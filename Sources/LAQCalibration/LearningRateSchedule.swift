import Foundation

/// The learning rate of each calibration epoch (spec/QUANTIZATION.md §9.1), as the paper's runs
/// use them: the rate of epoch e (1-based) is `base · factor^n(e)`, where n(e) counts the decays
/// that happened *after* earlier epochs.
public enum LearningRateSchedule: Sendable, Equatable, CustomStringConvertible {
    /// n(e) = 0.
    case constant
    /// After each listed epoch: n(e) = |{m ∈ epochs : m < e}| (MNIST and SVHN: ×0.1 after
    /// epochs 15 and 25).
    case steps(factor: Float, after: [Int])
    /// After every `period` epochs: n(e) = ⌊(e − 1) / period⌋ (CIFAR-10: ×0.5 every 15 epochs).
    case periodic(factor: Float, period: Int)
    /// Every epoch after `after`: n(e) = max(0, e − after) (the character LSTM: ×0.98 per epoch
    /// after epoch 10).
    case exponential(factor: Float, after: Int)

    /// The learning rate of epoch `epoch` (1-based).
    public func rate(base: Float, epoch: Int) -> Float {
        let decays: Int
        let factor: Float
        switch self {
        case .constant: return base
        case let .steps(f, after): (decays, factor) = (after.filter { $0 < epoch }.count, f)
        case let .periodic(f, period): (decays, factor) = ((epoch - 1) / period, f)
        case let .exponential(f, after): (decays, factor) = (max(0, epoch - after), f)
        }
        return base * powf(factor, Float(decays))
    }

    /// Parses the command-line form: `constant`, `step:FACTOR:E1,E2,…`, `every:N:FACTOR`,
    /// `exp:FACTOR:AFTER`. Factors lie in [0, 1]; epochs and periods are positive.
    public init(parsing text: String) throws(ScheduleError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func factor(_ text: String) throws(ScheduleError) -> Float {
            guard let value = Float(text), value >= 0, value <= 1 else { throw ScheduleError(text: text, reason: "factor '\(text)' is not a number in [0, 1]") }
            return value
        }
        func positive(_ text: String) throws(ScheduleError) -> Int {
            guard let value = Int(text), value >= 1 else { throw ScheduleError(text: text, reason: "'\(text)' is not a positive epoch count") }
            return value
        }
        switch (parts.first, parts.count) {
        case ("constant", 1):
            self = .constant
        case ("step", 3):
            var epochs: [Int] = []
            for epoch in parts[2].split(separator: ",", omittingEmptySubsequences: false) { epochs.append(try positive(String(epoch))) }
            self = .steps(factor: try factor(parts[1]), after: epochs)
        case ("every", 3):
            self = .periodic(factor: try factor(parts[2]), period: try positive(parts[1]))
        case ("exp", 3):
            self = .exponential(factor: try factor(parts[1]), after: try positive(parts[2]))
        default:
            throw ScheduleError(text: text, reason: "expected constant, step:FACTOR:E1,E2,…, every:N:FACTOR or exp:FACTOR:AFTER")
        }
    }

    /// The command-line form.
    public var description: String {
        switch self {
        case .constant: "constant"
        case let .steps(factor, after): "step:\(factor):\(after.map(String.init).joined(separator: ","))"
        case let .periodic(factor, period): "every:\(period):\(factor)"
        case let .exponential(factor, after): "exp:\(factor):\(after)"
        }
    }
}

/// A learning-rate schedule that does not parse.
public struct ScheduleError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "learning-rate schedule: \(reason)" }
}
