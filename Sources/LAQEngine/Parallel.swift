import CLAQKernels
import Foundation

/// The CPU the kernels of `CLAQKernels` run on.
enum CPU {
    /// The best instruction set this machine has (CPUID): scalar 0, AVX2 1, AVX-512 2, AVX-512 VNNI 3,
    /// and VBMI with GFNI 4.
    static let isa = laq_kernels_best_isa()
}

/// laq's threads: a pool of workers that, with the calling thread, share loops whose iterations
/// are independent, products included (OpenBLAS itself runs single-threaded: see ``BLAS``).
///
/// A loop is split into contiguous parts (how many follows from its size and the thread count),
/// and a part's result does not depend on which thread runs it or on the other parts: outputs
/// are bit-identical for any number of threads. Reductions (a product's long inner dimension
/// split into partial sums) split by their shape alone, never by the thread count.
public enum Parallel {
    /// Element-wise passes (activations, optimizer updates) take one part, and so at most one
    /// thread, per half this many values: two from 2¹⁶ on, as measured on two cores (a thread
    /// hand-over costs a few microseconds, a pass over 2¹⁵ floats about as much).
    static let elementwiseCount = 1 << 16

    /// Threads laq's loops may use, the calling thread included: as set by
    /// ``configure(threads:environment:)``, called with nil here when nothing has called it yet.
    public static var threadCount: Int {
        let count = Int(laq_pool_threads())
        if count > 0 { return count }
        configure(threads: nil)
        return Int(laq_pool_threads())
    }

    /// Uses `threads` threads for laq's loops and products (clamped to 1…256); nil chooses
    /// ``defaultThreadCount(environment:)``. OpenBLAS itself then runs on the calling thread
    /// only: laq shares its products between its own threads (see ``BLAS``).
    public static func configure(threads: Int?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let count = min(256, max(1, threads ?? defaultThreadCount(environment: environment)))
        BLASThreads.runOnCallingThread()
        laq_pool_set_threads(Int32(count))
    }

    /// `LAQ_NUM_THREADS` when set to a positive integer, else every CPU the process may use
    /// (``availableCPUs``).
    public static func defaultThreadCount(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        if let text = environment["LAQ_NUM_THREADS"], let count = Int(text), count > 0 { return count }
        return availableCPUs
    }

    /// The CPUs this process may use: its affinity mask (taskset, a container's cpuset), capped
    /// by the CPU quota of its cgroup and of every cgroup above it (a container's `--cpus`,
    /// cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`), rounded up; at least 1.
    public static var availableCPUs: Int {
        var count = Int(laq_affinity_cpus())
        if count <= 0 { count = ProcessInfo.processInfo.activeProcessorCount }
        if let quota = CGroupQuota.cpus() { count = min(count, quota) }
        return max(1, count)
    }

    /// Runs `body` over `0..<count` in contiguous parts, one per `grain` units of `work` (the
    /// loop's total cost in any unit), at most one per thread and per iteration; returns after
    /// every part has run. A loop too small for two parts, or one started while another holds
    /// the pool (nested or concurrent), runs on this thread as one range.
    ///
    /// `tapered`: two parts per thread instead, shrinking (`laq_parallel_for_tapered`), for long
    /// loops whose iterations cost about the same: on a machine shared with other work, a thread
    /// whose core is slowed then holds the others up for a small last part, not for its share.
    static func forEach(_ count: Int, work: Int, grain: Int = elementwiseCount / 2, tapered: Bool = false,
                        _ body: @Sendable (Range<Int>) -> Void) {
        let threads = threadCount
        let parts = min(tapered && threads > 1 ? 2 * threads : threads, count, work / max(grain, 1))
        guard parts >= 2 else {
            if count > 0 { body(0..<count) }
            return
        }
        let ran = withoutActuallyEscaping(body) { body in
            var job = RangeJob(body: body)
            return withUnsafeMutablePointer(to: &job) {
                tapered ? laq_parallel_for_tapered(RangeJob.run, $0, count, parts) : laq_parallel_for(RangeJob.run, $0, count, parts)
            }
        }
        if ran == 0 { body(0..<count) }
    }
}

extension Parallel {
    /// `body(i)` for every i in `0..<count`, each index its own part, claimed by whichever thread
    /// is free (for a few long jobs of uneven or unsteady cost: a batch's chunks); loops inside
    /// `body` run on its thread alone (``threadCount`` is 1 there). Returns after every index has
    /// run; on this thread alone where the pool is held or there is one thread.
    static func forEachIndex(_ count: Int, _ body: @Sendable (Int) -> Void) {
        guard count >= 2, threadCount >= 2 else {
            for index in 0..<max(count, 0) { body(index) }
            return
        }
        let ran = withoutActuallyEscaping(body) { body in
            var job = RangeJob { range in
                for index in range { body(index) }
            }
            return withUnsafeMutablePointer(to: &job) { laq_parallel_for(RangeJob.run, $0, count, count) }
        }
        if ran == 0 {
            for index in 0..<count { body(index) }
        }
    }
}

extension Parallel {
    /// `body(i)` for every i in `0..<count`, the indices shared among laq's threads in contiguous
    /// parts (for a few large independent jobs, such as quantizing whole tensors); the results
    /// are in index order, and the same for any thread count when `body` depends on i alone.
    public static func map<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        let slots = Slots<T>(count)
        forEach(count, work: count, grain: 1) { range in
            for index in range { slots.set(index, body(index)) }
        }
        return slots.values.map { $0! }
    }
}

