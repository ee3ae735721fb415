/// NumPy's broadcasting, as Keras' merge layers and tensor operators apply it: shapes aligned at
/// their last axis, a missing or size-1 axis stretched to the other's size.
enum Broadcast {
    /// The broadcast shape of `shapes`, or nil when two sizes differ and neither is 1.
    static func shape(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            for (axis, size) in shape.enumerated() {
                let target = rank - shape.count + axis
                if result[target] == 1 { result[target] = size } else if size != 1, size != result[target] { return nil }
            }
        }
        return result
    }

    /// The same for shapes with unknown (nil) sizes: an unknown size broadcasts to the other
    /// operand's known size, as Keras infers it.
    static func shape(_ shapes: [Shape]) -> Shape? {
        let rank = shapes.map(\.count).max() ?? 0
        var result: Shape = Array(repeating: 1, count: rank)
        for shape in shapes {
            for (axis, size) in shape.enumerated() {
                let target = rank - shape.count + axis
                switch (result[target], size) {
                case (1?, _): result[target] = size
                case (_, 1?): break
                case (nil, let known): result[target] = known
                case (_, nil): break
                case let (a?, b?): if a != b { return nil }
                }
            }
        }
        return result
    }

    /// For each axis of `output`, the step in a row-major array of `shape` (broadcast to
    /// `output`) when that axis' index grows by one: 0 along stretched axes.
    static func strides(of shape: [Int], in output: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: output.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            let target = output.count - shape.count + axis
            strides[target] = shape[axis] == 1 && output[target] != 1 ? 0 : step
            step *= shape[axis]
        }
        return strides
    }

    /// Calls `body(i, offsets)` for every element i of `output` in row-major order, with the
    /// offset of its source in each of the arrays whose `strides` are given.
    static func forEach(_ output: [Int], strides: [[Int]], _ body: (_ index: Int, _ offsets: [Int]) -> Void) {
        let count = output.reduce(1, *)
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: output.count)
        var offsets = [Int](repeating: 0, count: strides.count)
        for i in 0..<count {
            body(i, offsets)
            var axis = output.count - 1
            while axis >= 0 {
                index[axis] += 1
                for k in strides.indices { offsets[k] += strides[k][axis] }
                if index[axis] < output[axis] { break }
                for k in strides.indices { offsets[k] -= strides[k][axis] * output[axis] }
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// The elements of `output` in runs along its innermost axes, in row-major order:
    /// `body(start, offset, length, step)` for each run of `length` elements from output index
    /// `start`, whose sources in the array of `strides` are offset, offset + step, … (step 1
    /// where the array runs along those axes as the output does, 0 where it repeats one value
    /// there, as a squeeze-and-excitation's (batch, 1, 1, channels) scale over each pixel's
    /// channels). ``forEach(_:strides:_:)`` one element at a time took 10–20 ns an element.
    static func forEachRun(_ output: [Int], strides: [Int], _ body: (_ start: Int, _ offset: Int, _ length: Int, _ step: Int) -> Void) {
        guard output.reduce(1, *) > 0 else { return }
        // The innermost axes the source steps through contiguously, else those it repeats.
        var axis = output.count - 1, length = 1
        while axis >= 0, strides[axis] == length || output[axis] == 1 {
            length *= output[axis]
            axis -= 1
        }
        var step = 1
        if length == 1 {
            step = 0
            while axis >= 0, strides[axis] == 0 || output[axis] == 1 {
                length *= output[axis]
                axis -= 1
            }
        }
        let outer = Array(output[0..<(axis + 1)])
        forEach(outer, strides: [Array(strides[0..<(axis + 1)])]) { index, offsets in body(index * length, offsets[0], length, step) }
    }
}
