import LAQFormat

/// Runs a model's graph forward (inference), layer by layer in the config's order.
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
    /// For each tensor a call reads (as an input or a mask), the position in `calls` of the last
    /// call that reads it: a prediction lets it go after that call.
    let lastUse: [TensorRef: Int]
    /// The model's outputs, as ``callOutputs(_:fused:keepAll:observe:)`` names them.
    let outputRefs: Set<TensorRef>

    /// Builds one op per layer; throws when a layer, option or weight cannot be executed.
    /// `activations`: the precision of the activations that packed binary, ternary and linear
    /// m-bit kernels multiply (``ActivationPrecision``); everything else runs in float32.
    public init(model: Model, activations: ActivationPrecision = .float32) throws(EngineError) {
        do { try model.validate() } catch { throw .invalidModel(error.description) }
        self.model = model
        var weights: [String: Weight] = [:]
        for weight in model.weights { weights[weight.name] = weight }
        let version = model.kerasVersion
        keras3 = model.savedByKeras3
        var ops: [String: any Op] = [:]
        for layer in model.layers {
            let context = OpContext(layer: layer, weights: weights, keras3: keras3, kerasVersion: version, activations: activations)
            ops[layer.name] = try layer.kind.op(context)
        }
        self.ops = ops
        do {
            calls = try model.calls()
            masks = try model.maskPlan()
        } catch { throw .invalidModel(error.description) }
        (fused, fusedInto) = Fusion.plan(model: model, ops: ops, calls: calls, masks: masks)
        var lastUse: [TensorRef: Int] = [:]
        for (position, call) in calls.enumerated() {
            for ref in model.inputs(of: call) + (model.maskInput(of: call).map { [$0] } ?? []) { lastUse[ref] = position }
        }
        self.lastUse = lastUse
        outputRefs = Set(model.outputs.map { TensorRef(layer: $0.layer, node: $0.node) })
    }

    /// The masks of a call's inputs (nil: none; nil for every input when none has one): the
    /// tensor it passes as `mask=` for its first input, else the inputs' implicit masks.
    func inputMasks(_ call: LayerCall, _ masks: [TensorRef: Tensor], values: [TensorRef: Tensor]) throws(EngineError) -> [Tensor?]? {
        let refs = model.inputs(of: call)
        if let explicit = model.maskInput(of: call) {
            guard let mask = values[explicit] else { throw .badInput(name: model.layers[call.layer].name, reason: "its mask '\(explicit)' was not computed") }
            return [mask] + Array(repeating: nil, count: max(refs.count - 1, 0))
        }
        guard self.masks.sees(call, refs) else { return nil }
        let hidden = self.masks.hidden[call] ?? []
        return refs.map { hidden.contains($0) ? nil : masks[$0] }
    }

    /// Records the mask of a call's output, when it carries one.
    func recordMask(_ call: LayerCall, inputs: [Tensor], masks: [Tensor?]?, into table: inout [TensorRef: Tensor]) throws(EngineError) {
        let ref = model.output(of: call)
        guard self.masks.carried.contains(ref) else { return }
        let layer = model.layers[call.layer]
        table[ref] = try layer.kind.outputMask(inputs, masks: masks ?? Array(repeating: nil, count: inputs.count), keras3: keras3)
    }

    /// The model's outputs for `inputs` (one tensor per model input, in order).
    public func predict(_ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        let values = try callOutputs(inputs)
        var outputs: [Tensor] = []
        for ref in model.outputs {
            guard let tensor = values[TensorRef(layer: ref.layer, node: ref.node)] else { throw .badInput(name: ref.layer, reason: "was not computed") }
            outputs.append(tensor)
        }
        return outputs
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

    /// The first layer, in the order the graph runs, whose output for `inputs` holds a NaN or an
    /// infinity (a model input's own values included); nil when none does.
    public func firstNonFiniteLayer(_ inputs: [Tensor]) throws(EngineError) -> String? {
        let values = try callOutputs(inputs, fused: false, keepAll: true)
        for call in calls {
            let ref = model.layers[call.layer].inbound.isEmpty ? TensorRef(layer: model.layers[call.layer].name) : model.output(of: call)
            if let tensor = values[ref], tensor.data.contains(where: { !$0.isFinite }) { return ref.description }
        }
        return nil
    }

    /// The output of every call of every layer, in ``Model/calls()`` order, with `keepAll`;
    /// without, the model's outputs only: each other tensor is let go after the last call that
    /// reads it, so that memory holds the tensors still to be read rather than every layer's
    /// output (the allocator then hands the same blocks to later layers). With `fused`, the fused
    /// ops run (``Fusion``: a fused layer's output then includes the layers it absorbed, which
    /// pass it on). `observe`, when given, gets each call's layer and the wall time of its op in
    /// seconds.
    func callOutputs(_ inputs: [Tensor], fused: Bool = true, keepAll: Bool = false,
                     observe: ((Layer, Double) -> Void)? = nil) throws(EngineError) -> [TensorRef: Tensor] {
        guard inputs.count == model.inputs.count else {
            throw .badInput(name: "(model)", reason: "the model takes \(model.inputs.count) inputs, \(inputs.count) given")
        }
        var values: [TensorRef: Tensor] = [:]
        var masks: [TensorRef: Tensor] = [:]
        for (ref, tensor) in zip(model.inputs, inputs) { values[TensorRef(layer: ref.layer)] = tensor }
        for (position, call) in calls.enumerated() {
            let layer = model.layers[call.layer]
            if layer.inbound.isEmpty {
                // An input layer: validation guarantees it is one of the model's inputs.
                guard values[TensorRef(layer: layer.name)] != nil else { throw .badInput(name: layer.name, reason: "no value given") }
                continue
            }
            // What the call reads: its inputs, and its mask when it passes one.
            let refs = model.inputs(of: call)
            var arguments: [Tensor] = []
            for ref in refs {
                guard let value = values[ref] else { throw .badInput(name: layer.name, reason: "its input '\(ref)' was not computed") }
                arguments.append(value)
            }
            guard let op = (fused ? self.fused[layer.name] : nil) ?? ops[layer.name] else { throw .unsupported(layer: layer.name, reason: "no op") }
            let inputMasks = try inputMasks(call, masks, values: values)
            let start = observe == nil ? nil : ContinuousClock.now
            if let inputMasks {
                values[model.output(of: call)] = try op.forward(arguments, masks: inputMasks, workspace: nil)
            } else {
                values[model.output(of: call)] = try op.forward(arguments)
            }
            if let observe, let start { observe(layer, (ContinuousClock.now - start).seconds) }
            try recordMask(call, inputs: arguments, masks: inputMasks, into: &masks)
            guard !keepAll else { continue }
            for ref in refs + (model.maskInput(of: call).map { [$0] } ?? []) where lastUse[ref] == position && !outputRefs.contains(ref) {
                values[ref] = nil
            }
            let output = model.output(of: call)
            if lastUse[output] == nil, !outputRefs.contains(output) { values[output] = nil }
        }
        return values
    }
}
