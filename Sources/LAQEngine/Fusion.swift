/// Inference fusion. A ZeroPadding2D read only by a 2-D convolution, a depthwise convolution or
/// a `valid` max pooling is done by that layer: its windows take the margins as padding taps
/// (im2col writes the zeros the padding layer would have; the depthwise kernel skips the taps,
/// which adds nothing a zero tap would change; the max pooling takes them as zeros in their
/// place in tap order), and the padding layer passes its input on.
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
/// A convolution's block may end in a residual connection: its output (after the normalization
/// and ReLU it absorbed) read only by an `Add` of two inputs (ResNet's shortcut, MobileNetV2's
/// block input), and optionally the ReLU after the `Add`. The convolution then adds the other
/// input and applies that ReLU as it stores its output too, in the `Add`'s order of inputs, and
/// the `Add` and its ReLU pass that output on. Where the other input is computed after the
/// convolution (ResNet's first block of a stage lists its shortcut's normalization after the
/// branch's last convolution), the convolution and the layers it absorbs run later, just before
/// the `Add`: predictions run the calls in that order (``plan(model:ops:calls:masks:)``'s
/// `order`), which reads every tensor after the call that computes it as the model's does.
///
/// The arithmetic is the layers' own, in their order, so the outputs are bit for bit those of
/// the layers run one by one; fusion saves the passes over memory and the output buffers of the
/// layers it absorbs. It applies where nothing else reads the intermediate tensors: each layer
/// called once, the product's output read by the BatchNormalization only (and its output by the
/// activation only), neither a model output, and no mask on them or on the product's inputs.
/// ``Executor`` runs fused ops for predictions, and the layers one by one where every layer's
/// own output is asked for (``Executor/activations(_:)``).
enum Fusion {
    /// The ops that replace those of `ops` when fused, by layer name; for each absorbed layer the
    /// product layer that does its work; the inputs of a fused op where they are not its layer's
    /// call's (a residual connection's other input, after the convolution's own; the block's
    /// output alone, for the `Add` that passes it on); and the
    /// calls in the order to run them (`calls`, but for the blocks moved to their `Add`).
    static func plan(model: Model, ops: [String: any Op], calls: [LayerCall], masks: MaskPlan)
        -> (ops: [String: any Op], into: [String: String], inputs: [String: [TensorRef]], order: [LayerCall]) {
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
        // The position of each call in `calls`, and that of the call that computes each tensor.
        var positions: [LayerCall: Int] = [:]
        var computedAt: [TensorRef: Int] = [:]
        for (position, call) in calls.enumerated() {
            positions[call] = position
            computedAt[model.output(of: call)] = position
        }
        var fused: [String: any Op] = [:]
        var into: [String: String] = [:]
        var fusedInputs: [String: [TensorRef]] = [:]
        // The Add not yet absorbed that alone reads `call`'s output: its position, its other
        // input, where that is computed, and the index of `call`'s output among its two inputs.
        func residualAdd(of call: LayerCall) -> (position: Int, other: TensorRef, computed: Int, index: Int)? {
            let ref = model.output(of: call)
            guard readers[ref] == 1, !outputs.contains(ref), !masks.carried.contains(ref), let add = readBy[ref], callCount[add.layer] == 1,
                  into[model.layers[add.layer].name] == nil, let op = ops[model.layers[add.layer].name], op.addsTwoTensors,
                  model.maskInput(of: add) == nil else { return nil }
            let inputs = model.inputs(of: add)
            guard inputs.count == 2, !masks.sees(add, inputs), let index = inputs.firstIndex(of: ref), let position = positions[add],
                  let computed = computedAt[inputs[1 - index]] else { return nil }
            return (position, inputs[1 - index], computed, index)
        }
        // The calls moved to run just before an Add, by the Add's position, and every moved call's position.
        var movedBefore: [Int: [Int]] = [:]
        var moved: Set<Int> = []
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
            } else if var pooling = ops[readerName] as? PoolingOp, !pooling.average, !pooling.same, pooling.spatial == 2,
                      pooling.padding.isNone {
                // A `valid` max pooling over the padded image: its taps on the margins take part
                // as the zeros the padding layer would have written, in their place in tap order.
                pooling.padding = padding
                fused[readerName] = pooling
            } else {
                continue
            }
            fused[name] = PassOp()
            into[name] = readerName
        }
        // The layers a product's fused op `name` absorbs, with the ops that replace them.
        func absorb(_ absorbed: [(name: String, op: any Op)], into name: String) {
            for (layer, op) in absorbed {
                fused[layer] = op
                into[layer] = name
            }
        }
        // Two passes: the first leaves the products whose residual Add would move them (the
        // other input's block may take that Add where it is), the second fuses what is left.
        var handled: Set<Int> = []
        for moving in [false, true] {
            for (position, call) in calls.enumerated() where callCount[call.layer] == 1 && !handled.contains(position) {
                let name = model.layers[call.layer].name
                // The fused op runs without masks: the product's call must see none.
                // (A convolution may carry a folded padding already.)
                guard let product = (fused[name] ?? ops[name]) as? any ProductOp, product.activation == .linear,
                      model.maskInput(of: call) == nil, !masks.sees(call, model.inputs(of: call)) else { continue }
                var next = soleReader(of: call)
                var tail = call  // the last call whose work the fused op does
                var chain = [position]  // the positions of the product's call and of those it absorbs
                var normalization: BatchNormalizationOp?
                var absorbed: [(name: String, op: any Op)] = []
                if let reader = next, let op = ops[model.layers[reader.layer].name] as? BatchNormalizationOp {
                    normalization = op
                    absorbed.append((model.layers[reader.layer].name, PassOp()))
                    tail = reader
                    chain += positions[reader].map { [$0] } ?? []
                    next = soleReader(of: reader)
                }
                var activation: ActivationOp.Kind?
                if let reader = next, let op = ops[model.layers[reader.layer].name] as? ActivationOp {
                    activation = op.kind
                    absorbed.append((model.layers[reader.layer].name, PassOp()))
                    tail = reader
                    chain += positions[reader].map { [$0] } ?? []
                }
                // A convolution with a BatchNormalization (or none) and the ReLU after it (or none,
                // or none without the normalization), then a residual Add, and the ReLU after that.
                if var convolution = product as? ConvolutionOp, normalization.map({ $0.scale.count == convolution.filters }) ?? true,
                   activation == nil || (normalization != nil && activation?.followingReLU != nil),
                   let (addPosition, other, computed, index) = residualAdd(of: tail) {
                    guard computed < position || moving else { continue }
                    handled.insert(position)
                    let add = calls[addPosition]
                    if computed > position {
                        // The other input comes later: the block runs just before the Add.
                        movedBefore[addPosition] = chain
                        moved.formUnion(chain)
                    }
                    // The ReLU after the Add, when one alone reads it.
                    let reader = soleReader(of: add)
                    let after = reader.flatMap { ops[model.layers[$0.layer].name] as? ActivationOp }.map(\.kind).flatMap { $0.followingReLU == nil ? nil : $0 }
                    let connection = FusedResidual(first: index == 1, activation: after, add: model.layers[add.layer].name)
                    // The Add passes the block's output on, reading nothing else: the other
                    // input's last reader in a prediction is then the convolution, which may
                    // write its output over it (``ExecutionPlan/Step/overwrites``).
                    absorbed.append((model.layers[add.layer].name, PassOp()))
                    fusedInputs[model.layers[add.layer].name] = [model.output(of: tail)]
                    if let reader, connection.activation != nil { absorbed.append((model.layers[reader.layer].name, PassOp())) }
                    convolution.normalization = normalization.map {
                        FusedNormalization(scale: $0.scale, shift: $0.shift, relu: activation?.followingReLU ?? .none)
                    }
                    convolution.residual = connection
                    fused[name] = convolution
                    fusedInputs[name] = model.inputs(of: call) + [other]
                    absorb(absorbed, into: name)
                    continue
                }
                handled.insert(position)
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
                absorb(absorbed, into: name)
            }
        }
        var order: [LayerCall] = []
        for (position, call) in calls.enumerated() where !moved.contains(position) {
            order += (movedBefore[position] ?? []).map { calls[$0] } + [call]
        }
        return (fused, into, fusedInputs, order)
    }
}

