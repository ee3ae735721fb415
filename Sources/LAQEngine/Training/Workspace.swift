/// The memory of training steps, reused from one step to the next: after the first step of a
/// run, a step takes every activation, gradient and scratch buffer from the step before instead
/// of allocating it.
///
/// Pass one workspace to every ``Backpropagation/run(model:inputs:labels:loss:random:workspace:)``
/// of a run. At the start of each step it takes back the buffers of the step before (its
/// outputs, records and gradients, which the caller has finished with by then), keeps as many of
/// each size as that step used, and hands them out again in the new step. A step whose shapes
/// equal the last one's therefore allocates no tensor memory: ``allocations`` stays where it was
/// (what `Tests/LAQEngineTests/WorkspaceTests.swift` checks). Recurrent layers are the exception:
/// their step-by-step traces are still allocated by the layer, and ``allocations`` counts them.
///
/// Buffers are Swift arrays. One is handed out only after its storage is known to be unique (a
/// shared buffer is copied then, and counted as an allocation), so reuse never changes a value
/// the caller still holds: at worst a caller that keeps a step's result costs one copy.
///
/// Not thread-safe: one run, on one thread (the ops' own worker threads only see the kernels' buffers).
public final class Workspace {
    private var floats = BufferPool<Float>()
    private var indices = BufferPool<Int>()
    /// What the last step produced and the caller may still read: taken back at the next step.
    private var lent: [[Float]] = []
    private var lentIndices: [[Int]] = []

    public init() {}

    /// Tensor buffers of the steps so far that did not come from reuse: those the workspace
    /// created because none of the size was free (or a free one was still shared), and those a
    /// step produced without taking them from the workspace (an op that allocates its own).
    /// After the first step it grows only when shapes change, or with recurrent layers.
    public var allocations: Int { floats.allocations + indices.allocations }

    /// Bytes held for reuse between steps.
    public var retainedBytes: Int {
        floats.retainedElements * MemoryLayout<Float>.stride + indices.retainedElements * MemoryLayout<Int>.stride
    }

    /// A buffer of `count` floats whose elements are unspecified (the caller writes them all).
    func floats(_ count: Int) -> [Float] { floats.take(count) }

    /// A buffer of `count` zeros.
    func zeros(_ count: Int) -> [Float] {
        var buffer = floats.take(count)
        Matrix.fill(&buffer, with: 0)
        return buffer
    }

    /// A buffer of `count` indices whose elements are unspecified.
    func indices(_ count: Int) -> [Int] { indices.take(count) }

    /// Takes back an index buffer this step no longer reads (see ``recycle(_:)-([Float])``).
    func recycle(_ buffer: inout [Int]) { indices.giveBack(&buffer) }

    /// Takes back a buffer this step no longer reads, for its later requests (moved: `buffer`
    /// is left empty). Only for a buffer the step took and nothing else holds.
    func recycle(_ buffer: inout [Float]) { floats.giveBack(&buffer) }

    /// Hands `buffer` to the next step (it is taken back when that step starts).
    func lend(_ buffer: [Float]) {
        if !buffer.isEmpty { lent.append(buffer) }
    }

    func lend(_ buffer: [Int]) {
        if !buffer.isEmpty { lentIndices.append(buffer) }
    }

    /// The storage of the last step's inputs and of this one's: the caller's, never reused.
    private var inputs: [UInt?] = []

    /// Starts a step: takes back what the last step lent, except buffers shared with the inputs
    /// of that step or of this one (`keep`: they belong to the caller), and keeps of each size as
    /// many as the last step used.
    func beginStep(keeping keep: [Tensor]) {
        for tensor in keep { inputs.append(Storage.address(tensor.data)) }
        while var buffer = lent.popLast() {
            if !inputs.contains(Storage.address(buffer)) { floats.giveBack(&buffer, lent: true) }
        }
        while var buffer = lentIndices.popLast() { indices.giveBack(&buffer, lent: true) }
        floats.startStep()
        indices.startStep()
        inputs.removeFirst(inputs.count - keep.count)
    }
}

/// Free buffers, and how many of each element count the current step took. Flat arrays searched
/// linearly (a step uses tens of buffers): mutating them in place allocates nothing once their
/// capacity is reached, where arrays nested in a dictionary would copy.
private struct BufferPool<Element: BitwiseCopyable> {
    private var free: [[Element]] = []
    /// (element count, buffers of that count taken this step).
    private var demand: [(count: Int, taken: Int)] = []
    /// The storage of every buffer handed out this step.
    private var handedOut: [UInt?] = []
    private(set) var allocations = 0

    var retainedElements: Int { free.reduce(0) { $0 + $1.count } }

    /// A buffer of `count` unspecified elements, unique (so that writing it copies nothing).
    mutating func take(_ count: Int) -> [Element] {
        guard count > 0 else { return [] }
        if let slot = demand.firstIndex(where: { $0.count == count }) { demand[slot].taken += 1 } else { demand.append((count, 1)) }
        var buffer: [Element]
        if let index = free.lastIndex(where: { $0.count == count }) {
            free.swapAt(index, free.count - 1)
            buffer = free.removeLast()
            // Mutable access copies a shared buffer: do it now, and count it.
            if Storage.makeUnique(&buffer) { allocations += 1 }
        } else {
            allocations += 1
            buffer = Storage.uninitialized(count)
        }
        handedOut.append(Storage.address(buffer))
        return buffer
    }

    /// Keeps `buffer` (moved out: `buffer` is left empty) unless the pool already holds its
    /// storage. A buffer the last step `lent` that the pool never handed out was allocated by
    /// an op of its own: it counts as an allocation.
    mutating func giveBack(_ buffer: inout [Element], lent: Bool = false) {
        defer { buffer = [] }
        guard !buffer.isEmpty else { return }
        let address = Storage.address(buffer)
        if free.contains(where: { Storage.address($0) == address }) { return }
        if lent, !handedOut.contains(address) { allocations += 1 }
        free.append(buffer)
    }

    /// Keeps of each count as many buffers as the step that ended took, and starts counting anew.
    mutating func startStep() {
        for index in free.indices.reversed() {
            let count = free[index].count
            let wanted = demand.first(where: { $0.count == count })?.taken ?? 0
            var before = 0
            for other in 0..<index where free[other].count == count { before += 1 }
            if before >= wanted { free.remove(at: index) }
        }
        for slot in demand.indices { demand[slot].taken = 0 }
        handedOut.removeAll(keepingCapacity: true)
    }
}
