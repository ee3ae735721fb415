import LAQFormat

/// The distribution of one tensor's values, with its quantization levels (for
/// `laq inspect --histogram` and `laq report`).
///
/// Bins are `count` equal-width intervals over [min, max] of the values (the last one closed);
/// a constant tensor has one bin. For a codebook tensor the values are the dequantized ones, and
/// `levels` lists each code's level (per-tensor tables) or the range of its levels over the
/// groups (per-channel tables), with how many elements use it.
public struct TensorHistogram: Sendable, Equatable {
    public struct Bin: Sendable, Equatable {
        public var lower: Float
        public var upper: Float
        public var count: Int

        public init(lower: Float, upper: Float, count: Int) {
            self.lower = lower
            self.upper = upper
            self.count = count
        }
    }

    public struct Level: Sendable, Equatable {
        public var code: Int
        /// The level (per-tensor), or the smallest and largest level of this code over the groups.
        public var minimum: Float
        public var maximum: Float
        public var count: Int
    }

    public var name: String
    public var shape: [Int]
    public var encoding: String
    public var total: Int
    public var minimum: Float
    public var maximum: Float
    public var bins: [Bin]
    public var levels: [Level]?

    /// Equal-width bins of `values`; non-finite values are not counted.
    public static func bins(_ values: [Float], count: Int) -> [Bin] {
        let finite = values.filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max() else { return [] }
        // In Double: the span of float32 values can overflow float32, or be subnormal.
        let width = (Double(high) - Double(low)) / Double(max(count, 1))
        guard high > low, count > 1, width.isFinite, width > 0 else { return [Bin(lower: low, upper: high, count: finite.count)] }
        var counts = [Int](repeating: 0, count: count)
        for value in finite {
            let position = (Double(value) - Double(low)) / width
            counts[min(max(Int(position), 0), count - 1)] += 1
        }
        return counts.indices.map { index in
            Bin(lower: Float(Double(low) + Double(index) * width),
                upper: index == count - 1 ? high : Float(Double(low) + Double(index + 1) * width), count: counts[index])
        }
    }

    /// A problem with the reference file's tensor (as opposed to the file's own).
    public struct ReferenceError: Error, CustomStringConvertible {
        public var underlying: any Error
        public var description: String { "\(underlying)" }
    }

    /// The histogram of `tensor` in `file`, decoding each payload once. With `reference` (the
    /// full-precision file the tensor was quantized from), the bins are of the reference's values
    /// of the same tensor and the levels are this file's: the weights with the levels they were
    /// mapped to. Problems with the reference are thrown as ``ReferenceError``.
    public static func of(_ tensor: TensorInfo, in file: LAQFile, reference: LAQFile? = nil, bins count: Int = 40) throws -> TensorHistogram {
        var codebook: CodebookTensor?
        if case .codebook? = tensor.encoding { codebook = try file.codebook(tensor) }
        let values: [Float]
        if let reference {
            do {
                guard let original = reference.tensor(named: tensor.name), original.shape == tensor.shape else {
                    throw FormatError.noSuchTensor("\(tensor.name) with shape \(tensor.shape) in the reference file")
                }
                values = try reference.floats(original)
            } catch { throw ReferenceError(underlying: error) }
        } else {
            values = try codebook?.dequantized() ?? file.floats(tensor)
        }
        var levels: [Level]?
        if let codebook {
            let perTable = codebook.layout.levelCount
            let tables = codebook.levels.count / max(perTable, 1)
            var usage = [Int](repeating: 0, count: perTable)
            for code in codebook.codes where Int(code) < perTable { usage[Int(code)] += 1 }
            levels = (0..<perTable).map { code in
                let values = (0..<tables).map { codebook.levels[$0 * perTable + code] }
                return Level(code: code, minimum: values.min() ?? 0, maximum: values.max() ?? 0, count: usage[code])
            }
        }
        let finite = values.filter(\.isFinite)
        return TensorHistogram(name: tensor.name, shape: tensor.shape, encoding: tensor.encodingSummary, total: values.count,
                               minimum: finite.min() ?? 0, maximum: finite.max() ?? 0, bins: bins(values, count: count), levels: levels)
    }
}

extension TensorHistogram {
    /// `laq inspect --histogram --json`: the bins, and each level's code, range and count.
    public var json: JSONValue {
        [
            "tensor": .string(name), "shape": .array(shape.map { .int(Int64($0)) }),
            "encoding": .string(encoding), "count": .int(Int64(total)),
            "min": minimum.jsonNumber, "max": maximum.jsonNumber,
            "bins": .array(bins.map { ["lower": $0.lower.jsonNumber, "upper": $0.upper.jsonNumber, "count": .int(Int64($0.count))] }),
            "levels": levels.map { levels in
                .array(levels.map { ["code": .int(Int64($0.code)), "min": $0.minimum.jsonNumber, "max": $0.maximum.jsonNumber, "count": .int(Int64($0.count))] })
            } ?? .null,
        ]
    }
}
