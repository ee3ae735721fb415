import CLAQKernels

/// The sliding-window kernels over NHWC arrays: im2col and col2im of convolutions, average
/// pooling, and the C kernels of max pooling and depthwise convolution (`pooling.c`,
/// `depthwise.c`). Each checks its arrays' counts against the geometry; the traversals then
/// stay inside them by construction.
enum WindowKernels {
    /// A convolution's input geometry, windows and kernel size.
    struct Convolution: Sendable {
        let input: Geometry
        let rows: Window, cols: Window
        let kernelHeight: Int, kernelWidth: Int

        /// Values per im2col row (one output position): kh·kw·c.
        var patch: Int { kernelHeight * kernelWidth * input.channels }
        /// Output positions: batch × rows.output × cols.output.
        var positions: Int { input.batch * rows.output * cols.output }

        /// Visits every (output position, kernel tap) pair whose input lies inside the image (the
        /// padding taps are skipped), as runs: `body(column, input, count)` gets the offsets of
        /// `count` floats that are contiguous both in the im2col matrix and in the input. With
        /// unit dilation along the width, a kernel row inside the image is one run of kw·c
        /// floats; otherwise each tap's c channels are. The one traversal behind im2col and
        /// col2im. `images`: the samples to visit; runs of different samples never overlap, in
        /// the matrix or in the input, so threads may take disjoint ranges.
        @inline(__always)
        func forEachRun(images: Range<Int>, _ body: (_ column: Int, _ input: Int, _ count: Int) -> Void) {
            let g = input
            let (kh, kw, channels) = (kernelHeight, kernelWidth, g.channels)
            let patch = kh * kw * channels
            let wholeRows = cols.dilation == 1
            var p = images.lowerBound * rows.output * cols.output
            for n in images {
                for oh in 0..<rows.output {
                    for ow in 0..<cols.output {
                        var q = p * patch
                        let first = cols.source(ow, 0)
                        for th in 0..<kh {
                            let ih = rows.source(oh, th)
                            guard ih >= 0, ih < g.height else {
                                q += kw * channels
                                continue
                            }
                            let row = (n * g.height + ih) * g.width
                            if wholeRows, first >= 0, first + kw <= g.width {
                                body(q, (row + first) * channels, kw * channels)
                                q += kw * channels
                                continue
                            }
                            for tw in 0..<kw {
                                let iw = cols.source(ow, tw)
                                if iw >= 0, iw < g.width { body(q, (row + iw) * channels, channels) }
                                q += channels
                            }
                        }
                        p += 1
                    }
                }
            }
        }
    }

    /// im2col: `columns` (positions × patch) gets each output position's window, the padding
    /// taps left as they are (zero them first when the windows reach outside the image).
    /// Samples are split between laq's threads for a large batch.
    static func im2col(_ x: [Float], _ convolution: Convolution, into columns: inout [Float]) {
        let g = convolution.input
        precondition(x.count == g.batch * g.height * g.width * g.channels && columns.count == convolution.positions * convolution.patch,
                     "im2col of \(x.count) values into \(columns.count)")
        guard !columns.isEmpty, !x.isEmpty else { return }
        let work = columns.count
        x.withUnsafeBufferPointer { input in
            columns.withUnsafeMutableBufferPointer { out in
                let (input, out) = (SharedPointer(input.baseAddress!), SharedPointer(out.baseAddress!))
                Parallel.forEach(g.batch, work: work) { images in
                    convolution.forEachRun(images: images) { column, source, count in
                        (out.base + column).update(from: input.base + source, count: count)
                    }
                }
            }
        }
    }

