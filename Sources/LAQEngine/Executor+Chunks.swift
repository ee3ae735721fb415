import LAQFormat
import Synchronization

/// Batches in chunks of samples.
///
/// Layer by layer, a batch holds each layer's output for all its samples: 16 images through
/// MobileNetV2 write tensors of 77 MB (112×112×96 floats each), which stream through memory
/// from one layer to the next, where one image's 4.8 MB stay in the caches. On one core its
/// stages at 112², 56² and 28² ran in 0.70–0.87 of their time in chunks of one image
/// (docs/PERFORMANCE.md, "Batches in chunks of samples").
///
/// So where every layer keeps samples apart (``LayerKind/keepsSamplesApart``) and a sample's
/// tensors are large, a prediction runs the batch in chunks of samples sized to a cache budget.
/// Where there are chunks enough to keep every thread busy, the chunks run side by side, one per
/// thread, every loop of a chunk on its thread alone: no hand-over between threads within a
/// layer, and each thread's tensors in its own core's caches.
///
/// The chunks are a function of the model, the samples' shapes and the batch size, never of the
/// thread count; the kernels give the same bits on any number of threads: so do predictions.
extension Executor {
    /// The bytes a chunk's largest call (its inputs and output, for the chunk's samples) is
    /// sized to: about a core's L2 and its share of L3 on the CPUs laq has been measured on.
    static let chunkBytes = 4 << 20

    /// How a prediction runs a batch.
    struct BatchPlan: Equatable, Sendable {
        /// Samples in the batch, and chunks (1: the batch whole); chunk i is samples
        /// [i·batch/chunks, (i+1)·batch/chunks).
        let batch: Int
        let chunks: Int
        /// The chunks run side by side, one per thread.
        let sideBySide: Bool

        func range(_ chunk: Int) -> Range<Int> { (chunk * batch / chunks)..<((chunk + 1) * batch / chunks) }
    }

    /// The plan for a batch of `inputs` on `threads` threads. A batch stays whole unless every
    /// layer keeps samples apart, and a chunk of ⌊`chunkBytes` / (the largest call's bytes a
    /// sample)⌋ samples (at least one) is smaller than the batch, and the bytes the chunk's
    /// samples move through its calls (each call's inputs and output) are at least the
    /// weights' (which each chunk reads again: a model of large weights and small tensors keeps
    /// its batch whole), 8 times the weights' where the chunks run one after another.
    func batchPlan(_ inputs: [Tensor], threads: Int, chunkBytes: Int = Executor.chunkBytes) -> BatchPlan {
        let batch = inputs.first?.shape.first ?? 0
        let whole = BatchPlan(batch: batch, chunks: 1, sideBySide: false)
        guard batch >= 2, inputs.allSatisfy({ $0.shape.first == batch }), chunkFacts.samplesApart else { return whole }
        let shapes = Self.sampleShapes(inputs)
        guard let sizes = chunkFacts.declared?.shapes == shapes ? chunkFacts.declared?.sizes : Self.sampleSizes(model, calls, shapes),
              sizes.largest > 0
        else { return whole }
        let weightBytes = chunkFacts.weightBytes
        let samples = max(1, chunkBytes / (4 * sizes.largest))
        let (product, overflow) = samples.multipliedReportingOverflow(by: 4 * sizes.moved)
        let moved = overflow ? Int.max : product
        guard samples < batch, moved >= weightBytes else { return whole }
        let chunks = (batch + samples - 1) / samples
        // Side by side where the threads' last round is at least three quarters full (16 chunks
        // on 3 threads: 16 of 18 turns); else chunk after chunk, each layer on every thread.
        let rounds = (chunks + threads - 1) / max(threads, 1)
        let sideBySide = threads >= 2 && chunks >= threads && 4 * chunks >= 3 * threads * rounds
        // Chunk after chunk, the weights' extra reads cost more than the caches save unless the
        // tensors moved outweigh them 8 times: on one core, MobileNetV2's batch of 16 (12 times:
        // 14 MB of weights) ran 7% faster in chunks of one image, ResNet50's (3 times: 103 MB)
        // 8% slower. Side by side, both gained (21% and 7% on two cores; docs/PERFORMANCE.md).
        guard sideBySide || moved / 8 >= weightBytes else { return whole }
        return BatchPlan(batch: batch, chunks: chunks, sideBySide: sideBySide)
    }

    /// What batch plans read of the model, found once when the executor is built.
    struct ChunkFacts: Sendable {
        /// Every layer keeps samples apart (``LayerKind/keepsSamplesApart``).
        let samplesApart: Bool
        /// The weights' bytes as the ops read them (packed codes as stored, others float32).
        let weightBytes: Int
        /// ``sampleSizes(_:_:_:)`` for the input shapes the model declares, where it declares
        /// every dimension but the batch's.
        let declared: (shapes: [Shape], sizes: (largest: Int, moved: Int))?

        init(model: Model, calls: [LayerCall]) {
            samplesApart = model.layers.allSatisfy(\.kind.keepsSamplesApart)
            weightBytes = model.weights.reduce(0) { $0 + ($1.packed.map { $0.packed.count } ?? 4 * $1.elementCount) }
            var shapes: [Shape] = []
            for ref in model.inputs {
                guard let layer = model.layers.first(where: { $0.name == ref.layer }),
                      let shape = try? layer.kind.outputShape([], layer: layer.name), shape.dropFirst().allSatisfy({ $0 != nil })
                else { break }
                shapes.append([nil] + shape.dropFirst())
            }
            declared = samplesApart && shapes.count == model.inputs.count
                ? Executor.sampleSizes(model, calls, shapes).map { (shapes, $0) } : nil
        }
    }

