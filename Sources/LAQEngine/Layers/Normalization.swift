import LAQFormat

/// Keras' `Normalization` (a preprocessing layer): y = (x − mean)/max(√variance, ε) per channel of
/// the last axis (or with one mean and variance for every element when `axis` is None/empty),
/// ε = 1e-7, Keras' `backend.epsilon()`; with `invert`, x·max(√variance, ε) + mean. The
/// statistics come from the config when given there, else from the weights `adapt()` filled
/// (`mean`, `variance` and an element `count`, none of them trainable).
public struct NormalizationLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    /// The axes kept (not reduced), as written (absent: Keras' default, the last); empty: one
    /// mean and variance.
    let axes: [Int]
    let invert: Bool
    /// Statistics given in the config, flattened; nil when they are weights.
    let configMean: [Float]?
    let configVariance: [Float]?

    static let epsilon: Float = 1e-7

    public init(_ options: LayerOptions) throws(ModelError) {
        // Keras writes the kept axes as a list: [] for axis=None (one mean and variance).
        axes = try NormalizationAxis(options).axes ?? [-1]
        guard axes.count <= 1 else { throw options.unsupported("normalization keeping several axes (\(axes))") }
        invert = try options.bool("invert", default: false)
        func statistics(_ key: String) throws(ModelError) -> [Float]? {
            switch options.value(key) {
            case nil: return nil
            case let .double(v)?: return [Float(v)]
            case let .int(v)?: return [Float(v)]
            case let .array(items)?:
                var values: [Float] = []
                for item in items {
                    switch item {
                    case let .double(v): values.append(Float(v))
                    case let .int(v): values.append(Float(v))
                    default: throw options.unsupported("a nested \(key)")
                    }
                }
                return values
            case let other?: throw options.unsupported("\(key) \(other)")
            }
        }
        configMean = try statistics("mean")
        configVariance = try statistics("variance")
        guard (configMean == nil) == (configVariance == nil), configMean?.count == configVariance?.count else {
            throw options.unsupported("a mean and a variance that do not match")
        }
    }

    public var weights: [WeightSpec] {
        configMean != nil ? [] : [WeightSpec("mean", trainable: false), WeightSpec("variance", trainable: false), WeightSpec("count", trainable: false)]
    }

    /// The number of statistics for an input of rank `rank` whose last size is `last`.
    func channels(rank: Int, last: Int?, layer: String) throws(ModelError) -> Int? {
        guard let axis = axes.first else { return 1 }
        guard axis == -1 || axis == rank - 1 else {
            throw .unsupportedOption(layer: layer, className: "Normalization", option: "normalization keeping axis \(axis) of a rank-\(rank) input (only the last)")
        }
        return last
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        let count = try channels(rank: input.count, last: input.last ?? nil, layer: layer)
        if let configMean, configMean.count != 1, let count, configMean.count != count {
            throw .shapeMismatch(layer: layer, reason: "\(configMean.count) means for \(count) channels")
        }
        return input
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard configMean == nil, let input = inputs.first else { return [:] }
        if axes.isEmpty { return ["mean": [], "variance": [], "count": []] }
        guard let last = input.last ?? nil else { return ["count": []] }
        return ["mean": [last], "variance": [last], "count": []]
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        var mean = configMean ?? [], variance = configVariance ?? []
        if configMean == nil {
            mean = try context.weight("mean").values
            variance = try context.weight("variance").values
        }
        return NormalizationOp(name: context.layer.name, mean: mean,
                               scale: variance.map { max($0.squareRoot(), Self.epsilon) }, invert: invert)
    }
}

/// Normalization's computation: y = (x − mean)/scale, or x·scale + mean inverted, with one
/// mean and scale, or one per channel of the last axis.
struct NormalizationOp: Op, TrainableOp {
    let name: String
    let mean: [Float]
    /// max(√variance, ε).
    let scale: [Float]
    let invert: Bool

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var x = tensors[0]
        let width = try channels(x)
        x.data = Matrix.copy(x.data, workspace: workspace)
        let (mean, scale, invert) = (self.mean, self.scale, self.invert)
        for i in x.data.indices {
            let c = mean.count == 1 ? 0 : i % width
            x.data[i] = invert ? x.data[i] * scale[c] + mean[c] : (x.data[i] - mean[c]) / scale[c]
        }
        return x
    }

    /// ∂L/∂x = ∂L/∂y / scale (inverted: · scale).
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let width = try channels(gradOutput)
        var dx = Matrix.copy(gradOutput.data, workspace: workspace)
        let (scale, invert) = (self.scale, self.invert)
        for i in dx.indices {
            let c = scale.count == 1 ? 0 : i % width
            dx[i] = invert ? dx[i] * scale[c] : dx[i] / scale[c]
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: [:])
    }

    private func channels(_ x: Tensor) throws(EngineError) -> Int {
        let width = x.lastDimension
        guard mean.count == scale.count, mean.count == 1 || mean.count == width, width > 0 || x.count == 0 else {
            throw .shape(layer: name, reason: "\(mean.count) means and \(scale.count) variances for \(width) channels")
        }
        return max(width, 1)
    }
}
