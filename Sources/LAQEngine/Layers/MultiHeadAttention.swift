import Foundation
import LAQFormat

/// Keras' `MultiHeadAttention` on sequences: query (B, T, Dq), value (B, S, Dv) and key
/// (B, S, Dk, the value when not passed). With N heads of key size H and value size Hv:
///
///     Q = query·Wq + bq  (B, T, N, H)     K = key·Wk + bk  (B, S, N, H)     V = value·Wv + bv  (B, S, N, Hv)
///     A[b,n] = softmax_s( Q[b,:,n]·K[b,:,n]ᵀ / √H  where allowed, else −∞ )       (T, S)
///     O[b,:,n] = A[b,n] · V[b,:,n]                                                    (T, Hv)
///     output = O·Wo + bo    with Wo (N, Hv, out…)
///
/// A query position t may attend to key position s when every mask Keras combines allows it:
/// the `attention_mask` tensor (nonzero), the implicit masks (``Masking``) of the query (at t),
/// the value and the key (at s), `use_causal_mask` (s ≤ t) and `sliding_window` w (|t − s| < w).
/// A query row with no allowed position gets uniform weights (Keras 3 sets masked scores to
/// −1e9), except where Keras ≥ 3.13 takes its explicit-score path (dropout > 0), which zeroes
/// it; tf.keras 2 adds −1e9 to the scores (unless `softmax_robust_masking`), and laq computes
/// that sum in float32 as it does. The
/// output carries the query's mask. Training applies `dropout` to A. tf.keras 2 adds
/// (1 − m)·(−1e9) to the scores for an `attention_mask` m: laq accepts only 0 and 1 there.
///
/// Attention over other axes (`attention_axes` of images), the gated variant (`use_gate`) and
/// returning the scores are refused by name.
public struct MultiHeadAttentionLayer: LayerKind {
    let heads: Int
    let keyDim: Int
    let valueDim: Int
    let dropout: Float
    let useBias: Bool
    /// The output's trailing sizes (`output_shape`); nil: the query's last size.
    let outputSizes: [Int]?
    let causal: Bool
    let window: Int?
    /// tf.keras' `softmax_robust_masking`: masked scores are set to −1e9 rather than shifted by it.
    let robustMasking: Bool
    /// Where each tensor argument is among a call's inputs.
    let slots: Slots

    struct Slots: Sendable, Equatable {
        var query: Int
        var value: Int
        var key: Int?
        var attentionMask: Int?
    }

