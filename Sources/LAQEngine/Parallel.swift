import Dispatch

/// Work split between the machine's two cores (laq's target: 2 cores), for loops whose
/// iterations are independent.
enum Parallel {
    /// Runs `body` over `0..<count`: on two threads, each with one half, when the work is large
    /// (`large`), else once over the whole range on this thread. Returns after both halves.
    static func halves(_ count: Int, large: Bool, _ body: @Sendable (Range<Int>) -> Void) {
        guard large, count >= 2 else {
            body(0..<count)
            return
        }
        let half = count / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            body(part == 0 ? 0..<half : half..<count)
        }
    }
}

/// A pointer handed to the threads of ``Parallel/halves(_:large:_:)``; each thread touches its
/// own part, and the call returns only after both have finished.
struct SharedPointer<Pointee>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Pointee>
    init(_ base: UnsafeMutablePointer<Pointee>) { self.base = base }
    init(_ base: UnsafePointer<Pointee>) { self.base = UnsafeMutablePointer(mutating: base) }
}