extension Op {
    /// Whether this is an `Add` of tensors (the layer, or Keras 3's `+` between two tensors).
    var addsTwoTensors: Bool {
        if let merge = self as? MergeOp { return merge.kind == .add }
        if let op = self as? OperatorOp { return op.merge.kind == .add && op.operands.allSatisfy { $0 == nil } }
        return false
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

/// A residual connection's `Add` of a convolution's output and an earlier tensor, and the ReLU
/// after it (nil for none), applied by the convolution (``ConvolutionOp/residual``) to the other
/// input it is given. `first`: the other input is the `Add`'s first (it adds other + output).
struct FusedResidual: Sendable {
    let first: Bool
    let activation: ActivationOp.Kind?
    /// The activation as the epilogue applies it.
    let relu: Elementwise.FollowingReLU
    /// The `Add` layer's name (for its errors).
    let add: String

    /// `activation`: a ReLU (the epilogue applies ReLUs only), or nil.
    init(first: Bool, activation: ActivationOp.Kind?, add: String) {
        let relu = activation.map { $0.followingReLU } ?? Elementwise.FollowingReLU.none
        precondition(relu != nil, "a residual connection's activation must be a ReLU")
        self.first = first
        self.activation = activation
        self.relu = relu ?? .none
        self.add = add
    }
}

/// A layer whose work a fused op before it did: its input (the one at `input`, the fused op's
/// output) is its output.
struct PassOp: Op {
    var input = 0
    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor { inputs[input] }
}
