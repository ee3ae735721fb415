import CLAQKernels
import Dispatch
import Foundation
import Glibc
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Synchronization
import Testing
@testable import LAQEngine

/// laq's worker pool (`laq_parallel_for`) and ``Parallel`` on top of it: every part runs exactly
/// once with the boundaries the caller fixed, whichever thread runs it, also when many threads
/// split loops at once; the thread count comes from the options, the environment, the affinity
/// mask and cgroup quotas; and kernels give the same bits on 1, 2, 3 and 8 threads.
/// Serialized. It changes the thread count, as FusionTests and PanelKernelTests do while other
/// suites run: no suite's results depend on it, by design, and a loop that finds the pool held
/// by another suite runs on its own thread.
@Suite(.serialized) struct ParallelTests {
    /// Counts visits per index.
    final class Visits: Sendable {
        let counts: Mutex<[Int]>
        init(_ count: Int) { counts = Mutex([Int](repeating: 0, count: count)) }
        func visit(_ range: Range<Int>) { counts.withLock { for i in range { $0[i] += 1 } } }
        var all: [Int] { counts.withLock { $0 } }
    }

    /// Runs `body` with `threads` threads, then restores the default.
    static func with<T>(threads: Int, _ body: () throws -> T) rethrows -> T {
        Parallel.configure(threads: threads)
        defer { Parallel.configure(threads: nil) }
        return try body()
    }

    @Test("each part [i·count/parts, (i+1)·count/parts) runs once before the call returns, some on workers")
    func parts() {
        Self.with(threads: 4) {
            var calls = 0, onWorkers = 0
            let deadline = ContinuousClock.now + .seconds(120)
            // At least 200 calls, and more (up to 20,000) until a worker has run a part: on a busy
            // machine the caller may claim every part before a worker wakes.
            while calls < 200 || (onWorkers == 0 && calls < 20_000), ContinuousClock.now < deadline {
                // Per part: begin, end, thread.
                var slots = [UInt](repeating: .max, count: 12)
                let ran = slots.withUnsafeMutableBufferPointer { buffer in
                    laq_parallel_for({ raw, begin, end in
                        let part = [0: 0, 2: 1, 5: 2, 7: 3][begin]!
                        let slots = raw!.assumingMemoryBound(to: UInt.self) + 3 * part
                        (slots[0], slots[1], slots[2]) = (UInt(begin), UInt(end), UInt(pthread_self()))
                    }, buffer.baseAddress, 10, 4)
                }
                // 0: the pool was busy with another suite's loop, and nothing ran (the caller then
                // runs the loop itself).
                guard ran == 1 else {
                    #expect(slots.allSatisfy { $0 == .max })
                    continue
                }
                calls += 1
                #expect(stride(from: 0, to: 12, by: 3).map { [slots[$0], slots[$0 + 1]] } == [[0, 2], [2, 5], [5, 7], [7, 10]])
                if stride(from: 2, to: 12, by: 3).contains(where: { slots[$0] != UInt(pthread_self()) }) { onWorkers += 1 }
            }
            #expect(calls > 0, "the pool was busy for the whole test")
            #expect(onWorkers > 0, "workers ran no part of \(calls) loops")
        }
    }

    @Test("tapered parts: part i of P weighs P − i, [S(i)·count/S(P), S(i+1)·count/S(P)) with S(i) = i·P − i(i − 1)/2, each run once")
    func taperedParts() {
        Self.with(threads: 3) {
            // count 100, 4 parts: S = 0, 4, 7, 9, 10 → 0, 40, 70, 90, 100.
            var ran: Int32 = 0
            // Until the pool is free: another suite's prediction may hold it for a whole batch
            // (chunks side by side).
            let deadline = ContinuousClock.now + .seconds(120)
            while ran == 0, ContinuousClock.now < deadline {
                var slots = [Int](repeating: -1, count: 8)
                ran = slots.withUnsafeMutableBufferPointer { buffer in
                    laq_parallel_for_tapered({ raw, begin, end in
                        let part = [0: 0, 40: 1, 70: 2, 90: 3][begin] ?? 4
                        guard part < 4 else { return }
                        let slots = raw!.assumingMemoryBound(to: Int.self) + 2 * part
                        (slots[0], slots[1]) = (begin, end)
                    }, buffer.baseAddress, 100, 4)
                }
                guard ran == 1 else {  // the pool was busy: nothing ran
                    usleep(1000)
                    continue
                }
                #expect(slots == [0, 40, 40, 70, 70, 90, 90, 100])
            }
            #expect(ran == 1, "the pool was busy for the whole test")
            // Through Parallel.forEach: every index once, whatever the count.
            for count in [2, 3, 7, 64, 1001] {
                let visits = Visits(count)
                Parallel.forEach(count, work: count, grain: 1, tapered: true) { visits.visit($0) }
                #expect(visits.all == [Int](repeating: 1, count: count), "\(count)")
            }
        }
    }

