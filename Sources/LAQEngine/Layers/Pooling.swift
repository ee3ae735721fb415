import Foundation
import LAQFormat

/// Keras' `MaxPooling1D/2D` and `AveragePooling1D/2D`. Average pooling with `same` padding
/// divides by the number of real (unpadded) elements in the window, as TensorFlow does.
public struct PoolingLayer: LayerKind {
    public var keepsSamplesApart: Bool { true }
    let window: SlidingWindow
    let average: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        window = try SlidingWindow(pooling: options, spatial: options.className.contains("1D") ? 1 : 2)
        average = options.className.hasPrefix("Av")
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        return try window.outputShape(input, channels: input.last ?? nil, layer: layer)
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { PoolingOp(name: context.layer.name, window: window, average: average) }
}

/// Pooling's computation.
struct PoolingOp: Op {
    let name: String
    let spatial: Int
    let average: Bool
    let pool: [Int]
    let strides: [Int]
    let same: Bool
    /// Zeros around the input that a ZeroPadding2D before this max pooling added (inference,
    /// ``Fusion``): its windows' taps on them take part as zeros.
    var padding = FoldedPadding()

    init(name: String, window: SlidingWindow, average: Bool) {
        self.name = name
        spatial = window.spatial
        self.average = average
        pool = window.kernel2
        strides = window.strides2
        same = window.same
    }

    /// Pools every window: the average over its taps inside the image, or their maximum (−∞ for
    /// a window with none). `counts`: taps per output position; with `keepMaximum`, `maximum`
    /// holds for each output value the input index of its first maximal tap (−1: none). Max
    /// pooling's buffers come from `workspace` when given.
    func pool(_ x: Tensor, _ g: Geometry, _ rows: Window, _ cols: Window, keepMaximum: Bool, workspace: Workspace? = nil)
        -> (output: [Float], counts: [Int], maximum: [Int]) {
        let average = self.average
        let positions = g.batch * rows.output * cols.output
        let channels = g.channels
        if !average {
            // Max pooling: one C pass, branch-free over channels (counts are not needed).
            var output = Matrix.uninitialized(positions * channels, workspace: workspace)
            var maximum: [Int]? = keepMaximum ? workspace?.indices(positions * channels) ?? Storage.uninitialized(positions * channels) : nil
            guard positions > 0, channels > 0 else { return (output, [], maximum ?? []) }
            WindowKernels.maxPool(x.data, batch: g.batch, height: g.height, width: g.width, channels: channels, rows: rows, cols: cols,
                                  zeroMargins: !padding.isNone, into: &output, argmax: &maximum)
            return (output, [], maximum ?? [])
        }
        var output = Matrix.zeros(positions * channels, workspace: workspace)
        var counts = workspace?.indices(positions) ?? [Int](repeating: 0, count: positions)
        if workspace != nil { Matrix.fill(&counts, with: 0) }
        guard positions > 0, channels > 0, !x.data.isEmpty else { return (output, counts, []) }
        WindowKernels.poolSums(x.data, g, rows: rows, cols: cols, into: &output, counts: &counts)
        for position in 0..<positions where counts[position] > 0 {
            for c in 0..<channels { output[position * channels + c] /= Float(counts[position]) }
        }
        return (output, counts, [])
    }

    /// The input's geometry and the pooling windows along its rows and columns.
    func windows(_ x: Tensor) throws(EngineError) -> (Geometry, Window, Window) {
        let g = try Geometry(x, spatial: spatial, layer: name)
        let rows = Window(input: g.height, kernel: pool[0], stride: strides[0], dilation: 1, same: same && spatial == 2, margins: padding.rows)
        let cols = Window(input: g.width, kernel: pool[1], stride: strides[1], dilation: 1, same: same, margins: padding.columns)
        return (g, rows, cols)
    }

    func outputShape(_ g: Geometry, _ rows: Window, _ cols: Window) -> [Int] {
        spatial == 2 ? [g.batch, rows.output, cols.output, g.channels] : [g.batch, cols.output, g.channels]
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let (g, rows, cols) = try windows(x)
        var pooled = pool(x, g, rows, cols, keepMaximum: false, workspace: workspace)
        workspace?.recycle(&pooled.counts)
        return Tensor(shape: outputShape(g, rows, cols), data: pooled.output)
    }
}

extension PoolingOp: TrainableOp {
    /// Keeps for the backward pass, in `indices`: max pooling, the input index each output came
    /// from; average pooling, each window's number of taps inside the image.
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let x = inputs[0]
        let (g, rows, cols) = try windows(x)
        let pooled = pool(x, g, rows, cols, keepMaximum: !average, workspace: workspace)
        var record = ForwardRecord(inputs: inputs, output: Tensor(shape: outputShape(g, rows, cols), data: pooled.output))
        record.indices = average ? pooled.counts : pooled.maximum
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let (g, rows, cols) = try windows(x)
        var dx = workspace.zeros(x.count)
        if !average {
            // The first maximum takes the gradient, as TensorFlow's max pooling does.
            WindowKernels.maxPoolGradient(gradOutput.data, argmax: record.indices, images: g.batch, into: &dx)
            return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
        }
        let counts = record.indices
        if !dx.isEmpty, !counts.isEmpty, !gradOutput.data.isEmpty {
            // Each tap inside the image gets an equal share of its window's gradient.
            WindowKernels.poolSumsGradient(gradOutput.data, g, rows: rows, cols: cols, counts: counts, into: &dx)
        }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: [:])
    }
}
