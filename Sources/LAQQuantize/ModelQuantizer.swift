import LAQFormat
import LAQEngine

/// Which weights to quantize, and how.
public struct QuantizationSettings: Sendable {
    public var method: Method
    /// One table of levels per output channel (the last axis) instead of one per tensor.
    public var perChannel: Bool
    /// Layers left in full precision.
    public var skip: Set<String>
    /// Per-layer methods (mixed precision).
    public var overrides: [String: Method]
    /// Per-weight methods, by weight name (a bit plan, ``BitPlan``); they take precedence over
    /// `overrides` and `method`.
    public var weightMethods: [String: Method] = [:]
    /// Weights a bit plan keeps in float, by weight name.
    public var floatWeights: Set<String> = []

    public init(method: Method, perChannel: Bool = false, skip: Set<String> = [], overrides: [String: Method] = [:]) {
        self.method = method
        self.perChannel = perChannel
        self.skip = skip
        self.overrides = overrides
    }

    /// The method of a quantizable weight, or nil when it stays float (its layer is skipped, or
    /// a bit plan keeps it).
    public func method(for weight: Weight) -> Method? {
        if skip.contains(weight.layer) || floatWeights.contains(weight.name) { return nil }
        return weightMethods[weight.name] ?? overrides[weight.layer] ?? method
    }
}

/// Where the curvature d came from.
public enum CurvatureSource: Sendable, Equatable {
    /// The imported optimizer's second moment: d = √v + 1e-8 (Adamax: d = u + 1e-8), as stored.
    case optimizer(className: String, iterations: Int64?, beta2: Double)
    /// No second moment: d ≡ 1 (loss-aware methods reduce to their unweighted counterparts).
    case none
}

/// One quantized weight tensor and how well it approximates the original.
public struct TensorQuantization: Sendable {
    public var weight: String
    public var layer: String
    public var method: Method
    public var layout: CodebookLayout
    /// G × L levels.
    public var levels: [Float]
    public var codes: [UInt8]
    /// Σ d (ŵ − w)² / Σ d w² over the tensor.
    public var weightedError: Double
    /// Σ d (ŵ − w)² over the tensor (d ≡ 1 without curvature).
    public var squaredError: Double
    public var zeroFraction: Double
    public var shape: [Int]

    public var tensorData: TensorData { .codebook(layout, levels: levels, codes: codes) }

    /// The quantized values, element by element.
    public var values: [Float] {
        CodebookTensor(layout: layout, shape: shape, levels: levels, codes: codes).dequantized()
    }
}

/// Quantizes a model's kernels (Dense, convolution, recurrent and Embedding) in one pass,
/// weighting each tensor's projection with the curvature of its optimizer slot.
public enum ModelQuantizer {
    /// The weights quantized by default: every kernel of Dense, Conv1D/2D, DepthwiseConv2D,
    /// SimpleRNN/LSTM/GRU (input and recurrent; also inside Bidirectional) and Embedding tables.
    public static func isQuantizable(_ weight: Weight, in model: Model) -> Bool {
        spec(of: weight, in: model)?.quantizable ?? false
    }

    /// Gate blocks of a recurrent kernel (LSTM 4, GRU 3, including inside Bidirectional); 1 otherwise.
    public static func gateCount(of weight: Weight, in model: Model) -> Int {
        spec(of: weight, in: model)?.gates ?? 1
    }

    /// What the weight's layer kind says of it.
    static func spec(of weight: Weight, in model: Model) -> WeightSpec? {
        model.layer(named: weight.layer)?.kind.weights.first { $0.name == weight.shortName }
    }

    /// The curvature d of a weight: from its optimizer slot, or nil (d ≡ 1). A slot that cannot
    /// be a second moment (another element count, a negative or non-finite value: a damaged or
    /// crafted file) is ignored.
    public static func curvature(of weight: Weight, optimizer: OptimizerState?) -> [Float]? {
        guard let optimizer else { return nil }
        func valid(_ slot: OptimizerSlot) -> Bool {
            slot.values.count == weight.values.count && slot.values.allSatisfy { $0.isFinite && $0 >= 0 }
        }
        if let v = optimizer.slots.first(where: { $0.weight == weight.name && $0.slot == "v" }) {
            return valid(v) ? v.values.map { $0.squareRoot() + 1e-8 } : nil
        }
        if let u = optimizer.slots.first(where: { $0.weight == weight.name && $0.slot == "u" }) {
            return valid(u) ? u.values.map { $0 + 1e-8 } : nil
        }
        return nil
    }

    public static func curvatureSource(_ model: Model) -> CurvatureSource {
        guard let optimizer = model.optimizer else { return .none }
        return .optimizer(className: optimizer.className, iterations: optimizer.iterations, beta2: optimizer.beta2)
    }

