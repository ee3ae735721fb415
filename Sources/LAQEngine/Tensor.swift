/// A dense float32 tensor, row-major (the last dimension varies fastest), batch first.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// Size of the last dimension.
    public var lastDimension: Int { shape.last ?? 1 }

    /// Samples `range` along the first dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        let per = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [range.count] + shape.dropFirst(), data: Array(data[(range.lowerBound * per)..<(range.upperBound * per)]))
    }
}

/// Why the engine cannot run a model or an input.
public enum EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingWeight(layer: String, weight: String)
    case badInput(name: String, reason: String)
    case unsupported(layer: String, reason: String)
    case shape(layer: String, reason: String)
    /// The model itself cannot be executed (from ``Model/validate()``).
    case invalidModel(String)

    public var description: String {
        switch self {
        case let .missingWeight(layer, weight): return "layer '\(layer)': weight '\(weight)' is missing"
        case let .badInput(name, reason): return "input '\(name)': \(reason)"
        case let .unsupported(layer, reason): return "layer '\(layer)': \(reason)"
        case let .shape(layer, reason): return "layer '\(layer)': \(reason)"
        case let .invalidModel(reason): return reason
        }
    }
}
