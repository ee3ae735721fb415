import LAQFormat
import Synchronization

/// Multiply-adds of the products the engine runs (``BLAS/gemm``, packed products, depthwise
/// convolutions), counted only while a ``Benchmark`` measures them: one relaxed load per
/// product otherwise. Each product is counted once, by the thread that starts it.
enum ProductCount {
    private static let counting = Atomic<Bool>(false)
    private static let total = Atomic<Int>(0)

    static func add(_ multiplyAdds: Int) {
        if counting.load(ordering: .relaxed) { total.add(multiplyAdds, ordering: .relaxed) }
    }

    /// The multiply-adds of the products `body` runs.
    static func counting(_ body: () throws(EngineError) -> Void) throws(EngineError) -> Int {
        total.store(0, ordering: .relaxed)
        counting.store(true, ordering: .relaxed)
        defer { counting.store(false, ordering: .relaxed) }
        try body()
        return total.load(ordering: .relaxed)
    }

    static var current: Int { total.load(ordering: .relaxed) }
}

/// A model's inference speed as stored: `laq bench`. Times whole batches (after warm-up runs),
/// counts the multiply-adds of one batch, and optionally times each layer.
public enum Benchmark {
    /// Inputs for `batch` samples of the model's input shapes: float inputs uniform in [0, 1)
    /// from a fixed seed; integer inputs (token ids, segment ids, padding masks) 1 everywhere, a
    /// token every vocabulary has and a mask that keeps every position. Dimensions the model
    /// leaves open (a sequence length) take `length`; nil refuses such a model.
    public static func randomInputs(for model: Model, batch: Int, length: Int?, seed: UInt64 = 1) throws(EngineError) -> [Tensor] {
        let shapes: [String: Shape]
        do { shapes = try model.outputShapes() } catch { throw .invalidModel(error.description) }
        var random = SplitMix64(seed: seed)
        var inputs: [Tensor] = []
        for input in model.inputs {
            guard let shape = shapes[input.layer], !shape.isEmpty else { throw .badInput(name: input.layer, reason: "its shape is unknown") }
            var dimensions = [batch]
            for dimension in shape.dropFirst() {
                guard let size = dimension ?? length else {
                    throw .badInput(name: input.layer, reason: "its shape \(Self.describe(shape)) leaves a dimension open: give its length (--length) or inputs (--input)")
                }
                dimensions.append(size)
            }
            let count = dimensions.reduce(1, *)
            guard count <= 1 << 31 else { throw .badInput(name: input.layer, reason: "\(dimensions) is more than 2³¹ values") }
            let integer = isInteger(model.layer(named: input.layer))
            inputs.append(Tensor(shape: dimensions, data: (0..<count).map { _ in integer ? 1 : Float(random.next() >> 40) / Float(1 << 24) }))
        }
        return inputs
    }

    /// The input layer's dtype (a name, or Keras 3's DTypePolicy) is an integer or bool type.
    static func isInteger(_ layer: Layer?) -> Bool {
        let dtype = layer?.config["dtype"]
        let name = dtype?.stringValue ?? dtype?["config"]?["name"]?.stringValue ?? "float32"
        return name.hasPrefix("int") || name.hasPrefix("uint") || name == "bool"
    }

    static func describe(_ shape: Shape) -> String { "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")" }

