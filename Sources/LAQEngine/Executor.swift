import LAQFormat

/// Runs a model's graph forward (inference), call by call in the order of its execution plan
/// (``Model/calls()``, but for the blocks ``Fusion`` moves to their residual `Add`).
public struct Executor: Sendable {
    public let model: Model
    let ops: [String: any Op]
    /// The ops that replace some of `ops` in predictions (``Fusion``), by layer name.
    let fused: [String: any Op]
    /// The layers whose work a fused op before them does in predictions: the name of that op's
    /// layer, by absorbed layer.
    public let fusedInto: [String: String]
    /// Every call of every layer, inputs first (``Model/calls()``): a shared layer runs once per call.
    let calls: [LayerCall]
    /// The tensors that carry an implicit mask, and which calls see it (``Model/maskPlan()``).
    let masks: MaskPlan
    /// Keras ≥ 3 saved the model.
    let keras3: Bool
    /// The model's outputs, as ``callOutputs(_:fused:keepAll:observe:)`` names them.
    let outputRefs: Set<TensorRef>
    /// `calls` resolved once for ``callOutputs(_:fused:keepAll:observe:)``: each tensor a
    /// numbered slot, each call its ops, slots and mask bookkeeping.
    let plan: ExecutionPlan
    /// What batch plans read of the model (``batchPlan(_:threads:chunkBytes:)``).
    let chunkFacts: ChunkFacts

    /// Builds one op per layer; throws when a layer, option or weight cannot be executed.
    /// `activations`: the precision of the activations that packed binary, ternary and linear
    /// m-bit kernels multiply (``ActivationPrecision``); everything else runs in float32.
    /// `training`: the executor runs training steps' forward and backward passes
    /// (``Backpropagation``), so kernels only predictions use are not built.
    public init(model: Model, activations: ActivationPrecision = .float32, training: Bool = false) throws(EngineError) {
        do { try model.validate() } catch { throw .invalidModel(error.description) }
        self.model = model
        var weights: [String: Weight] = [:]
        for weight in model.weights { weights[weight.name] = weight }
        let version = model.kerasVersion
        keras3 = model.savedByKeras3
        var ops: [String: any Op] = [:]
        for layer in model.layers {
            let context = OpContext(layer: layer, weights: weights, keras3: keras3, kerasVersion: version, activations: activations,
                                    training: training)
            ops[layer.name] = try layer.kind.op(context)
        }
        self.ops = ops
        do {
            calls = try model.calls()
            masks = try model.maskPlan()
        } catch { throw .invalidModel(error.description) }
        let fusion = Fusion.plan(model: model, ops: ops, calls: calls, masks: masks)
        (fused, fusedInto) = (fusion.ops, fusion.into)
        outputRefs = Set(model.outputs.map { TensorRef(layer: $0.layer, node: $0.node) })
        plan = ExecutionPlan(model: model, calls: fusion.order, ops: ops, fused: fused, fusedInputs: fusion.inputs, masks: masks, outputs: outputRefs)
        chunkFacts = ChunkFacts(model: model, calls: calls)
    }

    /// The masks of a step's inputs (nil: none; nil for every input when none has one): the
    /// tensor it passes as `mask=` for its first input, else the inputs' implicit masks, less
    /// those an attention layer deleted. `value` and `mask` read a slot's tensor and mask.
    func inputMasks(_ step: ExecutionPlan.Step, value: (Int) -> Tensor?, mask: (Int) -> Tensor?) throws(EngineError) -> [Tensor?]? {
        if let slot = step.maskInput {
            guard let explicit = value(slot) else {
                throw .badInput(name: model.layers[step.layer].name, reason: "its mask '\(plan.refs[slot])' was not computed")
            }
            return [explicit] + Array(repeating: nil, count: max(step.inputs.count - 1, 0))
        }
        guard step.seesMask else { return nil }
        return zip(step.inputs, step.hidden).map { $1 ? nil : mask($0) }
    }

