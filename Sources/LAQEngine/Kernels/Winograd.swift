import CLAQKernels

/// A 3×3 float32 kernel transformed for Winograd's F(2×2, 3×3) (`winograd.c`): 16 matrix
/// products of transformed inputs and kernel, with 2.25 times fewer multiply-adds than the
/// direct convolution, for convolutions with unit strides and dilation. Built at load, for
/// predictions (not training steps), where the kernel has panels (AVX2) and at least
/// ``leastChannels`` input channels and ``leastFilters`` filters (docs/PERFORMANCE.md,
/// "Winograd's 3×3 convolutions"); the outputs differ from the direct convolution's in their
/// last bits, and are the same for any thread count.
struct WinogradPanels: Sendable {
    let channels: Int
    let filters: Int
    /// U[ξ] for the 16 points ξ, each packed as `laq_panels_pack` lays out a channels×filters matrix.
    let panels: [Float]

    /// Below these the transforms cost more than the multiply-adds they save (a first layer's 3
    /// channels; `laq-bench --convolutions`).
    static let leastChannels = 16
    static let leastFilters = 16

    /// The transformed kernel of Keras' (3, 3, channels, filters) `kernel`; nil without AVX2
    /// (no panels), below the least sizes, or where a value is not finite (the direct kernel
    /// skips the taps outside the input, which a transform cannot: an infinite weight would give
    /// NaN where the direct convolution gives ±∞).
    init?(kernel: [Float], channels: Int, filters: Int) {
        guard CPU.isa >= Int32(LAQ_ISA_AVX2), channels >= Self.leastChannels, filters >= Self.leastFilters,
              kernel.count == 9 * channels * filters, kernel.allSatisfy(\.isFinite) else { return nil }
        self.channels = channels
        self.filters = filters
        var transformed = [Float](repeating: 0, count: 16 * channels * filters)
        kernel.withUnsafeBufferPointer { k in
            transformed.withUnsafeMutableBufferPointer { laq_winograd_transform_kernel(k.baseAddress!, channels, filters, $0.baseAddress!) }
        }
        let length = laq_panels_length(channels, filters)
        panels = [Float](unsafeUninitializedCapacity: 16 * length) { buffer, initialized in
            transformed.withUnsafeBufferPointer { u in
                for point in 0..<16 {
                    laq_panels_pack(u.baseAddress! + point * channels * filters, channels, filters, buffer.baseAddress! + point * length, CPU.isa)
                }
            }
            initialized = buffer.count
        }
    }

    /// Whether it computes a convolution of this shape (3×3, unit strides and dilation, its channels).
    func applies(_ shape: laq_conv_shape) -> Bool {
        shape.channels == channels && withUnsafePointer(to: shape) { laq_winograd_applies($0) } != 0
    }

    /// C (m×filters, m output positions) = epilogue(convolution of `x`), as
    /// ``FloatPanels/convolve(_:shape:m:epilogue:into:)``. Tasks are a block of tiles (blocks of
    /// near-equal length, at most `laq_winograd_block_tiles`) through a group of panels: every
    /// panel on one thread, or where there are blocks for every thread four times over; else the
    /// panels in groups enough for that (each group transforms its block's inputs again: a 32nd
    /// of its multiply-adds).
    func convolve(_ x: UnsafePointer<Float>, shape: laq_conv_shape, m: Int, epilogue: laq_epilogue, into c: UnsafeMutablePointer<Float>) {
        precondition(applies(shape), "a Winograd kernel of \(channels) channels for this convolution")
        let perImage = shape.out_height * shape.out_width
        guard m > 0 else { return }
        precondition(m % perImage == 0, "\(m) output positions for images of \(shape.out_height) × \(shape.out_width)")
        let tiles = withUnsafePointer(to: shape) { laq_winograd_tile_count($0, m / perImage) }
        let blockTiles = laq_winograd_block_tiles(channels)
        let blocks = (tiles + blockTiles - 1) / blockTiles
        let panelCount = (filters + 31) / 32
        // One thread (alone, or a chunk's inside a pool part) takes every panel at once.
        let threads = Parallel.threadCount, wanted = 4 * threads
        let groups = threads == 1 || blocks >= wanted ? 1 : min(panelCount, (wanted + blocks - 1) / blocks)
        // The multiply-adds of the convolution it computes (the direct one's count, as every
        // convolution reports: a bench's GFLOP/s are then comparable).
        ProductCount.add(m * 9 * channels * filters)
        let workspaceLength = laq_winograd_workspace_length(channels)
        let (x, c, n) = (SharedPointer(x), SharedPointer(c), filters)
        withUnsafePointer(to: shape) { shape in
            withUnsafePointer(to: epilogue) { epilogue in
                let (shape, epilogue) = (SharedPointer(shape), SharedPointer(epilogue))
                panels.withUnsafeBufferPointer { panels in
                    let u = SharedPointer(panels.baseAddress!)
                    let work = 16 * tiles * channels * filters
                    Parallel.forEach(blocks * groups, work: work >= BLAS.leastBlockWork ? blocks * groups : 1, grain: 1, tapered: true) { range in
                        var workspace = [Float](unsafeUninitializedCapacity: workspaceLength) { _, initialized in initialized = workspaceLength }
                        workspace.withUnsafeMutableBufferPointer { workspace in
                            for task in range {
                                let (block, group) = (task / groups, task % groups)
                                let first = block * tiles / blocks, end = (block + 1) * tiles / blocks
                                laq_winograd_convolve(x.base, shape.base, u.base, n, epilogue.base, c.base, first, end,
                                                      group * panelCount / groups, (group + 1) * panelCount / groups,
                                                      workspace.baseAddress!, CPU.isa)
                            }
                        }
                    }
                }
            }
        }
    }
}
