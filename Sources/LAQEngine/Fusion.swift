/// Inference fusion. A ZeroPadding2D read only by a 2-D convolution or depthwise convolution
/// is done by the convolution: its windows take the margins as padding taps (im2col writes the
/// zeros the padding layer would have; the depthwise kernel skips the taps, which adds nothing
/// a zero tap would change), and the padding layer passes its input on.
///
/// A product layer (Dense, a convolution, a depthwise convolution) without
/// an activation of its own, followed by an inference BatchNormalization and then an
/// activation layer, as Keras' CNNs build their blocks (`Conv2D` → `BatchNormalization` →
/// `ReLU(6)` in MobileNetV2, → `Activation("relu")` in ResNet50), runs as one op: the product,
/// then y = z·scale + shift and the activation in place on the product's own output, in one
/// pass where the activation is a ReLU; a convolution or depthwise convolution does the
/// normalization and its ReLU as it stores its output. The BatchNormalization and activation
/// layers then pass that output on unchanged. Either of the two may be absent (product → BatchNormalization, or
/// product → activation).
///
/// The arithmetic is the layers' own, in their order, so the outputs are bit for bit those of
/// the layers run one by one; fusion saves the passes over memory and the output buffers of the
/// layers it absorbs. It applies where nothing else reads the intermediate tensors: each layer
/// called once, the product's output read by the BatchNormalization only (and its output by the
/// activation only), neither a model output, and no mask on them or on the product's inputs.
/// ``Executor`` runs fused ops for predictions, and the layers one by one where every layer's
/// own output is asked for (``Executor/activations(_:)``).
enum Fusion {
    /// The ops that replace those of `ops` when fused, by layer name, and for each absorbed layer
    /// the product layer that does its work.
    static func plan(model: Model, ops: [String: any Op], calls: [LayerCall], masks: MaskPlan) -> (ops: [String: any Op], into: [String: String]) {
        // How many calls read each tensor (as an input or as a mask), and how often each layer is called.
        var readers: [TensorRef: Int] = [:]
        var callCount: [Int: Int] = [:]
        var readBy: [TensorRef: LayerCall] = [:]
        for call in calls {
            callCount[call.layer, default: 0] += 1
            for ref in model.inputs(of: call) + (model.maskInput(of: call).map { [$0] } ?? []) {
                readers[ref, default: 0] += 1
                readBy[ref] = call
            }
        }
        let outputs = Set(model.outputs.map { TensorRef(layer: $0.layer, node: $0.node) })
        // The single call that reads `call`'s output, when the output is private to it.
        func soleReader(of call: LayerCall) -> LayerCall? {
            let ref = model.output(of: call)
            guard readers[ref] == 1, !outputs.contains(ref), !masks.carried.contains(ref), let reader = readBy[ref],
                  callCount[reader.layer] == 1, model.inputs(of: reader) == [ref], model.maskInput(of: reader) == nil else { return nil }
            return reader
        }
        var fused: [String: any Op] = [:]
        var into: [String: String] = [:]
        // A ZeroPadding2D read only by a 2-D convolution or depthwise convolution: the
        // convolution pads (its windows' padding taps), the padding layer passes its input on.
        for call in calls where callCount[call.layer] == 1 {
            let name = model.layers[call.layer].name
            guard let shift = ops[name] as? SpatialShiftOp, let padding = shift.folded, model.maskInput(of: call) == nil,
                  !masks.sees(call, model.inputs(of: call)), let reader = soleReader(of: call) else { continue }
            let readerName = model.layers[reader.layer].name
            if var convolution = ops[readerName] as? ConvolutionOp, convolution.spatial == 2, convolution.padding.isNone {
                convolution.padding = padding
                fused[readerName] = convolution
            } else if var depthwise = ops[readerName] as? DepthwiseOp, depthwise.padding.isNone,
                      depthwise.kernel.allSatisfy(\.isFinite) {
                // Skipping a tap adds nothing where a zero tap adds ±0 to a sum that starts at +0
                // and so is never −0: the same bits, unless a weight is infinite (∞ · 0 = NaN).
                depthwise.padding = padding
                fused[readerName] = depthwise
            } else {
                continue
            }
            fused[name] = PassOp()
            into[name] = readerName
        }
        for call in calls where callCount[call.layer] == 1 {
            let name = model.layers[call.layer].name
            // The fused op runs without masks: the product's call must see none.
            // (A convolution may carry a folded padding already.)
            guard let product = (fused[name] ?? ops[name]) as? any ProductOp, product.activation == .linear,
                  model.maskInput(of: call) == nil, !masks.sees(call, model.inputs(of: call)) else { continue }
            var next = soleReader(of: call)
            var normalization: BatchNormalizationOp?
            var absorbed: [String] = []
            if let reader = next, let op = ops[model.layers[reader.layer].name] as? BatchNormalizationOp {
                normalization = op
                absorbed.append(model.layers[reader.layer].name)
                next = soleReader(of: reader)
            }
            var activation: ActivationOp.Kind?
            if let reader = next, let op = ops[model.layers[reader.layer].name] as? ActivationOp {
                activation = op.kind
                absorbed.append(model.layers[reader.layer].name)
            }
            guard !absorbed.isEmpty else { continue }
            // A convolution or depthwise convolution applies a normalization and a ReLU after it
            // itself, as it stores each tile or block of channels (one pass fewer over memory).
            let relu = activation.map { $0.followingReLU } ?? Elementwise.FollowingReLU.none
            let fusedNormalization = normalization.flatMap { op in relu.map { FusedNormalization(scale: op.scale, shift: op.shift, relu: $0) } }
            if var convolution = product as? ConvolutionOp, let fusedNormalization, fusedNormalization.scale.count == convolution.filters {
                convolution.normalization = fusedNormalization
                fused[name] = convolution
            } else if var depthwise = product as? DepthwiseOp, let fusedNormalization,
                      fusedNormalization.scale.count * depthwise.kernelSize.reduce(1, *) == depthwise.kernel.count {
                depthwise.normalization = fusedNormalization
                fused[name] = depthwise
            } else {
                fused[name] = EpilogueOp(product: product, normalization: normalization, activation: activation)
            }
            for layer in absorbed {
                fused[layer] = PassOp()
                into[layer] = name
            }
        }
        return (fused, into)
    }
}