    /// Runs `warmup` untimed and then `iterations` timed predictions of `inputs` (one batch), and
    /// with `layers` as many more timing each layer's op. `progress` gets the runs done and the
    /// total.
    public static func run(
        _ executor: Executor, inputs: [Tensor], warmup: Int, iterations: Int, layers: Bool,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(EngineError) -> BenchmarkResult {
        let total = warmup + iterations * (layers ? 2 : 1)
        var done = 0
        func step() {
            done += 1
            progress?(done, total)
        }
        // One more untimed run, first, counts the multiply-adds.
        let multiplyAdds = try ProductCount.counting { () throws(EngineError) in _ = try executor.predict(inputs) }
        for _ in 0..<warmup {
            _ = try executor.predict(inputs)
            step()
        }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            _ = try executor.predict(inputs)
            times.append((ContinuousClock.now - start).seconds)
            step()
        }
        var layerTimes: [LayerTime] = []
        if layers {
            // Per layer: the multiply-adds of one batch, counted layer by layer on the whole
            // batch (they do not depend on how a prediction splits it), then the times of each
            // run as predictions run it (``Executor/predict(_:observe:)``).
            var order: [String] = []
            var samples: [String: (className: String, times: [Double], multiplyAdds: Int)] = [:]
            var before = 0
            _ = try ProductCount.counting { () throws(EngineError) in
                _ = try executor.callOutputs(inputs) { layer, _ in
                    let now = ProductCount.current
                    if samples[layer.name] == nil {
                        order.append(layer.name)
                        samples[layer.name] = (layer.className, [], 0)
                    }
                    samples[layer.name]!.multiplyAdds += now - before
                    before = now
                }
            }
            for _ in 0..<iterations {
                _ = try executor.predict(inputs) { layer, seconds in
                    if samples[layer.name] == nil {
                        order.append(layer.name)
                        samples[layer.name] = (layer.className, [], 0)
                    }
                    samples[layer.name]!.times.append(seconds)
                }
                step()
            }
            // A shared layer runs once per call: its times add up within a run.
            let runs = max(iterations, 1)
            for name in order {
                guard let sample = samples[name] else { continue }
                let perRun = sample.times.count / runs
                let totals = stride(from: 0, to: perRun * runs, by: max(perRun, 1)).map { sample.times[$0..<($0 + perRun)].reduce(0, +) }
                layerTimes.append(LayerTime(name: name, className: sample.className, medianSeconds: Statistics.median(totals),
                                            multiplyAdds: sample.multiplyAdds, fusedInto: executor.fusedInto[name]))
            }
        }
        let plan = executor.batchPlan(inputs, threads: Parallel.threadCount)
        return BenchmarkResult(batch: inputs.first?.shape.first ?? 0, threads: Parallel.threadCount, chunks: plan.chunks, sideBySide: plan.sideBySide,
                               warmup: warmup, times: times, multiplyAdds: multiplyAdds, layers: layers ? layerTimes : nil)
    }
}

/// One layer's share of a batch (``Benchmark/run(_:inputs:warmup:iterations:layers:progress:)``).
public struct LayerTime: Sendable {
    public let name: String
    public let className: String
    /// Median over the runs of the layer's time in one batch (all its calls), in seconds.
    public let medianSeconds: Double
    /// Multiply-adds of its products in one batch.
    public let multiplyAdds: Int
    /// The layer whose op does this one's work (``Fusion``), whose time includes it.
    public let fusedInto: String?
}

/// What `laq bench` reports.
public struct BenchmarkResult: Sendable {
    public let batch: Int
    public let threads: Int
    /// The chunks of samples a prediction ran the batch in (1: whole), and whether side by side,
    /// one per thread (``Executor/predict(_:observe:)``).
    public let chunks: Int
    public let sideBySide: Bool
    public let warmup: Int
    /// Seconds per batch, one per timed run, in run order.
    public let times: [Double]
    /// Multiply-adds of one batch's products.
    public let multiplyAdds: Int
    /// Per layer, in the order they run (nil: not measured).
    public let layers: [LayerTime]?

    public var median: Double { Statistics.median(times) }
    public var minimum: Double { times.min() ?? 0 }
    /// The 90th percentile (nearest rank).
    public var p90: Double { Statistics.percentile(times, 0.9) }
    public var samplesPerSecond: Double { median > 0 ? Double(batch) / median : 0 }
    /// 2 × multiply-adds ÷ the median time, in 10⁹ per second.
    public var gflops: Double { median > 0 ? 2 * Double(multiplyAdds) / median / 1e9 : 0 }

    /// The result for scripts: times in milliseconds.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "batch": .int(Int64(batch)), "threads": .int(Int64(threads)), "chunks": .int(Int64(chunks)), "chunks_side_by_side": .bool(sideBySide),
            "warmup": .int(Int64(warmup)),
            "iterations": .int(Int64(times.count)),
            "median_ms": .double(median * 1000), "min_ms": .double(minimum * 1000), "p90_ms": .double(p90 * 1000),
            "samples_per_second": .double(samplesPerSecond), "multiply_adds": .int(Int64(multiplyAdds)), "gflops": .double(gflops),
            "times_ms": .array(times.map { .double($0 * 1000) }),
        ]
        if let layers {
            let total = layers.reduce(0) { $0 + $1.medianSeconds }
            object["layers"] = .array(layers.map { layer in
                var item: [String: JSONValue] = [
                    "name": .string(layer.name), "class_name": .string(layer.className), "median_ms": .double(layer.medianSeconds * 1000),
                    "share": .double(total > 0 ? layer.medianSeconds / total : 0), "multiply_adds": .int(Int64(layer.multiplyAdds)),
                ]
                if let fusedInto = layer.fusedInto { item["fused_into"] = .string(fusedInto) }
                return .object(item)
            })
        }
        return .object(object)
    }
}

enum Statistics {
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// The nearest-rank percentile: the smallest value with at least `fraction` of them ≤ it.
    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