    /// col2im: adds each im2col row of `columns` back onto the input positions it came from
    /// (`dx`, of the input's size). Samples scatter into disjoint parts of dx: split between
    /// threads for a large batch.
    static func col2im(_ columns: [Float], _ convolution: Convolution, into dx: inout [Float]) {
        let g = convolution.input
        precondition(dx.count == g.batch * g.height * g.width * g.channels && columns.count == convolution.positions * convolution.patch,
                     "col2im of \(columns.count) values into \(dx.count)")
        guard !columns.isEmpty, !dx.isEmpty else { return }
        let work = columns.count
        dx.withUnsafeMutableBufferPointer { out in
            columns.withUnsafeBufferPointer { columns in
                let (out, columns) = (SharedPointer(out.baseAddress!), SharedPointer(columns.baseAddress!))
                Parallel.forEach(g.batch, work: work) { images in
                    convolution.forEachRun(images: images) { column, target, count in
                        for c in 0..<count { out.base[target + c] += columns.base[column + c] }
                    }
                }
            }
        }
    }

    /// Average pooling's sums: output[position·c + k] = Σ over the window's taps inside the image
    /// of x[tap·c + k], and counts[position] = the number of those taps (output and counts start
    /// at zero).
    static func poolSums(_ x: [Float], _ g: Geometry, rows: Window, cols: Window, into output: inout [Float], counts: inout [Int]) {
        let positions = g.batch * rows.output * cols.output
        let channels = g.channels
        precondition(x.count == g.batch * g.height * g.width * channels && output.count == positions * channels && counts.count == positions,
                     "average pooling of \(x.count) values into \(output.count)")
        guard !output.isEmpty, !x.isEmpty else { return }
        x.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                counts.withUnsafeMutableBufferPointer { counts in
                    let (x, out, counts) = (input.baseAddress!, output.baseAddress!, counts.baseAddress!)
                    g.forEachWindowTap(rows, cols) { position, _, input in
                        counts[position] += 1
                        let o = out + position * channels, source = x + input
                        for c in 0..<channels { o[c] += source[c] }
                    }
                }
            }
        }
    }

    /// Average pooling's backward pass: each tap inside the image gets an equal share
    /// (1/counts[position]) of its window's gradient, added to `dx`.
    static func poolSumsGradient(_ gradient: [Float], _ g: Geometry, rows: Window, cols: Window, counts: [Int], into dx: inout [Float]) {
        let positions = g.batch * rows.output * cols.output
        let channels = g.channels
        precondition(dx.count == g.batch * g.height * g.width * channels && gradient.count == positions * channels && counts.count == positions,
                     "average pooling gradient of \(gradient.count) values into \(dx.count)")
        guard !dx.isEmpty, !gradient.isEmpty else { return }
        dx.withUnsafeMutableBufferPointer { dx in
            gradient.withUnsafeBufferPointer { gradient in
                counts.withUnsafeBufferPointer { counts in
                    let (dx, gradient, counts) = (dx.baseAddress!, gradient.baseAddress!, counts.baseAddress!)
                    g.forEachWindowTap(rows, cols) { position, _, input in
                        let share = 1 / Float(counts[position])
                        for c in 0..<channels { dx[input + c] += gradient[position * channels + c] * share }
                    }
                }
            }
        }
    }

    /// Max pooling of x (batch × height × width × channels) into `output` (batch × rows.output ×
    /// cols.output × channels); with `argmax`, the input index of each output's first maximal
    /// tap (−1: a window with none, whose output is −∞). Images are split between laq's threads.
    static func maxPool(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, rows: Window, cols: Window,
                        into output: inout [Float], argmax: inout [Int]?) {
        let outputs = batch * rows.output * cols.output * channels
        precondition(x.count == batch * height * width * channels && output.count == outputs && (argmax?.count ?? outputs) == outputs,
                     "max pooling over \(x.count) values into \(output.count)")
        guard outputs > 0, !x.isEmpty else { return }
        let work = outputs * rows.kernel * cols.kernel
        x.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                func run(_ indices: UnsafeMutablePointer<Int>?) {
                    let (input, out, indices) = (SharedPointer(input.baseAddress!), SharedPointer(out.baseAddress!), indices.map { SharedPointer($0) })
                    Parallel.forEach(batch, work: work) { images in
                        laq_max_pool(input.base, images.lowerBound, images.upperBound, height, width, channels,
                                     rows.output, rows.kernel, rows.stride, rows.padBefore,
                                     cols.output, cols.kernel, cols.stride, cols.padBefore,
                                     out.base, indices?.base, CPU.isa)
                    }
                }
                if argmax == nil {
                    run(nil)
                } else {
                    argmax!.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                }
            }
        }
    }

    /// Max pooling's backward pass over `images` images: dx[argmax[i]] += gradient[i] for every
    /// output i whose window had a tap (argmax ≥ 0), in output order (the first maximum takes the
    /// gradient, as TensorFlow's max pooling does). Each image's outputs must come from its own
    /// part of dx (checked), so images are split between laq's threads.
    static func maxPoolGradient(_ gradient: [Float], argmax: [Int], images: Int, into dx: inout [Float]) {
        precondition(gradient.count == argmax.count, "\(gradient.count) gradients for \(argmax.count) pooled values")
        guard images > 0, !gradient.isEmpty, !dx.isEmpty else { return }
        precondition(gradient.count % images == 0 && dx.count % images == 0, "\(gradient.count) and \(dx.count) values for \(images) images")
        let (outputs, inputs) = (gradient.count / images, dx.count / images)
        dx.withUnsafeMutableBufferPointer { dx in
            gradient.withUnsafeBufferPointer { gradient in
                argmax.withUnsafeBufferPointer { argmax in
                    let (dx, gradient, argmax) = (SharedPointer(dx.baseAddress!), SharedPointer(gradient.baseAddress!), SharedPointer(argmax.baseAddress!))
                    Parallel.forEach(images, work: images * outputs) { range in
                        for n in range {
                            let (first, end) = (n * inputs, (n + 1) * inputs)
                            for i in (n * outputs)..<((n + 1) * outputs) {
                                let source = argmax.base[i]
                                guard source >= 0 else { continue }
                                precondition(source >= first && source < end, "a pooled value of image \(n) from input \(source)")
                                dx.base[source] += gradient.base[i]
                            }
                        }
                    }
                }
            }
        }
    }

    /// Depthwise 2-D convolution of x (batch × height × width × channels) with `kernel` (kh ×
    /// kw × channels × multiplier) into `output` (batch × rows.output × cols.output ×
    /// channels·multiplier), plus `bias` (one value per output channel) when given; output rows
    /// split between laq's threads.
    static func depthwise(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, kernel: [Float], bias: [Float]?,
                          kernelSize: (Int, Int), multiplier: Int, strides: (Int, Int), dilation: (Int, Int), rows: Window, cols: Window,
                          into output: inout [Float]) {
        let taps = kernelSize.0 * kernelSize.1
        let outChannels = channels * multiplier
        let positions = batch * rows.output * cols.output
        precondition(x.count == batch * height * width * channels && kernel.count == taps * outChannels && output.count == positions * outChannels
                     && (bias?.count ?? outChannels) == outChannels,
                     "a depthwise convolution over \(x.count) values, \(kernel.count) weights, into \(output.count)")
        guard !output.isEmpty else { return }
        if x.isEmpty {
            // An input with no positions, padded by a folded ZeroPadding2D: every tap is padding,
            // so each output is the kernel's 0, plus the bias.
            for position in 0..<positions {
                for c in 0..<outChannels { output[position * outChannels + c] = 0 + (bias?[c] ?? 0) }
            }
            return
        }
        x.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { kernel in
                (bias ?? []).withUnsafeBufferPointer { biasValues in
                    output.withUnsafeMutableBufferPointer { out in
                        let (input, kernel, out) = (SharedPointer(input.baseAddress!), SharedPointer(kernel.baseAddress!), SharedPointer(out.baseAddress!))
                        let addend = bias == nil ? nil : SharedPointer(biasValues.baseAddress!)
                        Parallel.forEach(batch * rows.output, work: positions * outChannels * taps, grain: 1 << 16) { range in
                            laq_depthwise_conv2d(input.base, height, width, channels, kernel.base, kernelSize.0, kernelSize.1, multiplier,
                                                 strides.0, strides.1, dilation.0, dilation.1, rows.padBefore, cols.padBefore,
                                                 rows.output, cols.output, out.base, range.lowerBound, range.upperBound, addend?.base, CPU.isa)
                        }
                    }
                }
            }
        }
    }
}