    public init(_ options: LayerOptions) throws(ModelError) {
        heads = try options.int("num_heads", min: 1)
        keyDim = try options.int("key_dim", min: 1)
        let keySize = keyDim
        valueDim = try options.int("value_dim", default: keySize, min: 1)
        let rate = try options.double("dropout", default: 0)
        guard rate >= 0, rate < 1 else { throw options.invalid("dropout", "a rate in [0, 1)") }
        dropout = Float(rate)
        useBias = try options.bool("use_bias", default: true)
        try options.expectDefault("use_gate", .bool(false), "the gated attention (use_gate)")
        switch options.value("output_shape") {
        case nil: outputSizes = nil
        case let .int(size)?:
            guard size >= 1, size <= LayerOptions.maxOption else { throw options.invalid("output_shape", "a positive size") }
            outputSizes = [Int(size)]
        case let .array(items)?:
            var sizes: [Int] = []
            for item in items {
                guard case let .int(size) = item, size >= 1, size <= LayerOptions.maxOption else { throw options.invalid("output_shape", "positive sizes") }
                sizes.append(Int(size))
            }
            // Keras treats an empty output_shape as absent (`if output_shape:`).
            outputSizes = sizes.isEmpty ? nil : sizes
        default: throw options.invalid("output_shape", "an integer or a list of integers")
        }
        // Attention over the sequence axis: Keras' default for (B, T, D) inputs, axis 1 of the
        // projected (B, T, N, H) tensors, also written -2.
        switch options.value("attention_axes") {
        case nil, .int(1)?, .int(-2)?, .array([.int(1)])?, .array([.int(-2)])?: break
        case let axes?: throw options.unsupported("attention_axes \(LayerOptions.describe(axes)) (laq attends over the sequence axis of (batch, time, features) inputs)")
        }
        if options.has("sliding_window") {
            window = try options.int("sliding_window", min: 1)
        } else {
            options.ignore("sliding_window")
            window = nil
        }
        // The flash kernel computes the same attention; the seed only drives training dropout;
        // tf.keras records the build shapes, which the graph gives.
        options.ignore("flash_attention", "seed", "query_shape", "key_shape", "value_shape")
        robustMasking = try options.bool("softmax_robust_masking", default: false)
        let found = try options.tensorArguments(["query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"])
        guard options.call.positionalTensors <= 3 else { throw options.unsupported("masks passed by position (pass attention_mask= by keyword)") }
        for name in ["query_mask", "value_mask", "key_mask"] where found[name] != nil {
            throw options.unsupported("a tensor passed as \(name)= (Keras takes these masks from the inputs)")
        }
        guard let query = found["query"], let value = found["value"] else { throw options.unsupported("a call without query and value tensors") }
        slots = Slots(query: query, value: value, key: found["key"], attentionMask: found["attention_mask"])
        switch options.callKeyword("use_causal_mask") {
        case nil, .bool(false)?: causal = false
        case .bool(true)?: causal = true
        case let other?: throw options.unsupported("use_causal_mask=\(LayerOptions.describe(other))")
        }
        switch options.callKeyword("return_attention_scores") {
        case nil, .bool(false)?: break
        default: throw options.unsupported("return_attention_scores (laq's layers have one output)")
        }
    }

    public var weights: [WeightSpec] {
        ["query", "key", "value", "attention_output"].flatMap { part in
            [WeightSpec("\(part)/kernel", quantizable: true)] + (useBias ? [WeightSpec("\(part)/bias")] : [])
        }
    }

    public var keras3VariableGroups: [String] { ["query_dense/vars", "key_dense/vars", "value_dense/vars", "output_dense/vars"] }