    @Test("Parallel.forEach from 8 threads at once, 300 loops each, on 3 threads: every index once per loop")
    func concurrentCallers() {
        Self.with(threads: 3) {
            let loops = 300, size = 1001
            let visits = Visits(size)
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                for _ in 0..<loops { Parallel.forEach(size, work: 1 << 30) { visits.visit($0) } }
            }
            #expect(visits.all == [Int](repeating: 8 * loops, count: size))
        }
    }

    @Test("small loops, single elements and one thread run on the calling thread, whole")
    func small() {
        let visits = Visits(5)
        Self.with(threads: 8) {
            Parallel.forEach(5, work: 10) { visits.visit($0) }
            Parallel.forEach(1, work: 1 << 30) { visits.visit($0) }
            Parallel.forEach(0, work: 1 << 30) { visits.visit($0) }
        }
        Self.with(threads: 1) {
            Parallel.forEach(5, work: 1 << 30) { #expect($0 == 0..<5); visits.visit($0) }
        }
        #expect(visits.all == [3, 2, 2, 2, 2])
    }

    @Test("the thread count: --threads, else LAQ_NUM_THREADS, else the CPUs available; clamped to 1…256")
    func threadCount() {
        defer { Parallel.configure(threads: nil) }
        Parallel.configure(threads: 3, environment: [:])
        #expect(Parallel.threadCount == 3)
        Parallel.configure(threads: 1000, environment: [:])
        #expect(Parallel.threadCount == 256)
        Parallel.configure(threads: nil, environment: ["LAQ_NUM_THREADS": "5"])
        #expect(Parallel.threadCount == 5)
        #expect(Parallel.defaultThreadCount(environment: ["LAQ_NUM_THREADS": "0"]) == Parallel.availableCPUs)
        #expect(Parallel.defaultThreadCount(environment: ["LAQ_NUM_THREADS": "many"]) == Parallel.availableCPUs)
        #expect(Parallel.availableCPUs >= 1 && Parallel.availableCPUs <= Int(laq_affinity_cpus()))
    }

    @Test("cgroup CPU quotas: v2 cpu.max on the path to the root (the smallest), v1 cfs quota and period, none")
    func cgroupQuota() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        func write(_ path: String, _ text: String) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        #expect(CGroupQuota.cpus(root: root.path) == nil, "no /proc/self/cgroup")
        try write("proc/self/cgroup", "0::/box/job\n")
        try write("sys/fs/cgroup/cpu.max", "max 100000\n")
        #expect(CGroupQuota.cpus(root: root.path) == nil, "no quota")
        try write("sys/fs/cgroup/box/cpu.max", "350000 100000\n")
        #expect(CGroupQuota.cpus(root: root.path) == 4, "3.5 CPUs round up")
        try write("sys/fs/cgroup/box/job/cpu.max", "100000 100000\n")
        #expect(CGroupQuota.cpus(root: root.path) == 1, "the smallest on the path")
        try write("proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n1:memory:/docker/abc\n")
        try write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
        try write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        #expect(CGroupQuota.cpus(root: root.path) == 2, "v1, seen from inside the container (its path absent)")
        try write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
        #expect(CGroupQuota.cpus(root: root.path) == nil, "v1 without a quota")
        #expect(CGroupQuota.cpus(quota: 50000, period: 100000) == 1)
    }

    // MARK: The same bits on any number of threads

    static let threadCounts = [1, 2, 3, 8]

    /// `body`'s result on each of ``threadCounts``; expects them all equal, bit for bit.
    static func expectSameBits(_ what: String, _ body: () throws -> [Float]) rethrows {
        var results: [[UInt32]] = []
        for threads in threadCounts {
            let result = try with(threads: threads) { try body() }
            results.append(result.map(\.bitPattern))
        }
        for (index, result) in results.enumerated().dropFirst() {
            let differing = zip(result, results[0]).filter { $0 != $1 }.count
            #expect(differing == 0 && result.count == results[0].count, "\(what): \(threadCounts[index]) threads differ from 1 in \(differing) of \(result.count) values")
        }
    }

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(Int(generator.next() % 20001) - 10000) / 7000 }
    }

    static func product(_ matrix: KernelMatrix, m: Int, k: Int, n: Int, seed: UInt64) -> [Float] {
        let a = random(m * k, seed: seed)
        var c = random(m * n, seed: seed + 1)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { matrix.multiply(a.baseAddress!, m: m, k: k, n: n, into: $0.baseAddress!, accumulate: true) }
        }
        return c
    }

    @Test("packed products (planes, int8 activations, codes through the vector kernel and tiles) give the same bits on 1, 2, 3 and 8 threads",
          arguments: [CodebookLayout.base3(levels: 3), .bits(2, levels: 4), .bits(3, levels: 8), .bits(5, levels: 32)])
    func packedProducts(layout: CodebookLayout) throws {
        let (k, n) = (2100, 700)
        let codebook = PackedKernelTests.random(layout, rows: k, columns: n, perColumn: false, seed: 21)
        let packed = try #require(PackedMatrix(codebook))
        for m in [1, 8, PackedMatrix.planeProductRows + 3, 100] {
            Self.expectSameBits("\(layout) float32, m = \(m)") { Self.product(.packed(packed), m: m, k: k, n: n, seed: 3) }
            if let int8 = PackedMatrix(codebook, activations: .int8), int8.planes != nil {
                Self.expectSameBits("\(layout) int8, m = \(m)") { Self.product(.packed(int8), m: m, k: k, n: n, seed: 3) }
            }
        }
    }

    @Test("float32 products (OpenBLAS, the short and the long inner-product kernels) give the same bits on 1, 2, 3 and 8 threads")
    func floatProducts() {
        for (m, k, n) in [(1, 3000, 900), (8, 1497, 700), (64, 512, 256), (300, 1000, 700), (20000, 9, 32), (5000, 300, 64)] {
            let w = Self.random(k * n, seed: 7)
            Self.expectSameBits("\(m)×\(k)·\(k)×\(n)") { Self.product(.dense(w), m: m, k: k, n: n, seed: 9) }
        }
        // Aᵀ·B with a long inner dimension (a convolution's kernel gradient).
        let (k, m, n) = (50000, 9, 32)
        let a = Self.random(k * m, seed: 11), b = Self.random(k * n, seed: 12)
        Self.expectSameBits("Aᵀ·B, k = \(k)") {
            Matrix.multiply(a, b, m: m, n: n, k: k, transposeA: true)
        }
    }

    @Test("bit-plan candidates (tensor × method jobs on laq's threads) are the same on 1, 2, 3 and 8 threads")
    func bitPlanCandidates() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_fmnist_mlp.h5").path).model
        let optimizer = model.optimizer
        try Self.expectSameBits("sensitivity") {
            try BitBudget.sensitivity(model, settings: QuantizationSettings(method: .lat2a)) { ModelQuantizer.curvature(of: $0, optimizer: optimizer) }
                .flatMap { $0.candidates.flatMap { candidate in
                    // The estimate's 64 bits as two floats' bit patterns, the stored bits exactly.
                    let bits = candidate.estimate.bitPattern
                    return [Float(candidate.storedBits), Float(bitPattern: UInt32(truncatingIfNeeded: bits)), Float(bitPattern: UInt32(bits >> 32))]
                } }
        }
    }

    @Test("a batch in chunks of samples: side by side on 2 and 3 threads, one after another on 1 and 8, with the bits of each chunk run alone on one thread; a layer that does not keep samples apart, or weights heavier than what the chunks' samples move, keep a batch whole")
    func batchChunks() throws {
        func conv(_ filters: Int, _ kernel: Int) -> JSONValue {
            ["filters": .int(Int64(filters)), "kernel_size": [.int(Int64(kernel)), .int(Int64(kernel))], "padding": "same"]
        }
        let model = try GradientTests.functional(input: [nil, 12, 12, 8], [
            ("Conv2D", conv(16, 3), ["in"]), ("BatchNormalization", ["epsilon": 0.001], ["l0"]), ("ReLU", ["max_value": 6.0], ["l1"]),
            ("DepthwiseConv2D", ["kernel_size": [3, 3], "padding": "same"], ["l2"]), ("Conv2D", conv(16, 1), ["l3"]),
            ("Add", ["trainable": true], ["l4", "l2"]), ("GlobalAveragePooling2D", [:], ["l5"]), ("Dense", ["units": 10], ["l6"]),
        ])
        let executor = try Executor(model: model)
        let x = Tensor(shape: [9, 12, 12, 8], data: Self.random(9 * 12 * 12 * 8, seed: 5))
        // The largest call a sample: the Add's two inputs and output, 3 · 12·12·16 floats.
        #expect(executor.sampleSizes([x])?.largest == 3 * 12 * 12 * 16)
        // Found once for the shapes the model declares, used when the inputs have them.
        #expect(executor.chunkFacts.declared?.sizes.largest == 3 * 12 * 12 * 16 && executor.chunkFacts.samplesApart)
        let chunkBytes = 2 * 4 * 3 * 12 * 12 * 16
        // Chunks of 2 samples: [0, 1), [1, 3), [3, 5), [5, 7), [7, 9).
        let plans = [1, 2, 3, 8].map { executor.batchPlan([x], threads: $0, chunkBytes: chunkBytes) }
        #expect(plans.map(\.chunks) == [5, 5, 5, 5] && plans.map(\.sideBySide) == [false, true, true, false])
        #expect((0..<5).map { plans[0].range($0) } == [0..<1, 1..<3, 3..<5, 5..<7, 7..<9])
        // Each chunk's samples run alone, on one thread, one after another (OpenBLAS, which runs
        // the Dense layer, may round a product of 9 rows otherwise than one of 2).
        let alone = try Self.with(threads: 1) {
            try (0..<5).map { try executor.outputs(of: executor.callOutputs([x.rows(plans[0].range($0))])) }
        }
        let whole = (0..<alone[0].count).map { output in
            Tensor(shape: [9] + alone[0][output].shape.dropFirst(), data: alone.flatMap { $0[output].data })
        }
        for threads in Self.threadCounts {
            let observed = Mutex<[String: Int]>([:])
            let chunked = try Self.with(threads: threads) {
                try executor.predict([x], observe: { layer, seconds in
                    #expect(seconds >= 0)
                    observed.withLock { $0[layer.name, default: 0] += 1 }
                }, chunkBytes: chunkBytes)
            }
            #expect(chunked.map(\.shape) == whole.map(\.shape))
            #expect(chunked.map { $0.data.map(\.bitPattern) } == whole.map { $0.data.map(\.bitPattern) }, "\(threads) threads")
            // Every step of the plan, once a chunk.
            let steps = executor.plan.steps.filter { !$0.isInput }.map { executor.model.layers[$0.layer].name }
            #expect(observed.withLock { $0 } == Dictionary(uniqueKeysWithValues: steps.map { ($0, 5) }), "\(threads) threads")
        }
        // A recurrent layer reads the samples' steps in order, but its kind does not say it keeps
        // samples apart: the batch stays whole.
        let recurrent = try Executor(model: GradientTests.functional(input: [nil, 6, 4], [("SimpleRNN", ["units": 8], ["in"])]))
        let sequence = Tensor(shape: [9, 6, 4], data: Self.random(9 * 6 * 4, seed: 6))
        #expect(recurrent.batchPlan([sequence], threads: 2, chunkBytes: 4).chunks == 1)
        // Weights as heavy as a chunk's tensors: chunks side by side only (9,504 floats a sample
        // through a 3×3 convolution of 18,688 weights; 2 samples a chunk).
        let heavy = try Executor(model: GradientTests.functional(input: [nil, 6, 6, 8], [("Conv2D", conv(256, 3), ["in"])]))
        let small = Tensor(shape: [9, 6, 6, 8], data: Self.random(9 * 6 * 6 * 8, seed: 8))
        #expect(heavy.sampleSizes([small])?.moved == 6 * 6 * (8 + 256) && heavy.chunkFacts.weightBytes == 4 * (9 * 8 * 256 + 256))
        #expect([1, 2, 3, 8].map { heavy.batchPlan([small], threads: $0, chunkBytes: 2 * 4 * 6 * 6 * (8 + 256)).chunks } == [1, 5, 5, 1])
        // Keras 3's operators keep samples apart on tensors and scalar constants (MobileNetV3's
        // x + 3.0), not with a constant that may broadcast along the batch axis.
        let scalar = try Executor(model: GradientTests.functional(input: [nil, 12, 12, 8], [("Conv2D", conv(16, 3), ["in"]), ("Add", [:], ["l0", "#3.0"])]))
        #expect(scalar.model.layers.last?.kind is OperatorKind)
        #expect(scalar.batchPlan([x], threads: 2, chunkBytes: 2 * 4 * 2 * 12 * 12 * 16).chunks == 5)
        #expect(OperatorKind(operation: .add, operands: [nil, nil]).keepsSamplesApart)
        #expect(!OperatorKind(operation: .multiply, operands: [nil, Tensor(shape: [3], data: [1, 2, 3])]).keepsSamplesApart)
        // Chunks of 2 samples move 2 · 8,266 floats through the calls, against 303,146 weights:
        // whole; and so is a chunk as large as the batch.
        let dense = try Executor(model: GradientTests.functional(input: [nil, 64], [("Dense", ["units": 4096], ["in"]), ("Dense", ["units": 10], ["l0"])]))
        let rows = Tensor(shape: [9, 64], data: Self.random(9 * 64, seed: 7))
        #expect(dense.sampleSizes([rows])?.moved == 64 + 2 * 4096 + 10 && dense.batchPlan([rows], threads: 2, chunkBytes: 2 * 4 * (64 + 4096)).chunks == 1)
        #expect(dense.batchPlan([rows], threads: 2, chunkBytes: 2 * 4 * (64 + 4096) * 100).chunks == 1)
    }
}
