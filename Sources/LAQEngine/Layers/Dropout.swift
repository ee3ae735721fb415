import Foundation
import LAQFormat

/// Keras' `Dropout`: identity in inference; in training, keeps each value with probability
/// 1 − rate and scales kept values by 1/(1 − rate).
public struct DropoutLayer: KeepsMask {
    public var keepsSamplesApart: Bool { true }
    let rate: Double
    /// Keras' `noise_shape`: a mask dimension of 1 is shared along that axis (EfficientNet's
    /// stochastic depth drops whole samples with (None, 1, 1, 1)); nil entries follow the input.
    let noiseShape: [Int?]?

    public init(_ options: LayerOptions) throws(ModelError) {
        rate = try options.double("rate", default: 0)
        guard rate >= 0, rate < 1 else { throw options.unsupported("rate \(rate) (must be in [0, 1))") }
        switch options.value("noise_shape") {
        case nil: noiseShape = nil
        case let .array(items)?:
            var shape: [Int?] = []
            for item in items {
                switch item {
                case .null: shape.append(nil)
                case let .int(value) where value >= 0: shape.append(Int(value))
                default: throw options.unsupported("noise_shape \(items)")
                }
            }
            noiseShape = shape
        default: throw options.unsupported("a noise_shape that is not a list")
        }
        options.ignore("seed")  // laq's training draws its masks from its own seeded generator
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        if let noiseShape {
            guard noiseShape.count == input.count, zip(noiseShape, input).allSatisfy({ $0 == nil || $0 == 1 || $1 == nil || $0 == $1 }) else {
                throw .shapeMismatch(layer: layer, reason: "noise_shape \(noiseShape) does not broadcast to the input \(ShapeRules.describe(input))")
            }
        }
        return input
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { DropoutOp(rate: Float(rate), noiseShape: noiseShape) }
}

/// Dropout's computation.
struct DropoutOp: TrainableOp {
    let rate: Float
    var noiseShape: [Int?]? = nil

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { tensors[0] }

    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let x = inputs[0]
        guard rate > 0 else { return ForwardRecord(inputs: inputs, output: x) }
        let scale = 1 / (1 - rate)
        var mask = workspace.floats(x.count)
        var y = workspace.floats(x.count)
        if let noiseShape, noiseShape.count == x.rank, noiseShape.contains(1) {
            // One draw per element of the noise shape, shared along its axes of size 1.
            let noise = zip(noiseShape, x.shape).map { $0 == 1 ? 1 : $1 }
            var draws = [Float](repeating: 0, count: noise.reduce(1, *))
            for i in draws.indices { draws[i] = random.uniform() >= rate ? scale : 0 }
            Broadcast.forEach(x.shape, strides: [Broadcast.strides(of: noise, in: x.shape)]) { i, offsets in mask[i] = draws[offsets[0]] }
        } else {
            for i in mask.indices { mask[i] = random.uniform() >= rate ? scale : 0 }
        }
        Elementwise.combine(x.data, mask, into: &y, .multiply)
        return ForwardRecord(inputs: inputs, output: Tensor(shape: x.shape, data: y), extra: mask)
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        guard !record.extra.isEmpty else { return LayerGradients(inputs: [gradOutput], weights: [:]) }
        var grad = workspace.floats(gradOutput.count)
        Elementwise.combine(gradOutput.data, record.extra, into: &grad, .multiply)
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: grad)], weights: [:])
    }
}