    /// The (batch, time, features) shapes of query, value and key.
    private func operands(_ inputs: [Shape], layer: String) throws(ModelError) -> (query: Shape, value: Shape, key: Shape) {
        let count = [slots.query, slots.value, slots.key ?? 0, slots.attentionMask ?? 0].max()! + 1
        guard inputs.count == count else { throw .shapeMismatch(layer: layer, reason: "expects \(count) inputs, has \(inputs.count)") }
        let query = inputs[slots.query], value = inputs[slots.value], key = slots.key.map { inputs[$0] } ?? value
        for (name, shape) in [("query", query), ("value", value), ("key", key)] where shape.count != 3 {
            throw .shapeMismatch(layer: layer, reason: "\(name) of rank \(shape.count): laq attends over (batch, time, features) sequences")
        }
        return (query, value, key)
    }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let (query, value, key) = try operands(inputs, layer: layer)
        if let v = value[1], let k = key[1], v != k {
            throw .shapeMismatch(layer: layer, reason: "value has \(v) steps, key \(k)")
        }
        if let slot = slots.attentionMask {
            let mask = inputs[slot]
            guard mask.count == 3 else { throw .shapeMismatch(layer: layer, reason: "attention_mask of rank \(mask.count), expected (batch, T, S)") }
            for (size, full) in zip(mask.dropFirst(), [query[1], value[1]]) {
                if let size, let full, size != 1, size != full {
                    throw .shapeMismatch(layer: layer, reason: "attention_mask of shape \(mask) with \(query[1].map(String.init) ?? "?") query and \(value[1].map(String.init) ?? "?") key steps")
                }
            }
        }
        return [query[0], query[1]] + (outputSizes ?? [query[2]])
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        guard let (query, value, key) = try? operands(inputs, layer: "") else { return [:] }
        var shapes: [String: [Int]] = [:]
        let out = outputSizes ?? query[2].map { [$0] }
        for (part, width, size) in [("query", query[2], keyDim), ("key", key[2], keyDim), ("value", value[2], valueDim)] {
            if let width { shapes["\(part)/kernel"] = [width, heads, size] }
            if useBias { shapes["\(part)/bias"] = [heads, size] }
        }
        if let out {
            shapes["attention_output/kernel"] = [heads, valueDim] + out
            if useBias { shapes["attention_output/bias"] = out }
        }
        return shapes
    }

    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool { masked[slots.query] }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? { masks[slots.query] }

    public func op(_ context: OpContext) throws(EngineError) -> any Op {
        let name = context.layer.name
        func map(_ part: String, inputs: Int, outputs: [Int]) throws(EngineError) -> LinearMap {
            let kernel = try context.weight("\(part)/kernel")
            guard kernel.shape.count == 1 + outputs.count + (part == "attention_output" ? 1 : 0), kernel.shape.suffix(outputs.count).elementsEqual(outputs) else {
                throw .shape(layer: name, reason: "\(part)/kernel has shape \(kernel.shape)")
            }
            let k = kernel.values.count / max(outputs.reduce(1, *), 1)
            guard inputs < 0 || k == inputs else { throw .shape(layer: name, reason: "\(part)/kernel has shape \(kernel.shape) for \(inputs) inputs") }
            var bias: BiasLayout? = nil
            if useBias {
                let weight = try context.weight("\(part)/bias")
                guard weight.shape == outputs else { throw .shape(layer: name, reason: "\(part)/bias has shape \(weight.shape), expected \(outputs)") }
                bias = BiasLayout(shape: outputs, values: weight.values, outputs: outputs)
            }
            return try LinearMap(name: name, kernel: kernel.values, k: k, n: outputs.reduce(1, *), bias: bias)
        }
        let outputKernel = try context.weight("attention_output/kernel")
        guard outputKernel.shape.count >= 3, Array(outputKernel.shape.prefix(2)) == [heads, valueDim] else {
            throw .shape(layer: name, reason: "attention_output/kernel has shape \(outputKernel.shape), expected (\(heads), \(valueDim), …)")
        }
        let outputs = Array(outputKernel.shape.dropFirst(2))
        if let outputSizes, outputSizes != outputs { throw .shape(layer: name, reason: "attention_output/kernel has shape \(outputKernel.shape) for output_shape \(outputSizes)") }
        let version = context.kerasVersion
        let zeroes = context.keras3 && dropout > 0 && version.map { $0.major > 3 || ($0.major == 3 && $0.minor >= 13) } ?? true
        return AttentionOp(
            name: name, heads: heads, keyDim: keyDim, valueDim: valueDim, outputs: outputs,
            query: try map("query", inputs: -1, outputs: [heads, keyDim]), key: try map("key", inputs: -1, outputs: [heads, keyDim]),
            value: try map("value", inputs: -1, outputs: [heads, valueDim]),
            output: try map("attention_output", inputs: heads * valueDim, outputs: outputs),
            // keras_hub casts its padding and attention masks to int32 before merging them: laq
            // takes 0 and 1 there (a sub-layer of a keras_hub block has an attribute).
            slots: slots, causal: causal, window: window, dropout: dropout, zeroesEmptyRows: zeroes,
            binaryMask: !context.keras3 || context.layer.attribute != nil, additiveMask: !context.keras3 && !robustMasking)
    }
}