extension SpatialShiftOp {
    /// The padding, when this op is a ZeroPadding2D (zeros before and after both spatial axes).
    var folded: FoldedPadding? {
        guard spatial == 2, offset.count == 2, extra.count == 2, zip(offset, extra).allSatisfy({ $0 >= 0 && $1 >= $0 }) else { return nil }
        return FoldedPadding(rows: .init(before: offset[0], after: extra[0] - offset[0]),
                             columns: .init(before: offset[1], after: extra[1] - offset[1]))
    }
}

/// An op whose output is a new buffer holding a product (plus bias) and its own activation:
/// what ``Fusion`` can extend in place.
protocol ProductOp: Op {
    var activation: Activation { get }
}

extension DenseOp: ProductOp {}
extension ConvolutionOp: ProductOp {}
extension DepthwiseOp: ProductOp {}

extension ActivationOp {
    /// Applies the activation to `x` in place (as ``forward(_:workspace:)`` computes it).
    func apply(_ x: inout Tensor) {
        switch kind {
        case let .function(activation) where activation == .relu: Elementwise.relu(&x.data)
        case let .function(activation): activation.apply(&x.data, width: x.lastDimension)
        case let .relu(maxValue, slope, threshold):
            Elementwise.relu(&x.data, threshold: threshold, slope: slope, ceiling: maxValue ?? .infinity)
        }
    }
}

extension ActivationOp.Kind {
    /// The activation as a ReLU that can follow an affine map in its pass, when it is one.
    var followingReLU: Elementwise.FollowingReLU? {
        switch self {
        case let .function(activation): activation == .relu ? .max0 : nil
        case let .relu(maxValue, slope, threshold): .relu(threshold: threshold, slope: slope, ceiling: maxValue ?? .infinity)
        }
    }
}

/// A product, then a BatchNormalization's y = z·scale + shift and an activation, in place on the
/// product's output (``Fusion``).
struct EpilogueOp: Op {
    let product: any ProductOp
    let normalization: BatchNormalizationOp?
    let activation: ActivationOp.Kind?

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        var y = try product.forward(inputs, workspace: workspace)
        if let normalization {
            let channels = normalization.scale.count
            guard y.lastDimension == channels else {
                throw .shape(layer: normalization.name, reason: "input has \(y.lastDimension) channels, expected \(channels)")
            }
            // A ReLU joins the affine map's pass.
            let relu = activation?.followingReLU
            Elementwise.scaleShift(&y.data, scale: normalization.scale, shift: normalization.shift, then: relu ?? .none)
            if relu != nil { return y }
        }
        if let activation { ActivationOp(kind: activation).apply(&y) }
        return y
    }
}

/// An inference BatchNormalization, y = z·scale + shift, and the ReLU after it (`.none` for none),
/// applied by the product layer before it (``ConvolutionOp/normalization``,
/// ``DepthwiseOp/normalization``).
struct FusedNormalization: Sendable {
    let scale: [Float]
    let shift: [Float]
    let relu: Elementwise.FollowingReLU
}

/// A layer whose work a fused op before it did: its input is its output.
struct PassOp: Op {
    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { inputs[0] }
}