    /// The mask of a step's output (call it where the step ``ExecutionPlan/Step/carriesMask``).
    func outputMask(_ step: ExecutionPlan.Step, inputs: [Tensor], masks: [Tensor?]?) throws(EngineError) -> Tensor? {
        try model.layers[step.layer].kind.outputMask(inputs, masks: masks ?? Array(repeating: nil, count: inputs.count), keras3: keras3)
    }

    /// The model's outputs for `inputs` (one tensor per model input, in order); a large batch in
    /// chunks of samples where the model allows (``batchPlan(_:threads:)``).
    public func predict(_ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        try predict(inputs, observe: nil)
    }

    /// The model's outputs for every sample of `inputs`, run `batch` samples at a time: one
    /// tensor per model output, its batches' rows in order. `progress` gets the samples done
    /// after each batch.
    public func predict(_ inputs: [Tensor], batch: Int, progress: ((Int) -> Void)? = nil) throws(EngineError) -> [Tensor] {
        let samples = inputs.first?.shape.first ?? 0
        var data: [[Float]] = Array(repeating: [], count: model.outputs.count)
        var shapes: [[Int]] = Array(repeating: [], count: model.outputs.count)
        for start in stride(from: 0, to: samples, by: max(batch, 1)) {
            let end = min(start + max(batch, 1), samples)
            for (index, result) in try predict(inputs.map { $0.rows(start..<end) }).enumerated() {
                data[index] += result.data
                shapes[index] = Array(result.shape.dropFirst())
            }
            progress?(end)
        }
        return zip(shapes, data).map { Tensor(shape: [samples] + $0, data: $1) }
    }