/// Results written from several threads, one index each.
private final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [T?]
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: T) { lock.withLock { values[index] = value } }
}

extension Parallel {
    /// c = Σ_p partial_p over `parts` partial results of `length` floats (c += Σ when
    /// `accumulate`): `body(p, buffer)` adds part p's result into a zeroed buffer, the parts run
    /// as ``forEach(_:work:grain:_:)`` runs them, and the partials are added in part order. The
    /// sum is the same on any number of threads when `parts` comes from the problem's shape, never
    /// from the thread count.
    static func sumOfParts(
        _ parts: Int, length: Int, work: Int, grain: Int = elementwiseCount / 2, into c: UnsafeMutablePointer<Float>, accumulate: Bool,
        _ body: @Sendable (Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        guard length > 0 else { return }
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: parts * length)
        partials.initialize(repeating: 0, count: parts * length)
        defer { partials.deallocate() }
        let shared = SharedPointer(partials)
        forEach(parts, work: work, grain: grain) { range in
            for part in range { body(part, shared.base + part * length) }
        }
        for index in 0..<length {
            var sum = partials[index]
            for part in 1..<max(parts, 1) { sum += partials[part * length + index] }
            c[index] = accumulate ? c[index] + sum : sum
        }
    }
}

/// CPU quotas of the process's cgroups (Linux). A quota of q µs per period of p µs allows ⌈q/p⌉
/// CPUs' worth of time; the smallest quota on the path from the process's cgroup to the root
/// applies. `root` prefixes every path read (tests give a directory laid out as / is).
enum CGroupQuota {
    static func cpus(root: String = "") -> Int? {
        guard let membership = try? String(contentsOfFile: root + "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var smallest: Int?
        for line in membership.split(separator: "\n") {
            // hierarchy-ID:controllers:path; v2 is "0::path", v1 lists "cpu" among the controllers.
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0", fields[1].isEmpty {
                for directory in ancestors(of: path, under: root + "/sys/fs/cgroup") {
                    if let cpus = quotaV2(directory) { smallest = min(smallest ?? cpus, cpus) }
                }
            } else if fields[1].split(separator: ",").contains("cpu") {
                for mount in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
                    for directory in ancestors(of: path, under: root + mount) {
                        if let cpus = quotaV1(directory) { smallest = min(smallest ?? cpus, cpus) }
                    }
                }
            }
        }
        return smallest
    }

    /// `root` + `path` and each directory above it up to `root` (a container sees its own
    /// cgroup as the root, so the path may not exist below it: those are skipped).
    private static func ancestors(of path: String, under root: String) -> [String] {
        var components = path.split(separator: "/").map(String.init)
        var directories: [String] = []
        while true {
            directories.append(([root] + components).joined(separator: "/"))
            guard !components.isEmpty else { return directories }
            components.removeLast()
        }
    }

    /// cgroup v2: `cpu.max` is "QUOTA PERIOD" or "max PERIOD".
    private static func quotaV2(_ directory: String) -> Int? {
        guard let text = try? String(contentsOfFile: directory + "/cpu.max", encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let quota = Int(fields[0]), let period = Int(fields[1]) else { return nil }
        return cpus(quota: quota, period: period)
    }

    /// cgroup v1: `cpu.cfs_quota_us` (−1: none) and `cpu.cfs_period_us`.
    private static func quotaV1(_ directory: String) -> Int? {
        func number(_ name: String) -> Int? {
            (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        guard let quota = number("cpu.cfs_quota_us"), let period = number("cpu.cfs_period_us") else { return nil }
        return cpus(quota: quota, period: period)
    }

    static func cpus(quota: Int, period: Int) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }
}

/// A loop body handed to C as a context pointer (on the caller's stack: no allocation).
private struct RangeJob {
    let body: @Sendable (Range<Int>) -> Void

    static let run: laq_range_fn = { context, begin, end in
        context!.assumingMemoryBound(to: RangeJob.self).pointee.body(begin..<end)
    }
}

/// A pointer handed to the threads of ``Parallel/forEach(_:work:grain:_:)``; each part touches
/// its own memory, and the call returns only after every part has finished.
struct SharedPointer<Pointee>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Pointee>
    init(_ base: UnsafeMutablePointer<Pointee>) { self.base = base }
    init(_ base: UnsafePointer<Pointee>) { self.base = UnsafeMutablePointer(mutating: base) }
}

/// How the process's allocator treats the engine's large, short-lived arrays.
public enum EngineMemory {
    /// Keeps freed blocks of up to 128 MiB in the heap for reuse. Inference allocates each
    /// layer's output afresh (megabytes for a 1024-wide layer and a large batch; training steps
    /// reuse theirs through a ``Workspace``); glibc returns blocks that large to the system when
    /// freed, and the next call takes them back page by page, zeroed by the kernel. The price is
    /// a resident size that stays near its peak. Call once, at start; returns false where the C
    /// library is not glibc.
    @discardableResult
    public static func keepFreedBlocks() -> Bool { laq_keep_freed_blocks(128 << 20) == 1 }
}