/// The computation of ``MultiHeadAttentionLayer``.
struct AttentionOp: Op {
    let name: String
    let heads: Int
    let keyDim: Int
    let valueDim: Int
    let outputs: [Int]
    let query: LinearMap
    let key: LinearMap
    let value: LinearMap
    let output: LinearMap
    let slots: MultiHeadAttentionLayer.Slots
    let causal: Bool
    let window: Int?
    let dropout: Float
    /// A query row with no allowed key gets zero weights (else uniform ones).
    let zeroesEmptyRows: Bool
    /// The attention_mask must hold only 0 and 1 (tf.keras 2 adds (1 − m)·(−1e9) to the scores).
    let binaryMask: Bool
    /// A row with nothing allowed is the softmax of score − 1e9 in float32 (tf.keras 2), not
    /// uniform: its weights, and gradients, follow the rounded scores.
    let additiveMask: Bool

    /// batch × … as an element count, or an error when it exceeds what laq allocates.
    func count(_ factors: Int...) throws(EngineError) -> Int {
        var total = 1
        for factor in factors {
            let (product, overflow) = total.multipliedReportingOverflow(by: factor)
            guard !overflow, product <= LayerOptions.maxDimension else {
                throw .badInput(name: name, reason: "attention over \(factors.map(String.init).joined(separator: " × ")) elements is too large")
            }
            total = product
        }
        return total
    }

    /// The sizes of a call: batch, query steps T, key steps S.
    struct Sizes {
        var batch: Int
        var t: Int
        var s: Int
    }

    /// Everything a forward pass computes that the backward pass reads.
    struct Activations {
        var sizes: Sizes
        /// Projected query, key, value: (B·T, N·H), (B·S, N·H), (B·S, N·Hv).
        var q: [Float]
        var k: [Float]
        var v: [Float]
        /// Attention weights (B, N, T, S) before dropout.
        var weights: [Float]
        /// Dropout's scaled keep flags on the weights (training), empty without.
        var keep: [Float]
        /// The heads' outputs (B·T, N·Hv).
        var o: [Float]
        var y: Tensor
    }

    func operands(_ inputs: [Tensor]) throws(EngineError) -> (query: Tensor, value: Tensor, key: Tensor, sizes: Sizes) {
        let query = inputs[slots.query], value = inputs[slots.value], key = slots.key.map { inputs[$0] } ?? value
        guard query.rank == 3, value.rank == 3, key.rank == 3, value.shape[0] == query.shape[0], key.shape[0] == query.shape[0], key.shape[1] == value.shape[1] else {
            throw .shape(layer: name, reason: "query \(query.shape), value \(value.shape) and key \(key.shape) do not fit (batch, steps, features)")
        }
        return (query, value, key, Sizes(batch: query.shape[0], t: query.shape[1], s: value.shape[1]))
    }

