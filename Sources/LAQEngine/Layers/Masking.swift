import LAQFormat

// Keras' implicit masks. A layer may attach a mask to its output tensor (Keras'
// `_keras_mask`): one flag per position of the tensor's leading axes, usually per time step of
// a (batch, time, features) sequence. `Embedding(mask_zero=True)` masks the positions whose
// index is 0 and `Masking` those whose features all equal its `mask_value`. Keras passes the
// mask of a call's input to the layers whose call reads one (recurrent layers skip masked steps,
// `GlobalAveragePooling1D` averages the unmasked ones, attention ignores masked keys), and
// layers that support masking pass it on (Dense, Dropout, normalization, activations; merges
// combine their inputs' masks). A layer without mask support ignores it and passes none on.
//
// Keras 3 also records, for a layer whose call takes `mask=` (recurrent layers, pooling), the
// mask it passed as a tensor of the graph, computed by operations on tensors (`not_equal`,
// `any`, `logical_or`, …, ``ReductionOperatorKind``): such a call uses that tensor
// (``Layer/maskInput``). And Keras ≥ 3.8's MultiHeadAttention deletes the implicit masks of its
// query, value and key tensors when it runs, so the layers Keras runs after it see them
// unmasked (``Model/maskPlan()``).
//
// laq represents a mask as a ``Tensor`` of 1 (keep) and 0 (masked) with the shape of the
// positions it flags. Which tensors carry one is decided by the graph alone
// (``Model/maskPlan()``), so a model whose masks reach a layer that would use them in a way
// laq does not compute is refused at import, by name; at run time only those masks are made.

/// A kind whose output carries the mask of its first input (Keras' `supports_masking` with its
/// default `compute_mask`): the layer neither reads nor changes it.
public protocol KeepsMask: LayerKind {}

extension KeepsMask {
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { masked.first ?? false }
    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? { masks.first ?? nil }
}

extension Model {
    /// The Keras version that saved the model, as (major, minor), when the source says.
    public var kerasVersion: (major: Int, minor: Int)? {
        guard let version = source.kerasVersion else { return nil }
        let parts = version.split(separator: ".").prefix(2).map { Int($0.prefix { $0.isNumber }) }
        guard parts.count == 2, let major = parts[0], let minor = parts[1] else { return nil }
        return (major, minor)
    }

    /// Whether Keras ≥ 3 saved the model (or the source does not say).
    public var savedByKeras3: Bool { (kerasVersion?.major ?? 3) >= 3 }

    /// Which tensors carry an implicit mask (``Masking``) and which calls see it; throws when a
    /// mask reaches a layer that would use it in a way laq does not compute.
    public func maskPlan() throws(ModelError) -> MaskPlan {
        let calls = try calls()
        let keras3 = savedByKeras3
        // Keras ≥ 3.8's MultiHeadAttention deletes the masks of its query, value and key tensors
        // when it runs: the layers that run after it see those tensors unmasked.
        var clearing: [(call: LayerCall, refs: Set<TensorRef>)] = []
        if keras3, (kerasVersion.map { $0.major > 3 || $0.minor >= 8 } ?? true) {
            for call in calls {
                guard let attention = layers[call.layer].kind as? MultiHeadAttentionLayer else { continue }
                let inputs = self.inputs(of: call)
                let slots = [attention.slots.query, attention.slots.value] + (attention.slots.key.map { [$0] } ?? [])
                clearing.append((call, Set(slots.filter { $0 < inputs.count }.map { inputs[$0] })))
            }
        }
        let depths = clearing.isEmpty ? [:] : kerasDepths(calls)
        var plan = MaskPlan()
        for call in calls {
            let layer = layers[call.layer]
            guard !layer.inbound.isEmpty else { continue }
            let refs = self.inputs(of: call)
            var hidden = Set<TensorRef>()
            for (attention, cleared) in clearing where attention != call {
                for ref in refs where cleared.contains(ref) && plan.carried.contains(ref) {
                    // Keras runs its graph by decreasing depth (longest path to an output).
                    guard let mine = depths[call], let theirs = depths[attention] else { continue }
                    if theirs > mine { hidden.insert(ref) }
                    if theirs == mine {
                        throw .unsupportedOption(layer: layer.name, className: layer.className, option: "an input with an implicit mask that MultiHeadAttention '\(layers[attention.layer].name)' deletes in an order Keras leaves open (pass the mask explicitly)")
                    }
                }
            }
            if !hidden.isEmpty { plan.hidden[call] = hidden }
            var inputs = refs.map { plan.carried.contains($0) && !hidden.contains($0) }
            if maskInput(of: call) != nil, !inputs.isEmpty { inputs[0] = true }
            if let block = layer.maskFreeBlock, inputs.contains(true) {
                throw .unsupportedOption(layer: block.name, className: block.className, option: "an input that carries a Keras mask (pass the padding mask explicitly)")
            }
            if try layer.kind.carriesMask(inputs, layer: layer.name, keras3: keras3) { plan.carried.insert(output(of: call)) }
        }
        return plan
    }