    /// The codebook layout a method's codes use.
    public static func layout(for method: Method, axis: Int?) -> CodebookLayout {
        switch method {
        case .bc, .bwn, .lab: return .bits(1, levels: 2, axis: axis)
        case .twn, .late, .lata, .lat2e, .lat2a: return .base3(axis: axis)
        case let .laq(bits, _, _), let .rtn(bits): return .bits(bits, levels: (1 << bits) - 1, axis: axis)
        case let .dorefa(bits): return .bits(bits, levels: 1 << bits, axis: axis)
        }
    }

    /// Refuses settings that name layers the model lacks, and a model with a NaN or an infinity
    /// (it makes every output NaN: nothing to quantize faithfully).
    static func check(_ model: Model, settings: QuantizationSettings) throws(QuantizeError) {
        let layerNames = Set(model.layers.map(\.name))
        for name in settings.skip.union(settings.overrides.keys) where !layerNames.contains(name) {
            throw .noSuchLayer(name)
        }
        for weight in model.weights {
            let nonFinite = weight.values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            guard nonFinite == 0 else { throw .nonFinite(weight: weight.name, count: nonFinite) }
        }
    }

    /// Quantizes every selected weight of `model`.
    public static func quantize(_ model: Model, settings: QuantizationSettings) throws(QuantizeError) -> [TensorQuantization] {
        try check(model, settings: settings)
        var results: [TensorQuantization] = []
        for weight in model.weights where isQuantizable(weight, in: model) {
            guard let method = settings.method(for: weight) else { continue }
            let d = curvature(of: weight, optimizer: model.optimizer)
            results.append(quantize(weight, method: method, d: d, perChannel: settings.perChannel, gates: gateCount(of: weight, in: model)))
        }
        return results
    }

    /// One tensor, per tensor or per output channel.
    ///
    /// - Parameters:
    ///   - gates: for recurrent kernels, the number of gate blocks along the last axis (LSTM 4,
    ///     GRU 3): each gate matrix gets its own scale, as in the paper's LSTM; the levels are
    ///     stored per column (axis = last), repeated for the columns of a gate.
    ///   - warm: the previous quantized values of this weight (alternating methods start from
    ///     their signs), or nil for the TWN start.
    public static func quantize(
        _ weight: Weight, method: Method, d: [Float]?, perChannel requested: Bool, gates: Int = 1, warm: [Float]? = nil
    ) -> TensorQuantization {
        let perChannel = requested && !weight.shape.isEmpty
        let columns = max(weight.shape.last ?? 1, 1)
        let byGate = !perChannel && gates > 1 && !weight.shape.isEmpty && columns % gates == 0
        let groupCount = perChannel ? columns : byGate ? gates : 1
        let count = weight.values.count
        var levels: [Float] = []
        var blockLevels: [[Float]] = []
        var codes = [UInt8](repeating: 0, count: count)
        var error = 0.0
        var norm = 0.0
        var zeros = 0
        for group in 0..<groupCount {
            // Elements of column c are c, c + C, c + 2C, … (the last axis varies fastest); a gate
            // block is `columns / gates` adjacent columns.
            let indices: [Int]
            if perChannel {
                indices = Array(stride(from: group, to: count, by: columns))
            } else if byGate {
                let width = columns / gates
                indices = (0..<count).filter { ($0 % columns) / width == group }
            } else {
                indices = Array(0..<count)
            }
            let w = indices.map { weight.values[$0] }
            let groupD = d.map { d in indices.map { d[$0] } }
            let groupWarm = warm.map { warm in indices.map { warm[$0] } }
            let group = Projection.quantize(method, w: w, d: groupD, warm: groupWarm)
            if byGate { blockLevels.append(group.levels) } else { levels += group.levels }
            for (position, index) in indices.enumerated() {
                codes[index] = group.codes[position]
                let value = Double(group.levels[Int(group.codes[position])])
                let weightD = Double(groupD?[position] ?? 1)
                error += weightD * (value - Double(w[position])) * (value - Double(w[position]))
                norm += weightD * Double(w[position]) * Double(w[position])
                if value == 0 { zeros += 1 }
            }
        }
        if byGate {
            // One table per column, each its gate's.
            let width = columns / gates
            levels = (0..<columns).flatMap { blockLevels[$0 / width] }
        }
        return TensorQuantization(
            weight: weight.name, layer: weight.layer, method: method,
            layout: layout(for: method, axis: perChannel || byGate ? weight.shape.count - 1 : nil), levels: levels, codes: codes,
            weightedError: norm > 0 ? error / norm : 0, squaredError: error, zeroFraction: count > 0 ? Double(zeros) / Double(count) : 0,
            shape: weight.shape)
    }
}
