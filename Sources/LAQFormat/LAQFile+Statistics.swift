/// Summary statistics of one decoded tensor, for `laq inspect`.
public struct TensorStatistics: Sendable, Equatable {
    /// Share of elements whose decoded value is exactly zero.
    public var zeroFraction: Double
    public var minimum: Float
    public var maximum: Float
    /// Codebook tensors: the level tables' count (G), and their smallest and largest levels.
    public var groups: Int?
    public var levelMinimum: Float?
    public var levelMaximum: Float?
    /// Codebook tensors with one table: its levels.
    public var levels: [Float]?
}

extension LAQFile {
    /// Decodes `tensor` and summarises its values.
    public func statistics(of tensor: TensorInfo) throws -> TensorStatistics {
        var statistics: TensorStatistics
        if case .codebook? = tensor.encoding {
            let codebook = try codebook(tensor)
            statistics = Self.summarise(codebook.dequantized())
            statistics.groups = codebook.levels.count / max(codebook.layout.levelCount, 1)
            statistics.levelMinimum = codebook.levels.min()
            statistics.levelMaximum = codebook.levels.max()
            if codebook.layout.axis == nil { statistics.levels = codebook.levels }
        } else {
            statistics = Self.summarise(try floats(tensor))
        }
        return statistics
    }

    static func summarise(_ values: [Float]) -> TensorStatistics {
        var zeros = 0
        var minimum = Float.infinity
        var maximum = -Float.infinity
        for value in values {
            if value == 0 { zeros += 1 }
            minimum = min(minimum, value)
            maximum = max(maximum, value)
        }
        return TensorStatistics(
            zeroFraction: values.isEmpty ? 0 : Double(zeros) / Double(values.count),
            minimum: values.isEmpty ? 0 : minimum, maximum: values.isEmpty ? 0 : maximum)
    }
}