    /// Each call's depth in Keras' functional graph: the longest path from it to a model output
    /// (outputs 0), the order in which Keras runs the graph (deepest first). Calls that reach no
    /// output have none.
    func kerasDepths(_ calls: [LayerCall]) -> [LayerCall: Int] {
        var producer: [TensorRef: LayerCall] = [:]
        for call in calls { producer[output(of: call)] = call }
        var depths: [LayerCall: Int] = [:]
        for ref in outputs { if let call = producer[TensorRef(layer: ref.layer, node: ref.node)] { depths[call] = 0 } }
        for call in calls.reversed() {
            guard let depth = depths[call] else { continue }
            let layer = layers[call.layer]
            for ref in layer.inbound.isEmpty ? [] : layer.inbound[call.node] {
                guard let source = producer[ref] else { continue }
                depths[source] = max(depths[source] ?? 0, depth + 1)
            }
        }
        return depths
    }
}

/// Which tensors carry implicit masks (``Model/maskPlan()``).
public struct MaskPlan: Sendable {
    /// The outputs whose mask is computed.
    public var carried: Set<TensorRef> = []
    /// For a call, inputs whose mask an attention layer deleted before it runs.
    public var hidden: [LayerCall: Set<TensorRef>] = [:]

    /// Whether `call` sees a mask on any of `refs`.
    func sees(_ call: LayerCall, _ refs: [TensorRef]) -> Bool {
        refs.contains { carried.contains($0) && hidden[call]?.contains($0) != true }
    }
}

enum MaskMath {
    /// A mask's flag at `index`.
    @inline(__always) static func keeps(_ mask: Tensor, _ index: Int) -> Bool { mask.data[index] != 0 }

    /// Checks that `mask` flags the leading axes of `shape` (all but the last `trailing`).
    static func check(_ mask: Tensor, covers shape: [Int], trailing: Int, layer: String) throws(EngineError) {
        guard shape.count >= trailing, mask.shape == Array(shape.dropLast(trailing)) else {
            throw .shape(layer: layer, reason: "a mask of shape \(mask.shape) for an input of shape \(shape)")
        }
    }

    /// Elementwise AND (`all`) or OR (`any`) of masks of one shape.
    static func combine(_ masks: [Tensor], any: Bool, layer: String) throws(EngineError) -> Tensor {
        var result = masks[0]
        for mask in masks.dropFirst() {
            guard mask.shape == result.shape else {
                throw .shape(layer: layer, reason: "masks of shapes \(result.shape) and \(mask.shape) to combine")
            }
            for i in result.data.indices {
                let a = result.data[i] != 0, b = mask.data[i] != 0
                result.data[i] = (any ? a || b : a && b) ? 1 : 0
            }
        }
        return result
    }
}

/// Keras' `Masking`: masks the positions (all axes but the last) whose features all equal
/// `mask_value`, and zeroes them.
public struct MaskingLayer: LayerKind {
    let maskValue: Float

    public init(_ options: LayerOptions) throws(ModelError) {
        maskValue = Float(try options.double("mask_value", default: 0))
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count >= 2 else { throw .shapeMismatch(layer: layer, reason: "Masking needs an input of rank ≥ 2") }
        return input
    }

    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { true }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? {
        Self.mask(inputs[0], value: maskValue)
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { MaskingOp(value: maskValue) }

    /// 1 where some feature differs from `value`: Keras' `any(inputs != mask_value, axis=-1)`.
    static func mask(_ x: Tensor, value: Float) -> Tensor {
        let width = x.lastDimension
        let positions = x.shape.dropLast().reduce(1, *)
        var flags = [Float](repeating: 0, count: positions)
        for p in 0..<positions where x.data[(p * width)..<((p + 1) * width)].contains(where: { $0 != value }) { flags[p] = 1 }
        return Tensor(shape: Array(x.shape.dropLast()), data: flags)
    }
}

/// Masking's computation: y = x where the position is kept, 0 where it is masked.
struct MaskingOp: Op {
    let value: Float

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let x = tensors[0]
        let mask = MaskingLayer.mask(x, value: value)
        var y = Tensor(shape: x.shape, data: Matrix.copy(x.data, workspace: workspace))
        let width = x.lastDimension
        for p in 0..<mask.count where mask.data[p] == 0 {
            for j in 0..<width { y.data[p * width + j] = 0 }
        }
        return y
    }
}

extension MaskingOp: TrainableOp {
    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let mask = MaskingLayer.mask(record.inputs[0], value: value)
        var dx = Matrix.copy(gradOutput.data, workspace: workspace)
        let width = gradOutput.lastDimension
        for p in 0..<mask.count where mask.data[p] == 0 {
            for j in 0..<width { dx[p * width + j] = 0 }
        }
        return LayerGradients(inputs: [Tensor(shape: gradOutput.shape, data: dx)], weights: [:])
    }
}
