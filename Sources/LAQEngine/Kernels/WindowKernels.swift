import CLAQKernels

/// Copies and sums of runs of consecutive values between two arrays, the memory side of
/// im2col, col2im and average pooling: the layer's traversal names each run (its start in the
/// target, its start in the source, its length, and a factor), the kernel moves the values.
/// Every run is checked against both arrays.
enum Runs {
    /// A traversal of the runs of items `items` (such as images of a batch): it calls `emit`
    /// once per run with (target start, source start, count, factor).
    typealias Traversal = @Sendable (_ items: Range<Int>, _ emit: (Int, Int, Int, Float) -> Void) -> Void

    /// target[t + i] = source[s + i] for every run (factors ignored). Items are split between
    /// laq's threads when `work` (values moved) is large: runs of different items must not
    /// overlap in the target.
    static func copy(from source: [Float], into target: inout [Float], items: Int, work: Int, _ traverse: Traversal) {
        visit(source, &target, items: items, work: work, accumulate: false, traverse)
    }

    /// target[t + i] += factor·source[s + i] for every run, in the traversal's order within an
    /// item; items split between threads as in ``copy(from:into:items:work:_:)``.
    static func accumulate(from source: [Float], into target: inout [Float], items: Int, work: Int, _ traverse: Traversal) {
        visit(source, &target, items: items, work: work, accumulate: true, traverse)
    }

    private static func visit(_ source: [Float], _ target: inout [Float], items: Int, work: Int, accumulate: Bool, _ traverse: Traversal) {
        guard items > 0, !source.isEmpty, !target.isEmpty else { return }
        let (sourceCount, targetCount) = (source.count, target.count)
        source.withUnsafeBufferPointer { input in
            target.withUnsafeMutableBufferPointer { output in
                let (input, output) = (SharedPointer(input.baseAddress!), SharedPointer(output.baseAddress!))
                Parallel.forEach(items, work: work) { range in
                    traverse(range) { to, from, count, factor in
                        precondition(to >= 0 && from >= 0 && count >= 0 && to + count <= targetCount && from + count <= sourceCount,
                                     "a run of \(count) values from \(from) of \(sourceCount) to \(to) of \(targetCount)")
                        let (to, from) = (output.base + to, UnsafePointer(input.base + from))
                        if !accumulate {
                            to.update(from: from, count: count)
                        } else if factor == 1 {
                            for i in 0..<count { to[i] += from[i] }
                        } else {
                            for i in 0..<count { to[i] += from[i] * factor }
                        }
                    }
                }
            }
        }
    }
}

/// The C kernels of pooling and depthwise convolution over NHWC arrays (`pooling.c`,
/// `depthwise.c`), with their extents checked.
enum WindowKernels {
    /// Max pooling of x (batch × height × width × channels) into `output` (batch × rows.output ×
    /// cols.output × channels); with `argmax`, the input index of each output's first maximal
    /// tap (−1: a window with none, whose output is −∞).
    static func maxPool(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, rows: Window, cols: Window,
                        into output: inout [Float], argmax: inout [Int]?) {
        let outputs = batch * rows.output * cols.output * channels
        precondition(x.count == batch * height * width * channels && output.count == outputs && (argmax?.count ?? outputs) == outputs,
                     "max pooling over \(x.count) values into \(output.count)")
        guard outputs > 0, !x.isEmpty else { return }
        x.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                func run(_ indices: UnsafeMutablePointer<Int>?) {
                    laq_max_pool(input.baseAddress!, batch, height, width, channels,
                                 rows.output, rows.kernel, rows.stride, rows.padBefore,
                                 cols.output, cols.kernel, cols.stride, cols.padBefore,
                                 out.baseAddress!, indices, CPU.isa)
                }
                if argmax == nil {
                    run(nil)
                } else {
                    argmax!.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                }
            }
        }
    }

    /// Depthwise 2-D convolution of x (batch × height × width × channels) with `kernel` (kh ×
    /// kw × channels × multiplier) into `output` (batch × rows.output × cols.output ×
    /// channels·multiplier), without bias; output rows split between laq's threads.
    static func depthwise(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, kernel: [Float], kernelSize: (Int, Int),
                          multiplier: Int, strides: (Int, Int), dilation: (Int, Int), rows: Window, cols: Window, into output: inout [Float]) {
        let taps = kernelSize.0 * kernelSize.1
        let outChannels = channels * multiplier
        let positions = batch * rows.output * cols.output
        precondition(x.count == batch * height * width * channels && kernel.count == taps * outChannels && output.count == positions * outChannels,
                     "a depthwise convolution over \(x.count) values, \(kernel.count) weights, into \(output.count)")
        guard !output.isEmpty, !x.isEmpty else { return }
        x.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { kernel in
                output.withUnsafeMutableBufferPointer { out in
                    let (input, kernel, out) = (SharedPointer(input.baseAddress!), SharedPointer(kernel.baseAddress!), SharedPointer(out.baseAddress!))
                    Parallel.forEach(batch * rows.output, work: positions * outChannels * taps, grain: 1 << 16) { range in
                        laq_depthwise_conv2d(input.base, height, width, channels, kernel.base, kernelSize.0, kernelSize.1, multiplier,
                                             strides.0, strides.1, dilation.0, dilation.1, rows.padBefore, cols.padBefore,
                                             rows.output, cols.output, out.base, range.lowerBound, range.upperBound, CPU.isa)
                    }
                }
            }
        }
    }
}
