/// One call of a layer: its `node`-th inbound node in Keras' terms. A layer used once has one
/// call (node 0); a shared layer has one per use; an input layer has one call with no inputs.
public struct LayerCall: Hashable, Sendable {
    /// Index into ``Model/layers``.
    public var layer: Int
    public var node: Int

    public init(layer: Int, node: Int) {
        self.layer = layer
        self.node = node
    }
}

extension Model {
    /// Every call of every layer, ordered so that each call comes after the calls whose outputs
    /// it consumes (config order where the config allows: Keras lists a shared layer once, at its
    /// first use, so a later call may need layers listed after it).
    public func calls() throws(ModelError) -> [LayerCall] {
        try CallOrder.order(layers)
    }

    /// The output of `call`, as the tensors that consume it name it (`TensorRef.index` 0).
    public func output(of call: LayerCall) -> TensorRef {
        TensorRef(layer: layers[call.layer].name, node: call.node)
    }

    /// The inputs of `call` (none for an input layer), without its explicit mask.
    public func inputs(of call: LayerCall) -> [TensorRef] {
        let layer = layers[call.layer]
        return layer.inbound.isEmpty ? [] : layer.dataInputs(layer.inbound[call.node])
    }

    /// The tensor `call` passes as `mask=`, when it passes one (``Layer/maskInput``).
    public func maskInput(of call: LayerCall) -> TensorRef? {
        let layer = layers[call.layer]
        guard let index = layer.maskInput, !layer.inbound.isEmpty, index < layer.inbound[call.node].count else { return nil }
        return layer.inbound[call.node][index]
    }
}

enum CallOrder {
    /// Checks that every input names an existing call's output (layers have one output:
    /// `index` 0) and that the graph has no cycle, and orders the calls (see ``Model/calls()``).
    static func order(_ layers: [Layer]) throws(ModelError) -> [LayerCall] {
        var position: [String: Int] = [:]
        for (index, layer) in layers.enumerated() { position[layer.name] = index }
        var pending: [LayerCall] = []
        var dependencies: [LayerCall: [LayerCall]] = [:]
        for (index, layer) in layers.enumerated() {
            for node in 0..<max(1, layer.inbound.count) {
                let call = LayerCall(layer: index, node: node)
                var inputs: [LayerCall] = []
                for ref in layer.inbound.isEmpty ? [] : layer.inbound[node] {
                    guard let producer = position[ref.layer], ref.node >= 0, ref.node < max(1, layers[producer].inbound.count) else {
                        throw .danglingInput(layer: layer.name, input: ref.description)
                    }
                    guard ref.index == 0 else {
                        throw .unsupportedOption(layer: ref.layer, className: layers[producer].className,
                                                 option: "output \(ref.index) of a layer (laq's layers have one output)")
                    }
                    inputs.append(LayerCall(layer: producer, node: ref.node))
                }
                dependencies[call] = inputs
                pending.append(call)
            }
        }
        // Passes in config order: a well-ordered config takes one, each shared layer's later
        // calls at most one more each.
        var done = Set<LayerCall>()
        var order: [LayerCall] = []
        order.reserveCapacity(pending.count)
        while !pending.isEmpty {
            var waiting: [LayerCall] = []
            for call in pending {
                if dependencies[call]!.allSatisfy(done.contains) {
                    done.insert(call)
                    order.append(call)
                } else {
                    waiting.append(call)
                }
            }
            guard waiting.count < pending.count else {
                let stuck = layers[waiting[0].layer]
                throw .invalidConfig(path: "$.config.layers", reason: "the connections of '\(stuck.name)' form a cycle")
            }
            pending = waiting
        }
        return order
    }
}
