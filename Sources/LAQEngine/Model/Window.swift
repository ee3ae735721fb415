/// Window geometry along one spatial axis, TensorFlow's conventions: `same` pads
/// max((out − 1)·s + (k − 1)·d + 1 − n, 0) in total, the smaller half before.
public struct Window: Sendable, Equatable {
    public let kernel: Int
    public let stride: Int
    public let dilation: Int
    /// Padding before the first element (`same` only).
    public let padBefore: Int
    /// Output length.
    public let output: Int

    /// - Precondition: kernel, stride and dilation ≥ 1, input ≥ 0 (the layer kinds validate configs).
    public init(input: Int, kernel: Int, stride: Int, dilation: Int, same: Bool) {
        precondition(kernel >= 1 && stride >= 1 && dilation >= 1 && input >= 0)
        self.kernel = kernel
        self.stride = stride
        self.dilation = dilation
        let span = (kernel - 1) * dilation + 1
        if same {
            output = (input + stride - 1) / stride
            let total = max((output - 1) * stride + span - input, 0)
            padBefore = total / 2
        } else {
            output = input >= span ? (input - span) / stride + 1 : 0
            padBefore = 0
        }
    }

    /// The window over an input with `margins` zeros added before and after it (a ZeroPadding
    /// layer folded into the convolution that reads it, ``Fusion``): the padded input's window,
    /// its indices into the input without the margins (taps on the margins fall outside it).
    public init(input: Int, kernel: Int, stride: Int, dilation: Int, same: Bool, margins: FoldedPadding.Margins) {
        let padded = Window(input: input + margins.before + margins.after, kernel: kernel, stride: stride, dilation: dilation, same: same)
        self.kernel = kernel
        self.stride = stride
        self.dilation = dilation
        output = padded.output
        padBefore = padded.padBefore + margins.before
    }

    /// Input index of output `o`, tap `t` (may be outside 0..<input).
    @inline(__always) public func source(_ o: Int, _ t: Int) -> Int { o * stride + t * dilation - padBefore }

    /// Whether every tap of every output lies inside an input of this length (no padding taps).
    public func allTapsInside(_ input: Int) -> Bool {
        output == 0 || (source(0, 0) >= 0 && source(output - 1, kernel - 1) < input)
    }
}


/// Zeros a ZeroPadding2D layer adds around a convolution's input, done by the convolution
/// instead (``Fusion``): its windows read them as padding taps.
public struct FoldedPadding: Sendable, Equatable {
    public struct Margins: Sendable, Equatable {
        public var before = 0, after = 0
    }

    public var rows = Margins(), columns = Margins()

    public var isNone: Bool { self == FoldedPadding() }
}