    /// The samples' shapes of `inputs`: each one's shape with the batch dimension unknown.
    static func sampleShapes(_ inputs: [Tensor]) -> [Shape] { inputs.map { [nil] + $0.shape.dropFirst().map { $0 } } }

    /// ``sampleSizes(_:_:_:)`` for `inputs`' shapes.
    func sampleSizes(_ inputs: [Tensor]) -> (largest: Int, moved: Int)? { Self.sampleSizes(model, calls, Self.sampleShapes(inputs)) }

    /// Per sample, in floats: the largest call's inputs and output together, and the sum of
    /// that over every call, for model inputs of these shapes (batch first); nil where a shape
    /// is unknown or a size passes 2⁶⁰ (a model that declares impossible shapes: the prediction
    /// then fails on its own).
    static func sampleSizes(_ model: Model, _ calls: [LayerCall], _ samples: [Shape]) -> (largest: Int, moved: Int)? {
        let limit = 1 << 60
        var shapes: [TensorRef: Shape] = [:]
        for (ref, shape) in zip(model.inputs, samples) { shapes[TensorRef(layer: ref.layer)] = shape }
        func perSample(_ shape: Shape) -> Int? {
            var count = 1
            for dimension in shape.dropFirst() {
                guard let dimension, dimension >= 0 else { return nil }
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= limit else { return nil }
                count = product
            }
            return count
        }
        var largest = 0, moved = 0
        for call in calls {
            let layer = model.layers[call.layer]
            guard !layer.inbound.isEmpty else { continue }
            var inputShapes: [Shape] = []
            var floats = 0
            // Each count and sum stays ≤ 2⁶⁰, so no sum of two overflows.
            for ref in model.inputs(of: call) {
                guard let shape = shapes[ref], let count = perSample(shape) else { return nil }
                inputShapes.append(shape)
                floats += count
                guard floats <= limit else { return nil }
            }
            guard let output = try? layer.kind.outputShape(inputShapes, layer: layer.name), let count = perSample(output) else { return nil }
            shapes[model.output(of: call)] = output
            floats += count
            moved += floats
            guard floats <= limit, moved <= limit else { return nil }
            largest = max(largest, floats)
        }
        return (largest, moved)
    }

    /// The model's outputs for `inputs`, the batch run as ``batchPlan(_:threads:)`` says.
    /// `observe`, when given, gets each call's layer and its op's wall time in seconds, chunk
    /// by chunk; of chunks side by side, after they have all run, in chunk order, each time
    /// divided by the threads that ran them (the layer's share of the batch's time).
    public func predict(_ inputs: [Tensor], observe: ((Layer, Double) -> Void)?) throws(EngineError) -> [Tensor] {
        try predict(inputs, observe: observe, chunkBytes: Self.chunkBytes)
    }

    /// ``predict(_:observe:)`` with chunks sized to `chunkBytes` (tests: chunks of small models).
    func predict(_ inputs: [Tensor], observe: ((Layer, Double) -> Void)?, chunkBytes: Int) throws(EngineError) -> [Tensor] {
        let plan = batchPlan(inputs, threads: Parallel.threadCount, chunkBytes: chunkBytes)
        guard plan.chunks > 1 else { return try outputs(of: callOutputs(inputs, observe: observe)) }
        let chunks = plan.chunks
        let results = Mutex<[Result<[Tensor], EngineError>?]>(Array(repeating: nil, count: chunks))
        let observations = Mutex<[[(Layer, Double)]]>(Array(repeating: [], count: chunks))
        let watch = observe != nil
        if plan.sideBySide {
            Parallel.forEachIndex(chunks) { chunk in
                var seen: [(Layer, Double)] = []
                let result = self.chunkOutputs(inputs, plan.range(chunk), observe: watch ? { seen.append(($0, $1)) } : nil)
                results.withLock { $0[chunk] = result }
                if watch { observations.withLock { $0[chunk] = seen } }
            }
            if let observe {
                let threads = Double(min(Parallel.threadCount, chunks))
                for chunk in observations.withLock({ $0 }) {
                    for (layer, seconds) in chunk { observe(layer, seconds / threads) }
                }
            }
        } else {
            for chunk in 0..<chunks {
                let result = chunkOutputs(inputs, plan.range(chunk), observe: observe)
                results.withLock { $0[chunk] = result }
            }
        }
        // Each output's chunks, in order, along the batch axis.
        let parts = try results.withLock { $0 }.map { result throws(EngineError) in try result!.get() }
        return (0..<model.outputs.count).map { index in
            let shape = [plan.batch] + parts[0][index].shape.dropFirst()
            var data: [Float] = []
            data.reserveCapacity(shape.reduce(1, *))
            for part in parts { data += part[index].data }
            return Tensor(shape: shape, data: data)
        }
    }

    /// The model's outputs for samples `range` of `inputs`.
    func chunkOutputs(_ inputs: [Tensor], _ range: Range<Int>, observe: ((Layer, Double) -> Void)?) -> Result<[Tensor], EngineError> {
        Result { () throws(EngineError) in try outputs(of: callOutputs(inputs.map { $0.rows(range) }, observe: observe)) }
    }

    /// The model's outputs among a prediction's tensors, in order.
    func outputs(of values: [TensorRef: Tensor]) throws(EngineError) -> [Tensor] {
        var outputs: [Tensor] = []
        for ref in model.outputs {
            guard let tensor = values[TensorRef(layer: ref.layer, node: ref.node)] else { throw .badInput(name: ref.layer, reason: "was not computed") }
            outputs.append(tensor)
        }
        return outputs
    }
}

