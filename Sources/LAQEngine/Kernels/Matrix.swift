import CLAQKernels

/// Row-major array helpers of the layers and their backward passes: buffers from a
/// ``Workspace``, products, column sums, and the storage identity the workspace tracks. The
/// raw-pointer loops stay here; callers pass arrays, and every extent is checked against them.
enum Matrix {
    /// The start of `rows` outputs of a layer with `bias`, for a product to add to
    /// (`accumulate`): each row a copy of the bias, or, without one, unspecified elements for a
    /// product that writes them all. Adding the product to the bias in place saves the pass that
    /// zeroes C (BLAS with β = 0) and the pass that adds the bias afterwards.
    /// From `workspace` when given (a training step), else newly allocated (inference).
    static func startingWithBias(_ bias: [Float]?, rows: Int, width: Int, workspace: Workspace? = nil) -> [Float] {
        var start = uninitialized(rows * width, workspace: workspace)
        guard let bias else { return start }
        precondition(bias.count == width, "a bias of \(bias.count) values for rows of \(width)")
        guard rows > 0, width > 0 else { return start }
        start.withUnsafeMutableBufferPointer { buffer in
            bias.withUnsafeBufferPointer { b in
                let (buffer, b) = (SharedPointer(buffer.baseAddress!), SharedPointer(b.baseAddress!))
                Parallel.forEach(rows, work: rows * width) { part in
                    for row in part { (buffer.base + row * width).update(from: b.base, count: width) }
                }
            }
        }
        return start
    }

    /// An array for a product to fill: its elements start unspecified (no zeroing pass), and
    /// every one is written by the product that fills it (a BLAS product with β = 0 or a packed
    /// kernel without `accumulate`, which write all of C). From `workspace` when given.
    static func uninitialized(_ count: Int, workspace: Workspace? = nil) -> [Float] {
        workspace?.floats(count) ?? Storage.uninitialized(count)
    }

    /// A copy of `values` for an op to write, from `workspace` when given; without one, `values`
    /// itself (the op's first write then copies, as arrays do).
    static func copy(_ values: [Float], workspace: Workspace?) -> [Float] {
        guard let workspace, !values.isEmpty else { return values }
        var copy = workspace.floats(values.count)
        copy.withUnsafeMutableBufferPointer { out in
            values.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
        return copy
    }

    /// `count` zeros, from `workspace` when given.
    static func zeros(_ count: Int, workspace: Workspace? = nil) -> [Float] {
        workspace?.zeros(count) ?? [Float](repeating: 0, count: count)
    }

    /// Sets every element of `buffer` to `value` in place (no new storage when it is unique);
    /// large buffers are split between laq's threads.
    static func fill<Element: Sendable>(_ buffer: inout [Element], with value: Element) {
        let count = buffer.count
        buffer.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let shared = SharedPointer(base)
            Parallel.forEach(count, work: count) { range in (shared.base + range.lowerBound).update(repeating: value, count: range.count) }
        }
    }

    /// A (m×k) · B (k×n), with optional transposes of the stored arrays; C from `workspace` when given.
    static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
                         workspace: Workspace? = nil) -> [Float] {
        guard m > 0, n > 0, k > 0 else { return zeros(m * n, workspace: workspace) }
        var c = uninitialized(m * n, workspace: workspace)
        BLAS.gemm(a, b, into: &c, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        return c
    }

    /// Column sums of a rows×width matrix (rows added in order, `laq_column_sums`: up to 64
    /// columns in registers). Blocks of 16 columns are split between laq's threads: each column
    /// is summed by one thread, in row order, so the bits do not depend on the thread count.
    static func columnSums(_ a: [Float], rows: Int, width: Int, workspace: Workspace? = nil) -> [Float] {
        precondition(a.count >= rows * width, "\(a.count) values for \(rows) × \(width)")
        var sums = zeros(width, workspace: workspace)
        a.withUnsafeBufferPointer { a in
            sums.withUnsafeMutableBufferPointer { sums in
                guard let a = a.baseAddress, let sums = sums.baseAddress else { return }
                let (matrix, totals) = (SharedPointer(a), SharedPointer(sums))
                let blocks = (width + 15) / 16
                Parallel.forEach(blocks, work: rows * width) { part in
                    laq_column_sums(matrix.base, rows, width, part.lowerBound * 16, min(part.upperBound * 16, width), totals.base, CPU.isa)
                }
            }
        }
        return sums
    }

    /// `body` with the address of `values`' elements, nil for no array (or an empty one).
    static func withPointer<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// total[i] += addend[i] for every i.
    static func add(_ addend: [Float], to total: inout [Float]) {
        let count = addend.count
        precondition(count == total.count, "adding \(count) values to \(total.count)")
        total.withUnsafeMutableBufferPointer { total in
            addend.withUnsafeBufferPointer { addend in
                guard let total = total.baseAddress, let addend = addend.baseAddress else { return }
                for i in 0..<count { total[i] += addend[i] }
            }
        }
    }

    /// Copies `count` values of `source` from `sourceOffset` into `target` at `targetOffset`.
    static func copy(_ source: [Float], from sourceOffset: Int = 0, into target: inout [Float], at targetOffset: Int = 0, count: Int) {
        guard count > 0 else { return }
        precondition(sourceOffset >= 0 && sourceOffset + count <= source.count && targetOffset >= 0 && targetOffset + count <= target.count,
                     "copying \(count) values from \(sourceOffset) of \(source.count) to \(targetOffset) of \(target.count)")
        target.withUnsafeMutableBufferPointer { target in
            source.withUnsafeBufferPointer { source in
                (target.baseAddress! + targetOffset).update(from: source.baseAddress! + sourceOffset, count: count)
            }
        }
    }
}

/// Which storage an array uses: what ``Workspace`` compares to tell buffers apart (an address
/// as a number, never dereferenced).
enum Storage {
    /// The address of `array`'s elements; nil for an array without storage.
    static func address<Element>(_ array: [Element]) -> UInt? {
        array.withUnsafeBufferPointer { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    /// Makes `array`'s storage unique (copying it when it is shared); true when that copied.
    static func makeUnique<Element>(_ array: inout [Element]) -> Bool {
        let before = address(array)
        let after = array.withUnsafeMutableBufferPointer { $0.baseAddress.map { UInt(bitPattern: $0) } }
        return before != after
    }

    /// `count` elements whose values are unspecified (the caller writes them all).
    static func uninitialized<Element: BitwiseCopyable>(_ count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
