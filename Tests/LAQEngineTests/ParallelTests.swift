import CLAQKernels
import Dispatch
import Glibc
import Synchronization
import Testing
@testable import LAQEngine

/// laq's worker thread (`laq_parallel_halves`) and ``Parallel/halves(_:large:_:)`` on top of it:
/// every index is visited exactly once, whichever thread runs it, also when many threads split
/// loops at the same time (one holds the worker; the others fall back to libdispatch). Serialized:
/// the 8-thread test would hold the worker through most of the one-call test.
@Suite(.serialized) struct ParallelTests {
    /// Counts visits per index.
    final class Visits: Sendable {
        let counts: Mutex<[Int]>
        init(_ count: Int) { counts = Mutex([Int](repeating: 0, count: count)) }
        func visit(_ range: Range<Int>) { counts.withLock { for i in range { $0[i] += 1 } } }
        var all: [Int] { counts.withLock { $0 } }
    }

    @Test("the caller runs [0, split) and the worker [split, count), each once, before the call returns; the caller takes the upper half back only from a worker slow to start it")
    func worker() {
        var onWorker = 0
        var calls = 0
        // Tests running beside this one use the worker too (the call then returns 0 at once):
        // this one then sleeps a little and tries again, taking no core from them.
        let deadline = ContinuousClock.now + .seconds(300)
        // At least 200 calls, and more (up to 20,000) until the worker has run a half: on a
        // machine without a free core it may be slower than the caller's 200 µs of patience.
        while calls < 200 || (onWorker == 0 && calls < 20_000), ContinuousClock.now < deadline {
            // Slots 0–2: begin, end and thread of the lower half; 3–5: of the upper half.
            var slots = [UInt](repeating: 0, count: 6)
            let ran = slots.withUnsafeMutableBufferPointer { buffer in
                laq_parallel_halves({ raw, begin, end in
                    let slots = raw!.assumingMemoryBound(to: UInt.self) + (begin == 0 ? 0 : 3)
                    (slots[0], slots[1], slots[2]) = (UInt(begin), UInt(end), UInt(pthread_self()))
                }, buffer.baseAddress, 10, 3)
            }
            guard ran == 1 else {
                usleep(200)
                continue
            }
            calls += 1
            #expect(Array(slots[0..<2]) == [0, 3] && Array(slots[3..<5]) == [3, 10])
            #expect(slots[2] == UInt(pthread_self()))
            if slots[5] != slots[2] { onWorker += 1 }
        }
        #expect(calls >= 200)
        #expect(onWorker > 0, "the worker ran none of \(calls) upper halves")
    }

    @Test("Parallel.halves from 8 threads at once, 300 loops each: every index once per loop")
    func concurrentCallers() {
        let loops = 300, size = 1001
        let visits = Visits(size)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<loops { Parallel.halves(size, large: true) { visits.visit($0) } }
        }
        #expect(visits.all == [Int](repeating: 8 * loops, count: size))
    }

    @Test("small loops and single elements run on the calling thread, whole")
    func small() {
        let visits = Visits(5)
        Parallel.halves(5, large: false) { visits.visit($0) }
        Parallel.halves(1, large: true) { visits.visit($0) }
        #expect(visits.all == [2, 1, 1, 1, 1])
    }
}