    /// Which (b, t, s) may attend (1) or not (0), or nil when every pair may.
    func allowed(_ inputs: [Tensor], masks: [Tensor?], sizes: Sizes) throws(EngineError) -> [UInt8]? {
        let (batch, t, s) = (sizes.batch, sizes.t, sizes.s)
        let queryMask = masks.indices.contains(slots.query) ? masks[slots.query] : nil
        let valueMask = masks.indices.contains(slots.value) ? masks[slots.value] : nil
        let keyMask = slots.key.flatMap { masks.indices.contains($0) ? masks[$0] : nil }
        let explicit = slots.attentionMask.map { inputs[$0] }
        guard queryMask != nil || valueMask != nil || keyMask != nil || explicit != nil || causal || window != nil else { return nil }
        for (mask, steps) in [(queryMask, t), (valueMask, s), (keyMask, s)] {
            if let mask, mask.shape != [batch, steps] { throw .shape(layer: name, reason: "a mask of shape \(mask.shape) for \(batch) × \(steps) steps") }
        }
        if let explicit {
            if binaryMask, let bad = explicit.data.first(where: { $0 != 0 && $0 != 1 }) {
                throw .badInput(name: name, reason: "the attention mask holds \(bad): laq computes tf.keras' additive masks and keras_hub's integer masks for values 0 and 1 only")
            }
            guard explicit.rank == 3, [explicit.shape[0], explicit.shape[1], explicit.shape[2]].enumerated().allSatisfy({ $0.element == 1 || $0.element == [batch, t, s][$0.offset] }) else {
                throw .shape(layer: name, reason: "attention_mask of shape \(explicit.shape) for (\(batch), \(t), \(s))")
            }
        }
        var allowed = [UInt8](repeating: 1, count: try count(batch, t, s))
        for b in 0..<batch {
            for i in 0..<t {
                let row = (b * t + i) * s
                if let queryMask, !MaskMath.keeps(queryMask, b * t + i) {
                    for j in 0..<s { allowed[row + j] = 0 }
                    continue
                }
                for j in 0..<s {
                    var ok = true
                    if let valueMask, !MaskMath.keeps(valueMask, b * s + j) { ok = false }
                    if let keyMask, !MaskMath.keeps(keyMask, b * s + j) { ok = false }
                    if causal, j > i { ok = false }
                    if let window, abs(i - j) >= window { ok = false }
                    if ok, let explicit {
                        let shape = explicit.shape
                        let index = ((shape[0] == 1 ? 0 : b) * shape[1] + (shape[1] == 1 ? 0 : i)) * shape[2] + (shape[2] == 1 ? 0 : j)
                        if explicit.data[index] == 0 { ok = false }
                    }
                    if !ok { allowed[row + j] = 0 }
                }
            }
        }
        return allowed
    }

    func run(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom?, workspace: Workspace?) throws(EngineError) -> Activations {
        let (queryInput, valueInput, keyInput, sizes) = try operands(inputs)
        let (batch, t, s) = (sizes.batch, sizes.t, sizes.s)
        _ = try count(batch, heads, t, s)
        let allowed = try allowed(inputs, masks: masks, sizes: sizes)
        let q = try query.apply(queryInput.data, rows: batch * t, workspace: workspace)
        let k = try key.apply(keyInput.data, rows: batch * s, workspace: workspace)
        let v = try value.apply(valueInput.data, rows: batch * s, workspace: workspace)
        let vk = heads * valueDim
        var weights = Matrix.uninitialized(batch * heads * t * s, workspace: workspace)
        var keep: [Float] = []
        if random != nil, dropout > 0 {
            keep = Matrix.uninitialized(weights.count, workspace: workspace)
            let factor = 1 / (1 - dropout)
            for i in keep.indices { keep[i] = random!.uniform() >= dropout ? factor : 0 }
        }
        var o = Matrix.uninitialized(batch * t * vk, workspace: workspace)
        guard t > 0, s > 0 else {
            Matrix.fill(&o, with: 0)
            let y = try output.apply(o, rows: batch * t, workspace: workspace)
            return Activations(sizes: sizes, q: q, k: k, v: v, weights: weights, keep: keep, o: o, y: Tensor(shape: [batch, t] + outputs, data: y))
        }
        var dropped = keep.isEmpty ? [] : Matrix.uninitialized(weights.count, workspace: workspace)
        defer { if let workspace, !dropped.isEmpty { workspace.recycle(&dropped) } }
        AttentionKernels.forward(q: q, k: k, v: v, sizes: kernelSizes(sizes), softmax: softmax(allowed), keep: keep,
                                 weights: &weights, dropped: &dropped, o: &o)
        let y = try output.apply(o, rows: batch * t, workspace: workspace)
        return Activations(sizes: sizes, q: q, k: k, v: v, weights: weights, keep: keep, o: o, y: Tensor(shape: [batch, t] + outputs, data: y))
    }

    /// The sizes of the attention kernels.
    func kernelSizes(_ sizes: Sizes) -> AttentionKernels.Sizes {
        AttentionKernels.Sizes(batch: sizes.batch, heads: heads, t: sizes.t, s: sizes.s, keyDim: keyDim, valueDim: valueDim)
    }

