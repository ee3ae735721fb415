import CLAQKernels
import Dispatch

/// The CPU the kernels of `CLAQKernels` run on.
enum CPU {
    /// The best instruction set this machine has (CPUID): scalar 0, AVX2 1, AVX-512 2, AVX-512 VNNI 3.
    static let isa = laq_kernels_best_isa()
}

/// Work split between the machine's two cores (laq's target: 2 cores), for loops whose
/// iterations are independent.
enum Parallel {
    /// Element-wise passes (activations, optimizer updates) over at least this many values are
    /// large enough for two threads.
    static let elementwiseCount = 1 << 16

    /// Runs `body` over `0..<count`: on two threads, each with one half, when the work is large
    /// (`large`), else once over the whole range on this thread. Returns after both halves.
    ///
    /// The upper half goes to laq's worker thread (`laq_parallel_halves`), which waits for the
    /// next job spinning briefly rather than asleep: a batch-1 product is a fraction of a
    /// millisecond, and waking a sleeping thread (as libdispatch does) cost 0.07–0.09 ms of it.
    /// When another thread is using the worker, libdispatch splits the loop instead; when the
    /// worker has not started the upper half 200 µs after this thread finished the lower one,
    /// this thread runs it too.
    static func halves(_ count: Int, large: Bool, _ body: @Sendable (Range<Int>) -> Void) {
        guard large, count >= 2 else {
            body(0..<count)
            return
        }
        let half = count / 2
        let ran = withoutActuallyEscaping(body) { body in
            var job = RangeJob(body: body)
            return withUnsafeMutablePointer(to: &job) { laq_parallel_halves(RangeJob.run, $0, count, half) }
        }
        guard ran == 0 else { return }
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            body(part == 0 ? 0..<half : half..<count)
        }
    }
}

/// A loop body handed to C as a context pointer (on the caller's stack: no allocation).
private struct RangeJob {
    let body: @Sendable (Range<Int>) -> Void

    static let run: laq_range_fn = { context, begin, end in
        context!.assumingMemoryBound(to: RangeJob.self).pointee.body(begin..<end)
    }
}

/// A pointer handed to the threads of ``Parallel/halves(_:large:_:)``; each thread touches its
/// own part, and the call returns only after both have finished.
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