    /// Where a prediction stops being finite: how many of `outputs` (``predict(_:batch:progress:)``
    /// of `inputs`) are NaN or infinite, and the first layer that produced one, on the first
    /// sample holding one; nil when every output is finite.
    public func nonFinite(outputs: [Tensor], inputs: [Tensor]) throws(EngineError) -> (count: Int, of: Int, layer: String?)? {
        let count = outputs.reduce(0) { $0 + $1.data.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        guard count > 0, let output = outputs.first(where: { $0.data.contains { !$0.isFinite } }) else { return nil }
        let perSample = max(output.shape.dropFirst().reduce(1, *), 1)
        let samples = inputs.first?.shape.first ?? 0
        guard samples > 0 else { return (count, outputs.reduce(0) { $0 + $1.count }, nil) }
        let row = min((output.data.firstIndex { !$0.isFinite } ?? 0) / perSample, samples - 1)
        let layer = try firstNonFiniteLayer(inputs.map { $0.rows(row..<(row + 1)) })
        return (count, outputs.reduce(0) { $0 + $1.count }, layer)
    }

    /// Every layer's output for `inputs` (input layers: the inputs themselves), by layer name;
    /// a shared layer's later calls as `layer[node][0]` (``TensorRef/description``).
    public func activations(_ inputs: [Tensor]) throws(EngineError) -> [String: Tensor] {
        var named: [String: Tensor] = [:]
        for (ref, tensor) in try callOutputs(inputs, fused: false, keepAll: true) { named[ref.description] = tensor }
        return named
    }

    /// The first layer, in the model's order of calls (``Model/calls()``), whose output for
    /// `inputs` holds a NaN or an infinity (a model input's own values included); nil when none does.
    public func firstNonFiniteLayer(_ inputs: [Tensor]) throws(EngineError) -> String? {
        let values = try callOutputs(inputs, fused: false, keepAll: true)
        for call in calls {
            let ref = model.output(of: call)
            if let tensor = values[ref], tensor.data.contains(where: { !$0.isFinite }) { return ref.description }
        }
        return nil
    }

    /// The output of every call of every layer (run in the plan's order), with `keepAll` or
    /// without `fused`; else the model's outputs only: each other tensor is let go after the last
    /// call that reads it, so that memory holds the tensors still to be read rather than every
    /// layer's output (the allocator then hands the same blocks to later layers), and an op that
    /// can write its output over such an input does (``OverwritingOp``). With `fused`, the fused
    /// ops run (``Fusion``: a fused layer's output then includes the layers it absorbed, which
    /// pass it on). `observe`, when given, gets each call's layer and the wall time of its op in
    /// seconds.
    func callOutputs(_ inputs: [Tensor], fused: Bool = true, keepAll: Bool = false,
                     observe: ((Layer, Double) -> Void)? = nil) throws(EngineError) -> [TensorRef: Tensor] {
        guard inputs.count == model.inputs.count else {
            throw .badInput(name: "(model)", reason: "the model takes \(model.inputs.count) inputs, \(inputs.count) given")
        }
        var values = [Tensor?](repeating: nil, count: plan.refs.count)
        var masks = [Tensor?](repeating: nil, count: plan.refs.count)
        for (slot, tensor) in zip(plan.modelInputs, inputs) { values[slot] = tensor }
        for step in plan.steps {
            if step.isInput {
                // An input layer: validation guarantees it is one of the model's inputs.
                guard values[step.output] != nil else { throw .badInput(name: model.layers[step.layer].name, reason: "no value given") }
                continue
            }
            guard let op = fused ? step.fusedOp ?? step.op : step.op else { throw .unsupported(layer: model.layers[step.layer].name, reason: "no op") }
            // What the call reads: its inputs (a fused op's own), and its mask when it passes one.
            let inputs = fused ? step.fusedInputs ?? step.inputs : step.inputs
            var arguments: [Tensor] = []
            arguments.reserveCapacity(inputs.count)
            for slot in inputs {
                guard let value = values[slot] else {
                    throw .badInput(name: model.layers[step.layer].name, reason: "its input '\(plan.refs[slot])' was not computed")
                }
                arguments.append(value)
            }
            let inputMasks = try self.inputMasks(step, value: { values[$0] }, mask: { masks[$0] })
            let start = observe == nil ? nil : ContinuousClock.now
            if fused, !keepAll, let index = step.overwrites, inputMasks == nil, let overwriting = op as? any OverwritingOp {
                // The op may write over this input's values: `arguments` holds the last reference.
                values[inputs[index]] = nil
                values[step.output] = try overwriting.forward(overwriting: &arguments)
            } else if let inputMasks {
                values[step.output] = try op.forward(arguments, masks: inputMasks, workspace: nil)
            } else {
                values[step.output] = try op.forward(arguments)
            }
            if let observe, let start { observe(model.layers[step.layer], (ContinuousClock.now - start).seconds) }
            if step.carriesMask { masks[step.output] = try outputMask(step, inputs: arguments, masks: inputMasks) }
            // (The releases are those of the fused ops' reads: the layers one by one keep every tensor.)
            guard fused, !keepAll else { continue }
            for slot in step.release { values[slot] = nil }
        }
        var named: [TensorRef: Tensor] = [:]
        for (slot, value) in values.enumerated() {
            if let value { named[plan.refs[slot]] = value }
        }
        return named
    }
}

/// A model's calls resolved for running them, in an order that computes every tensor before
/// its readers (``Fusion``'s): every tensor (a model input, a call's output or an input a call
/// names) a slot number, and for each call its ops, the slots it reads and writes, its masks,
/// and the slots it is the last to read. A prediction then looks nothing up by name.
struct ExecutionPlan: Sendable {
    struct Step: Sendable {
        let call: LayerCall
        /// Index into ``Model/layers``.
        var layer: Int { call.layer }
        /// An input layer's call: its output is a model input.
        let isInput: Bool
        /// The layer's op, and the fused op that replaces it in predictions; nil for an input layer.
        let op: (any Op)?
        let fusedOp: (any Op)?
        let inputs: [Int]
        /// The fused op's inputs where they are not the call's (``Fusion``: a residual
        /// connection's convolution reads one more, the `Add` it absorbs only the block's output).
        let fusedInputs: [Int]?
        let output: Int
        /// The slot of the tensor it passes as `mask=`, when it passes one.
        let maskInput: Int?
        /// Whether it sees an implicit mask on an input, and for each input whether an attention
        /// layer deleted that input's mask (``MaskPlan``).
        let seesMask: Bool
        let hidden: [Bool]
        /// Whether its output carries a mask.
        let carriesMask: Bool
        /// The slots a prediction lets go after this call: the tensors it is the last to read
        /// (an input or a mask; as the fused ops read them), and its own output when nothing
        /// reads it; never a model output.
        let release: [Int]
        /// The index among the fused op's inputs of one it may write its output over
        /// (``OverwritingOp``): one that no later call reads, read once by this one, not a model
        /// output, on a call without masks.
        let overwrites: Int?
    }

