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

    /// Global pooling of each image (batch × positions × channels): output[n·C + c] = the sum of
    /// x over its positions in order from 0 (then divided by the count when `average`), or their
    /// maximum (`max`, from −∞: NaN is passed over as `max(_:_:)` does). Images and blocks of 64
    /// channels are split between threads; each sum keeps its order.
    static func globalPool(_ x: [Float], batch: Int, positions: Int, channels: Int, average: Bool, into output: inout [Float]) {
        precondition(x.count == batch * positions * channels && output.count == batch * channels,
                     "global pooling of \(x.count) values as \(batch) × \(positions) × \(channels) into \(output.count)")
        Matrix.fill(&output, with: average ? 0 : -.infinity)
        guard !output.isEmpty, positions > 0 else { return }
        let blocks = (channels + 63) / 64
        x.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                let (input, out) = (SharedPointer(input.baseAddress!), SharedPointer(out.baseAddress!))
                Parallel.forEach(batch * blocks, work: x.count) { tasks in
                    for task in tasks {
                        let (n, first) = (task / blocks, task % blocks * 64)
                        let width = min(64, channels - first)
                        let sums = out.base + n * channels + first
                        for p in 0..<positions {
                            let row = input.base + (n * positions + p) * channels + first
                            if average {
                                for c in 0..<width { sums[c] += row[c] }
                            } else {
                                for c in 0..<width { sums[c] = max(sums[c], row[c]) }
                            }
                        }
                        if average { for c in 0..<width { sums[c] /= Float(positions) } }
                    }
                }
            }
        }
    }

    /// Max pooling of x (batch × height × width × channels) into `output` (batch × rows.output ×
    /// cols.output × channels); with `argmax`, the input index of each output's first maximal
    /// tap (−1: a window with none, whose output is −∞). Taps outside the image are skipped, or
    /// with `zeroMargins` (a folded ZeroPadding2D; no `argmax`) take part as zeros. Output rows
    /// are split between laq's threads.
    static func maxPool(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, rows: Window, cols: Window,
                        zeroMargins: Bool = false, into output: inout [Float], argmax: inout [Int]?) {
        let outputs = batch * rows.output * cols.output * channels
        precondition(x.count == batch * height * width * channels && output.count == outputs && (argmax?.count ?? outputs) == outputs
                     && !(zeroMargins && argmax != nil), "max pooling over \(x.count) values into \(output.count)")
        guard outputs > 0, !x.isEmpty else { return }
        let work = outputs * rows.kernel * cols.kernel
        let zeros = [Float](repeating: 0, count: zeroMargins ? channels : 0)
        x.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                zeros.withUnsafeBufferPointer { zeros in
                    func run(_ indices: UnsafeMutablePointer<Int>?) {
                        let (input, out, indices) = (SharedPointer(input.baseAddress!), SharedPointer(out.baseAddress!), indices.map { SharedPointer($0) })
                        let zeros = zeroMargins ? SharedPointer(zeros.baseAddress!) : nil
                        Parallel.forEach(batch * rows.output, work: work) { outputRows in
                            laq_max_pool(input.base, outputRows.lowerBound, outputRows.upperBound, height, width, channels,
                                         rows.output, rows.kernel, rows.stride, rows.padBefore,
                                         cols.output, cols.kernel, cols.stride, cols.padBefore,
                                         zeros?.base, out.base, indices?.base, CPU.isa)
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
    /// channels·multiplier), plus `bias` (one value per output channel) when given, then
    /// `normalization` (an inference BatchNormalization and its ReLU, ``Fusion``) when given, as
    /// each block of channels is stored; output rows split between laq's threads.
    static func depthwise(_ x: [Float], batch: Int, height: Int, width: Int, channels: Int, kernel: [Float], bias: [Float]?,
                          normalization: FusedNormalization? = nil, kernelSize: (Int, Int), multiplier: Int, strides: (Int, Int),
                          dilation: (Int, Int), rows: Window, cols: Window, into output: inout [Float]) {
        let taps = kernelSize.0 * kernelSize.1
        let outChannels = channels * multiplier
        let positions = batch * rows.output * cols.output
        precondition(x.count == batch * height * width * channels && kernel.count == taps * outChannels && output.count == positions * outChannels
                     && (bias?.count ?? outChannels) == outChannels && (normalization?.scale.count ?? outChannels) == outChannels
                     && (normalization?.shift.count ?? outChannels) == outChannels,
                     "a depthwise convolution over \(x.count) values, \(kernel.count) weights, into \(output.count)")
        guard !output.isEmpty else { return }
        if x.isEmpty {
            // An input with no positions, padded by a folded ZeroPadding2D: every tap is padding,
            // so each output is the kernel's 0, plus the bias.
            for position in 0..<positions {
                for c in 0..<outChannels { output[position * outChannels + c] = 0 + (bias?[c] ?? 0) }
            }
            if let normalization { Elementwise.scaleShift(&output, scale: normalization.scale, shift: normalization.shift, then: normalization.relu) }
            return
        }
        let relu = (normalization?.relu ?? .none).parameters
        x.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { kernel in
                Matrix.withPointer(bias) { bias in
                    Matrix.withPointer(normalization?.scale) { scale in
                        Matrix.withPointer(normalization?.shift) { shift in
                            var epilogue = laq_epilogue(bias: bias, scale: scale, shift: shift, relu: relu.mode, threshold: relu.threshold,
                                                        slope: relu.slope, ceiling: relu.ceiling)
                            output.withUnsafeMutableBufferPointer { out in
                                withUnsafePointer(to: &epilogue) { epilogue in
                                    let (input, kernel, out) = (SharedPointer(input.baseAddress!), SharedPointer(kernel.baseAddress!), SharedPointer(out.baseAddress!))
                                    let epilogue = SharedPointer(epilogue)
                                    Parallel.forEach(batch * rows.output, work: positions * outChannels * taps, grain: 1 << 16, tapered: true) { range in
                                        laq_depthwise_conv2d(input.base, height, width, channels, kernel.base, kernelSize.0, kernelSize.1, multiplier,
                                                             strides.0, strides.1, dilation.0, dilation.1, rows.padBefore, cols.padBefore,
                                                             rows.output, cols.output, out.base, range.lowerBound, range.upperBound, epilogue.base, CPU.isa)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