    /// How scores become weights: scaled by 1/√H, masked where `allowed` says.
    func softmax(_ allowed: [UInt8]?) -> AttentionKernels.Softmax {
        AttentionKernels.Softmax(scale: 1 / Float(keyDim).squareRoot(), allowed: allowed, zeroesEmptyRows: zeroesEmptyRows, additive: additiveMask)
    }

    func forward(_ inputs: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try forward(inputs, masks: [], workspace: workspace)
    }

    func forward(_ inputs: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor {
        var random: TrainingRandom? = nil
        return try run(inputs, masks: masks, random: &random, workspace: workspace).y
    }
}

extension AttentionOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        try forwardTraining(inputs, masks: [], random: &random, workspace: workspace)
    }

    /// The record keeps q, k, v, the weights and the heads' outputs in `parts[0].inputs`, the
    /// dropout flags in `extra`.
    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        var generator: TrainingRandom? = random
        let state = try run(inputs, masks: masks, random: &generator, workspace: workspace)
        random = generator!
        let parts = [state.q, state.k, state.v, state.weights, state.o].map { Tensor(shape: [$0.count], data: $0) }
        var record = ForwardRecord(inputs: inputs, output: state.y, extra: state.keep, parts: [ForwardRecord(inputs: parts, output: state.y)])
        record.masks = masks
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let (queryInput, valueInput, keyInput, sizes) = try operands(record.inputs)
        let (batch, t, s) = (sizes.batch, sizes.t, sizes.s)
        let saved = record.parts[0].inputs
        let (q, k, v, weights, o) = (saved[0].data, saved[1].data, saved[2].data, saved[3].data, saved[4].data)
        let keep = record.extra
        let allowed = try allowed(record.inputs, masks: record.masks, sizes: sizes)
        let out = output.backward(gradOutput.data, x: o, rows: batch * t, input: true, workspace: workspace)
        let dO = out.dx!
        var dQ = Matrix.zeros(q.count, workspace: workspace)
        var dK = Matrix.zeros(k.count, workspace: workspace)
        var dV = Matrix.zeros(v.count, workspace: workspace)
        var dP = Matrix.uninitialized(t * s, workspace: workspace)
        var used = keep.isEmpty ? [] : Matrix.uninitialized(t * s, workspace: workspace)
        defer {
            workspace.recycle(&dP)
            if !used.isEmpty { workspace.recycle(&used) }
        }
        AttentionKernels.backward(dO: dO, q: q, k: k, v: v, weights: weights, keep: keep, sizes: kernelSizes(sizes), softmax: softmax(allowed),
                                  dP: &dP, used: &used, dQ: &dQ, dK: &dK, dV: &dV)
        let need = record.inputsNeedGradients
        let dq = query.backward(dQ, x: queryInput.data, rows: batch * t, input: need, workspace: workspace)
        let dk = key.backward(dK, x: keyInput.data, rows: batch * s, input: need, workspace: workspace)
        let dv = value.backward(dV, x: valueInput.data, rows: batch * s, input: need, workspace: workspace)
        var gradients = LayerGradients(inputs: Array(repeating: nil, count: record.inputs.count), weights: [:])
        for (part, result) in [("query", dq), ("key", dk), ("value", dv), ("attention_output", out)] {
            gradients.weights["\(part)/kernel"] = result.dKernel
            if let dBias = result.dBias { gradients.weights["\(part)/bias"] = dBias }
        }
        if need {
            gradients.inputs[slots.query] = Tensor(shape: queryInput.shape, data: dq.dx!)
            var dValue = dv.dx!
            if let slot = slots.key {
                gradients.inputs[slot] = Tensor(shape: keyInput.shape, data: dk.dx!)
            } else {
                for (i, g) in dk.dx!.enumerated() { dValue[i] += g }
            }
            gradients.inputs[slots.value] = Tensor(shape: valueInput.shape, data: dValue)
        }
        return gradients
    }
}