    /// The tensor of each slot.
    let refs: [TensorRef]
    /// The slots of the model's inputs, in order.
    let modelInputs: [Int]
    let steps: [Step]

    init(model: Model, calls: [LayerCall], ops: [String: any Op], fused: [String: any Op], fusedInputs: [String: [TensorRef]], masks: MaskPlan,
         outputs: Set<TensorRef>) {
        var refs: [TensorRef] = []
        var slots: [TensorRef: Int] = [:]
        func slot(_ ref: TensorRef) -> Int {
            if let slot = slots[ref] { return slot }
            slots[ref] = refs.count
            refs.append(ref)
            return refs.count - 1
        }
        modelInputs = model.inputs.map { slot(TensorRef(layer: $0.layer)) }
        // What a prediction's call reads: its fused op's inputs (or its call's), and its mask.
        func reads(_ call: LayerCall) -> [TensorRef] {
            (fusedInputs[model.layers[call.layer].name] ?? model.inputs(of: call)) + (model.maskInput(of: call).map { [$0] } ?? [])
        }
        // For each tensor a prediction reads, the position of the last call that reads it.
        var lastUse: [TensorRef: Int] = [:]
        for (position, call) in calls.enumerated() {
            for ref in reads(call) { lastUse[ref] = position }
        }
        steps = calls.enumerated().map { position, call in
            let layer = model.layers[call.layer]
            guard !layer.inbound.isEmpty else {
                return Step(call: call, isInput: true, op: nil, fusedOp: nil, inputs: [], fusedInputs: nil, output: slot(model.output(of: call)),
                            maskInput: nil, seesMask: false, hidden: [], carriesMask: false, release: [], overwrites: nil)
            }
            let inputs = model.inputs(of: call), output = model.output(of: call), mask = model.maskInput(of: call)
            let hidden = masks.hidden[call] ?? []
            let read = reads(call)
            let lastRead = read.filter { lastUse[$0] == position && !outputs.contains($0) }
            var release = lastRead.map(slot)
            if lastUse[output] == nil, !outputs.contains(output) { release.append(slot(output)) }
            let carriesMask = masks.carried.contains(output), seesMask = masks.sees(call, inputs)
            var overwrites: Int?
            if let index = (fused[layer.name] as? any OverwritingOp)?.overwritableInput, let own = fusedInputs[layer.name] ?? .some(inputs),
               index < own.count, lastRead.contains(own[index]), read.filter({ $0 == own[index] }).count == 1, mask == nil, !seesMask,
               !carriesMask {
                overwrites = index
            }
            return Step(call: call, isInput: false, op: ops[layer.name], fusedOp: fused[layer.name], inputs: inputs.map(slot),
                        fusedInputs: fusedInputs[layer.name].map { $0.map(slot) }, output: slot(output),
                        maskInput: mask.map(slot), seesMask: seesMask, hidden: inputs.map { hidden.contains($0) },
                        carriesMask: carriesMask, release: release, overwrites: overwrites)
        }
        self.refs = refs
    }
}
