import Foundation
import LAQFormat

/// Keras' `SimpleRNN`, `LSTM` and `GRU` (both `reset_after` forms) over (batch, time,
/// features); the last output, or every step's with `return_sequences`.
public struct RecurrentLayer: LayerKind {
    let cell: RecurrentOp.Cell
    let units: Int
    let activation: String
    /// SimpleRNN has none (`linear` here).
    let recurrentActivation: String
    let useBias: Bool
    let returnSequences: Bool
    let goBackwards: Bool

    public init(_ options: LayerOptions) throws(ModelError) {
        switch options.className {
        case "SimpleRNN": cell = .simple
        case "LSTM": cell = .lstm
        default: cell = .gru(resetAfter: try options.bool("reset_after", default: true))
        }
        units = try options.int("units", min: 1)
        activation = try options.activation("activation", default: "tanh")
        if case .simple = cell {
            recurrentActivation = "linear"
        } else {
            recurrentActivation = try options.activation("recurrent_activation", default: "sigmoid")
        }
        useBias = try options.bool("use_bias", default: true)
        returnSequences = try options.bool("return_sequences", default: false)
        goBackwards = try options.bool("go_backwards", default: false)
        try options.expectDefault("return_state", .bool(false), "return_state=True")
        try options.expectDefault("stateful", .bool(false), "stateful=True")
        // tf.keras' time-major inputs, (time, batch, features): refused, never run batch-major.
        try options.expectDefault("time_major", .bool(false), "time_major=True")
        // The computation is the same unrolled or not, with any kernel implementation; the
        // forget-gate bias option is an initializer; masks are refused elsewhere.
        options.ignore("unroll", "implementation", "unit_forget_bias", "zero_output_for_mask", "seed")
        // Dropout on inputs and recurrent state acts in training only; laq's calibration trains
        // without it.
        options.ignore("dropout", "recurrent_dropout")
    }

    var gates: Int {
        switch cell {
        case .simple: 1
        case .lstm: 4
        case .gru: 3
        }
    }

    var resetAfter: Bool { if case .gru(resetAfter: true) = cell { true } else { false } }

    /// Whether `other` computes the same function of the same weights (a Bidirectional's
    /// backward layer mirroring its forward one).
    func sameComputation(as other: RecurrentLayer) -> Bool {
        gates == other.gates && resetAfter == other.resetAfter && units == other.units && activation == other.activation
            && recurrentActivation == other.recurrentActivation && useBias == other.useBias && returnSequences == other.returnSequences
    }

    public var weights: [WeightSpec] {
        [WeightSpec("kernel", quantizable: true, gates: gates, axes: ["in", "gates"]),
         WeightSpec("recurrent_kernel", quantizable: true, gates: gates, axes: ["units", "gates"])]
            + (useBias ? [WeightSpec("bias")] : [])
    }

    /// Keras 3 keeps a recurrent layer's variables in its cell.
    public var keras3VariableGroups: [String] { ["cell/vars"] }

    public func outputShape(_ inputs: [Shape], layer: String) throws(ModelError) -> Shape {
        let input = try single(inputs, layer: layer)
        guard input.count == 3 else { throw .shapeMismatch(layer: layer, reason: "recurrent layers need (batch, time, features) input, got rank \(input.count)") }
        return returnSequences ? [input[0], input[1], units] : [input[0], units]
    }

    public func weightShapes(_ inputs: [Shape]) -> [String: [Int]] {
        var shapes = ["recurrent_kernel": [units, gates * units], "bias": resetAfter ? [2, gates * units] : [gates * units]]
        if let last = inputs.first?.last ?? nil { shapes["kernel"] = [last, gates * units] }
        return shapes
    }

    public func op(_ context: OpContext) throws(EngineError) -> any Op { try RecurrentOp(context, layer: self) }

    /// A recurrent layer skips masked steps (``RecurrentOp/run(_:reverse:mask:)``) and passes
    /// the input's mask on when it returns sequences (tf.keras 2 and Keras 3 up to 3.15; Keras'
    /// development branch stopped this in July 2026, in no release yet).
    public func carriesMask(_ masked: [Bool], layer: String, keras3: Bool) throws(ModelError) -> Bool {
        returnSequences && masked.first == true
    }

    public func outputMask(_ inputs: [Tensor], masks: [Tensor?], keras3: Bool) throws(EngineError) -> Tensor? { masks.first ?? nil }
}

/// Keras' equations and gate orders
/// (LSTM i, f, c, o; GRU z, r, h). The input projection x·W + b is one GEMM over all time steps;
/// each step then adds h·U.
struct RecurrentOp: Op {
    enum Cell: Sendable { case simple, lstm, gru(resetAfter: Bool) }
    let name: String
    let cell: Cell
    let units: Int
    /// Kernels as float32 for training (empty when they run packed), and as the forward pass
    /// multiplies by them.
    let kernel: [Float]
    let recurrent: [Float]
    let kernelMatrix: KernelMatrix
    let recurrentMatrix: KernelMatrix
    let bias: [Float]?
    let activation: Activation
    let recurrentActivation: Activation
    let returnSequences: Bool
    let goBackwards: Bool
    /// A masked step's output: 0 (true), or the previous output (Keras' default; Bidirectional
    /// sets it when it returns sequences).
    var zeroOutputForMask = false

    var gates: Int {
        switch cell {
        case .simple: 1
        case .lstm: 4
        case .gru: 3
        }
    }

    init(_ context: OpContext, layer: RecurrentLayer, prefix: String = "") throws(EngineError) {
        name = context.layer.name
        cell = layer.cell
        units = layer.units
        let gates = layer.gates
        let (kernel, matrix) = try context.matrix(prefix + "kernel")
        self.kernel = kernel.values
        kernelMatrix = matrix
        // GRU with reset_after = false reads U_h column by column: it runs from float32.
        let gruBeforeReset: Bool = { if case .gru(resetAfter: false) = layer.cell { true } else { false } }()
        let (recurrentKernel, recurrentMatrix) = gruBeforeReset
            ? try { () throws(EngineError) in let w = try context.weight(prefix + "recurrent_kernel"); return (w, KernelMatrix.dense(w.values)) }()
            : try context.matrix(prefix + "recurrent_kernel")
        guard recurrentKernel.shape == [units, gates * units] else {
            throw .shape(layer: name, reason: "recurrent_kernel has shape \(recurrentKernel.shape), expected [\(units), \(gates * units)]")
        }
        recurrent = recurrentKernel.values
        self.recurrentMatrix = recurrentMatrix
        bias = context.optionalWeight(prefix + "bias")?.values
        let rows = layer.resetAfter ? 2 : 1
        if let bias, bias.count != rows * gates * units {
            throw .shape(layer: name, reason: "bias has \(bias.count) values, expected \(rows * gates * units)")
        }
        activation = context.activation(layer.activation)
        recurrentActivation = context.activation(layer.recurrentActivation)
        returnSequences = layer.returnSequences
        goBackwards = layer.goBackwards
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try run(tensors[0], reverse: goBackwards)
    }

    func forward(_ tensors: [Tensor], masks: [Tensor?], workspace: Workspace?) throws(EngineError) -> Tensor {
        try run(tensors[0], reverse: goBackwards, mask: masks.first ?? nil)
    }

    /// Runs the cell over time (reversed when `reverse`); outputs are in processing order.
    /// A masked step (``Masking``: `mask` is (batch, time)) keeps the states of the step before
    /// and outputs the previous output, or 0 with ``zeroOutputForMask``.
    func run(_ x: Tensor, reverse: Bool, mask: Tensor? = nil) throws(EngineError) -> Tensor {
        guard x.rank == 3 else { throw .shape(layer: name, reason: "expects (batch, time, features), got \(x.shape)") }
        if let mask { try MaskMath.check(mask, covers: x.shape, trailing: 1, layer: name) }
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        let width = gates * units
        guard kernelMatrix.count == features * width else { throw .shape(layer: name, reason: "kernel does not match \(features) input features") }
        // Input projection for every step at once: [batch·steps, width].
        var projected = [Float](repeating: 0, count: batch * steps * width)
        kernelMatrix.multiply(x.data, m: batch * steps, k: features, n: width, into: &projected)
        let inputBias: ArraySlice<Float>? = bias.map { bias in
            if case .gru(true) = cell { return bias[0..<width] }
            return bias[...]
        }
        if let inputBias {
            for row in 0..<(batch * steps) { for j in 0..<width { projected[row * width + j] += inputBias[inputBias.startIndex + j] } }
        }
        let recurrentBias: ArraySlice<Float>? = { if case .gru(true) = cell, let bias { return bias[width..<(2 * width)] } else { return nil } }()

        var h = [Float](repeating: 0, count: batch * units)
        var c = [Float](repeating: 0, count: batch * units)
        var hU = [Float](repeating: 0, count: batch * width)
        var sequence = returnSequences ? [Float](repeating: 0, count: batch * steps * units) : []
        let act = activation.scalar
        let gate = recurrentActivation.scalar
        for t in 0..<steps {
            let step = reverse ? steps - 1 - t : t
            let masked = mask.map { mask in (0..<batch).filter { !MaskMath.keeps(mask, $0 * steps + step) } } ?? []
            let kept = masked.map { n in (h: Array(h[(n * units)..<((n + 1) * units)]), c: Array(c[(n * units)..<((n + 1) * units)])) }
            switch cell {
            case .gru(resetAfter: false):
                // z, r use h·U directly; the candidate uses (r ⊙ h)·U_h.
                BLAS.gemm(h, recurrent, into: &hU, m: batch, n: width, k: units)
                var rh = [Float](repeating: 0, count: batch * units)
                var z = [Float](repeating: 0, count: batch * units)
                for n in 0..<batch {
                    let row = (n * steps + step) * width
                    for j in 0..<units {
                        z[n * units + j] = gate(projected[row + j] + hU[n * width + j])
                        let r = gate(projected[row + units + j] + hU[n * width + units + j])
                        rh[n * units + j] = r * h[n * units + j]
                    }
                }
                let candidate = candidateProduct(rh, batch: batch)
                for n in 0..<batch {
                    let row = (n * steps + step) * width
                    for j in 0..<units {
                        let hh = act(projected[row + 2 * units + j] + candidate[n * units + j])
                        let i = n * units + j
                        h[i] = z[i] * h[i] + (1 - z[i]) * hh
                    }
                }
            default:
                recurrentMatrix.multiply(h, m: batch, k: units, n: width, into: &hU)
                if let recurrentBias {
                    for n in 0..<batch { for j in 0..<width { hU[n * width + j] += recurrentBias[recurrentBias.startIndex + j] } }
                }
                for n in 0..<batch {
                    let row = (n * steps + step) * width
                    let r0 = n * width
                    for j in 0..<units {
                        let i = n * units + j
                        switch cell {
                        case .simple:
                            h[i] = act(projected[row + j] + hU[r0 + j])
                        case .lstm:
                            let ig = gate(projected[row + j] + hU[r0 + j])
                            let fg = gate(projected[row + units + j] + hU[r0 + units + j])
                            let cc = act(projected[row + 2 * units + j] + hU[r0 + 2 * units + j])
                            let og = gate(projected[row + 3 * units + j] + hU[r0 + 3 * units + j])
                            c[i] = fg * c[i] + ig * cc
                            h[i] = og * act(c[i])
                        case .gru:
                            // reset_after: r multiplies the recurrent part (with its bias).
                            let z = gate(projected[row + j] + hU[r0 + j])
                            let r = gate(projected[row + units + j] + hU[r0 + units + j])
                            let hh = act(projected[row + 2 * units + j] + r * hU[r0 + 2 * units + j])
                            h[i] = z * h[i] + (1 - z) * hh
                        }
                    }
                }
            }
            for (n, previous) in zip(masked, kept) {
                for j in 0..<units { h[n * units + j] = previous.h[j]; c[n * units + j] = previous.c[j] }
            }
            if returnSequences {
                for n in 0..<batch { for j in 0..<units { sequence[(n * steps + t) * units + j] = h[n * units + j] } }
                if zeroOutputForMask { for n in masked { for j in 0..<units { sequence[(n * steps + t) * units + j] = 0 } } }
            }
        }
        return returnSequences ? Tensor(shape: [batch, steps, units], data: sequence) : Tensor(shape: [batch, units], data: h)
    }
}

extension RecurrentOp {
    /// GRU without `reset_after`: (r ⊙ h)·U_h, U_h the last `units` columns of U (one GEMM with
    /// U's row stride).
    func candidateProduct(_ rh: [Float], batch: Int) -> [Float] {
        let width = gates * units
        var candidate = [Float](repeating: 0, count: batch * units)
        BLAS.gemm(rh, recurrent, into: &candidate, m: batch, n: units, k: units, offsets: (0, 2 * units, 0), ldb: width)
        return candidate
    }
}

/// Everything a recurrent layer's backward pass through time needs, per step in processing order.
struct RecurrentTrace {
    /// Hidden states h₀ (zeros) … h_T, each batch × units.
    var h: [[Float]] = []
    /// LSTM cell states c₀ … c_T.
    var c: [[Float]] = []
    /// Activated gates per step, batch × width (LSTM i f c̃ o; GRU z r h̃; SimpleRNN h).
    var gates: [[Float]] = []
    /// Pre-activations per step, batch × width.
    var pre: [[Float]] = []
    /// GRU: the recurrent part per step (reset_after: h·U + b_rec; otherwise h·U for z, r and (r⊙h)·U_h).
    var recurrent: [[Float]] = []
    /// The samples masked at each step (``Masking``), whose states stay those of the step before.
    var masked: [[Int]] = []
}

extension RecurrentOp {
    /// The forward pass, step by step, recording the trace (same equations as ``run(_:reverse:mask:)``).
    func trace(_ x: Tensor, reverse: Bool, mask: Tensor? = nil) throws(EngineError) -> (Tensor, RecurrentTrace) {
        guard x.rank == 3 else { throw .shape(layer: name, reason: "expects (batch, time, features), got \(x.shape)") }
        if let mask { try MaskMath.check(mask, covers: x.shape, trailing: 1, layer: name) }
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        let width = gates * units
        guard kernel.count == features * width else { throw .shape(layer: name, reason: "kernel does not match \(features) input features") }
        let projected = Matrix.multiply(x.data, kernel, m: batch * steps, n: width, k: features)
        let resetAfter: Bool = { if case .gru(true) = cell { true } else { false } }()
        let inputBias = bias.map { Array($0[0..<width]) }
        let recurrentBias: [Float]? = resetAfter ? bias.map { Array($0[width..<(2 * width)]) } : nil
        let act = activation.scalar
        let gate = recurrentActivation.scalar
        var trace = RecurrentTrace()
        trace.h = [[Float](repeating: 0, count: batch * units)]
        trace.c = [[Float](repeating: 0, count: batch * units)]
        var sequence = [Float](repeating: 0, count: returnSequences ? batch * steps * units : 0)
        for t in 0..<steps {
            let step = reverse ? steps - 1 - t : t
            let hPrevious = trace.h[t]
            var xPart = [Float](repeating: 0, count: batch * width)
            for n in 0..<batch {
                for j in 0..<width { xPart[n * width + j] = projected[(n * steps + step) * width + j] + (inputBias?[j] ?? 0) }
            }
            var hU = Matrix.multiply(hPrevious, recurrent, m: batch, n: width, k: units)
            if let recurrentBias { for n in 0..<batch { for j in 0..<width { hU[n * width + j] += recurrentBias[j] } } }
            var pre = [Float](repeating: 0, count: batch * width)
            var gates = [Float](repeating: 0, count: batch * width)
            var h = [Float](repeating: 0, count: batch * units)
            var c = trace.c[t]
            switch cell {
            case .simple:
                for i in 0..<(batch * units) {
                    pre[i] = xPart[i] + hU[i]
                    gates[i] = act(pre[i])
                    h[i] = gates[i]
                }
            case .lstm:
                for n in 0..<batch {
                    for k in 0..<4 {
                        for j in 0..<units {
                            let index = n * width + k * units + j
                            pre[index] = xPart[index] + hU[index]
                            gates[index] = k == 2 ? act(pre[index]) : gate(pre[index])
                        }
                    }
                    for j in 0..<units {
                        let i = n * units + j
                        let base = n * width
                        c[i] = gates[base + units + j] * c[i] + gates[base + j] * gates[base + 2 * units + j]
                        h[i] = gates[base + 3 * units + j] * act(c[i])
                    }
                }
            case .gru(resetAfter: true):
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        pre[base + j] = xPart[base + j] + hU[base + j]
                        pre[base + units + j] = xPart[base + units + j] + hU[base + units + j]
                        gates[base + j] = gate(pre[base + j])
                        gates[base + units + j] = gate(pre[base + units + j])
                        pre[base + 2 * units + j] = xPart[base + 2 * units + j] + gates[base + units + j] * hU[base + 2 * units + j]
                        gates[base + 2 * units + j] = act(pre[base + 2 * units + j])
                        let i = n * units + j
                        h[i] = gates[base + j] * hPrevious[i] + (1 - gates[base + j]) * gates[base + 2 * units + j]
                    }
                }
                trace.recurrent.append(hU)
            case .gru(resetAfter: false):
                var rh = [Float](repeating: 0, count: batch * units)
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        pre[base + j] = xPart[base + j] + hU[base + j]
                        pre[base + units + j] = xPart[base + units + j] + hU[base + units + j]
                        gates[base + j] = gate(pre[base + j])
                        gates[base + units + j] = gate(pre[base + units + j])
                        rh[n * units + j] = gates[base + units + j] * hPrevious[n * units + j]
                    }
                }
                let candidate = candidateProduct(rh, batch: batch)
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        pre[base + 2 * units + j] = xPart[base + 2 * units + j] + candidate[n * units + j]
                        gates[base + 2 * units + j] = act(pre[base + 2 * units + j])
                        let i = n * units + j
                        h[i] = gates[base + j] * hPrevious[i] + (1 - gates[base + j]) * gates[base + 2 * units + j]
                    }
                }
                trace.recurrent.append(rh)
            }
            let masked = mask.map { mask in (0..<batch).filter { !MaskMath.keeps(mask, $0 * steps + step) } } ?? []
            for n in masked {
                for j in 0..<units { h[n * units + j] = hPrevious[n * units + j]; c[n * units + j] = trace.c[t][n * units + j] }
            }
            trace.masked.append(masked)
            trace.pre.append(pre)
            trace.gates.append(gates)
            trace.h.append(h)
            trace.c.append(c)
            if returnSequences {
                for n in 0..<batch { for j in 0..<units { sequence[(n * steps + t) * units + j] = h[n * units + j] } }
                if zeroOutputForMask { for n in masked { for j in 0..<units { sequence[(n * steps + t) * units + j] = 0 } } }
            }
        }
        let output = returnSequences ? Tensor(shape: [batch, steps, units], data: sequence) : Tensor(shape: [batch, units], data: trace.h[steps])
        return (output, trace)
    }

    /// Backpropagation through time: gradients of the input sequence and of kernel, recurrent
    /// kernel and bias, from the gradient of the output (sequence in processing order, or last h).
    func backwardThroughTime(_ gradOutput: Tensor, x: Tensor, trace: RecurrentTrace, reverse: Bool) -> (dx: [Float], dKernel: [Float], dRecurrent: [Float], dBias: [Float]?) {
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        let width = gates * units
        let gate = recurrentActivation
        let act = activation
        var dKernel = [Float](repeating: 0, count: kernel.count)
        var dRecurrent = [Float](repeating: 0, count: recurrent.count)
        let resetAfter: Bool = { if case .gru(true) = cell { true } else { false } }()
        var dBias = [Float](repeating: 0, count: (resetAfter ? 2 : 1) * width)
        var dx = [Float](repeating: 0, count: x.count)
        var dh = [Float](repeating: 0, count: batch * units)
        var dc = [Float](repeating: 0, count: batch * units)
        var dPreAll = [Float](repeating: 0, count: batch * steps * width)
        var dRecAll = [Float](repeating: 0, count: steps * batch * width)
        var hPreviousAll = [Float](repeating: 0, count: steps * batch * units)
        if !returnSequences { dh = gradOutput.data }
        for t in stride(from: steps - 1, through: 0, by: -1) {
            let step = reverse ? steps - 1 - t : t
            let masked = trace.masked.isEmpty ? [] : trace.masked[t]
            if returnSequences {
                // A masked step's output is the previous one (h, passed on below), or 0.
                let zeroed = zeroOutputForMask ? Set(masked) : []
                for n in 0..<batch where !zeroed.contains(n) {
                    for j in 0..<units { dh[n * units + j] += gradOutput.data[(n * steps + t) * units + j] }
                }
            }
            // A masked sample's states pass through the step unchanged: its gradients go to the
            // step before as they are, and the step's gates get none from it.
            let passed = masked.map { n in (h: Array(dh[(n * units)..<((n + 1) * units)]), c: Array(dc[(n * units)..<((n + 1) * units)])) }
            for n in masked { for j in 0..<units { dh[n * units + j] = 0; dc[n * units + j] = 0 } }
            let hPrevious = trace.h[t]
            let pre = trace.pre[t]
            let g = trace.gates[t]
            var dPre = [Float](repeating: 0, count: batch * width)  // ∂/∂(x-part) per gate
            var dRec = [Float](repeating: 0, count: batch * width)  // ∂/∂(h·U part) per gate
            var dhPrevious = [Float](repeating: 0, count: batch * units)
            switch cell {
            case .simple:
                for i in 0..<(batch * units) { dPre[i] = dh[i] * act.derivative(pre[i], g[i]) }
                dRec = dPre
            case .lstm:
                let c = trace.c[t + 1]
                let cPrevious = trace.c[t]
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        let i = n * units + j
                        let tanhC = act.scalar(c[i])
                        let o = g[base + 3 * units + j]
                        let dcTotal = dc[i] + dh[i] * o * act.derivative(c[i], tanhC)
                        dPre[base + j] = dcTotal * g[base + 2 * units + j] * gate.derivative(pre[base + j], g[base + j])
                        dPre[base + units + j] = dcTotal * cPrevious[i] * gate.derivative(pre[base + units + j], g[base + units + j])
                        dPre[base + 2 * units + j] = dcTotal * g[base + j] * act.derivative(pre[base + 2 * units + j], g[base + 2 * units + j])
                        dPre[base + 3 * units + j] = dh[i] * tanhC * gate.derivative(pre[base + 3 * units + j], o)
                        dc[i] = dcTotal * g[base + units + j]
                    }
                }
                dRec = dPre
            case .gru(resetAfter: true):
                let hU = trace.recurrent[t]
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        let i = n * units + j
                        let z = g[base + j], r = g[base + units + j], candidate = g[base + 2 * units + j]
                        let dCandidate = dh[i] * (1 - z) * act.derivative(pre[base + 2 * units + j], candidate)
                        let dz = dh[i] * (hPrevious[i] - candidate) * gate.derivative(pre[base + j], z)
                        let dr = dCandidate * hU[base + 2 * units + j] * gate.derivative(pre[base + units + j], r)
                        dPre[base + j] = dz
                        dPre[base + units + j] = dr
                        dPre[base + 2 * units + j] = dCandidate
                        dRec[base + j] = dz
                        dRec[base + units + j] = dr
                        dRec[base + 2 * units + j] = dCandidate * r
                        dhPrevious[i] += dh[i] * z
                    }
                }
            case .gru(resetAfter: false):
                let rh = trace.recurrent[t]
                var dCandidate = [Float](repeating: 0, count: batch * units)
                for n in 0..<batch {
                    let base = n * width
                    for j in 0..<units {
                        let i = n * units + j
                        let z = g[base + j], candidate = g[base + 2 * units + j]
                        dCandidate[i] = dh[i] * (1 - z) * act.derivative(pre[base + 2 * units + j], candidate)
                        dPre[base + j] = dh[i] * (hPrevious[i] - candidate) * gate.derivative(pre[base + j], z)
                        dPre[base + 2 * units + j] = dCandidate[i]
                        dhPrevious[i] += dh[i] * z
                    }
                }
                // Candidate path: ∂/∂(r⊙h) = dCandidate·U_hᵀ; U_h's gradient += (r⊙h)ᵀ·dCandidate.
                var dRH = [Float](repeating: 0, count: batch * units)
                BLAS.gemm(dCandidate, recurrent, into: &dRH, m: batch, n: units, k: units, offsets: (0, 2 * units, 0), ldb: width,
                          transposeB: true)
                BLAS.gemm(rh, dCandidate, into: &dRecurrent, m: units, n: units, k: batch, offsets: (0, 0, 2 * units), ldc: width,
                          transposeA: true, accumulate: true)
                for n in 0..<batch {
                    for k in 0..<units {
                        let i = n * units + k
                        let sum = dRH[i]
                        let r = g[n * width + units + k]
                        dhPrevious[i] += sum * r
                        dPre[n * width + units + k] = sum * hPrevious[i] * gate.derivative(pre[n * width + units + k], r)
                    }
                }
                for n in 0..<batch {
                    for j in 0..<(2 * units) { dRec[n * width + j] = dPre[n * width + j] }
                }
            }
            // Input side, collected for one GEMM after the loop: row (n, step) of ∂pre.
            for n in 0..<batch {
                for j in 0..<width {
                    dPreAll[(n * steps + step) * width + j] = dPre[n * width + j]
                    dBias[j] += dPre[n * width + j]
                }
            }
            // Recurrent side: dh_{t−1} += dRec·Uᵀ now (the next step needs it); dU += h_{t−1}ᵀ·dRec
            // after the loop. (GRU without reset_after: dRec's candidate columns are 0, U_h is above.)
            let back = Matrix.multiply(dRec, recurrent, m: batch, n: units, k: width, transposeB: true)
            for i in 0..<(batch * units) { dhPrevious[i] += back[i] }
            for (n, gradients) in zip(masked, passed) {
                for j in 0..<units { dhPrevious[n * units + j] += gradients.h[j]; dc[n * units + j] = gradients.c[j] }
            }
            for n in 0..<batch {
                for k in 0..<units { hPreviousAll[(t * batch + n) * units + k] = hPrevious[n * units + k] }
                for j in 0..<width { dRecAll[(t * batch + n) * width + j] = dRec[n * width + j] }
                if resetAfter { for j in 0..<width { dBias[width + j] += dRec[n * width + j] } }
            }
            dh = dhPrevious
        }
        // dW = Xᵀ·∂pre and dx = ∂pre·Wᵀ over all steps; dU += Hᵀ_{t−1}·dRec over all steps.
        let dKernelAll = Matrix.multiply(x.data, dPreAll, m: features, n: width, k: batch * steps, transposeA: true)
        for i in dKernel.indices { dKernel[i] += dKernelAll[i] }
        let dxAll = Matrix.multiply(dPreAll, kernel, m: batch * steps, n: features, k: width, transposeB: true)
        for i in dx.indices { dx[i] += dxAll[i] }
        let dRecurrentAll = Matrix.multiply(hPreviousAll, dRecAll, m: units, n: width, k: steps * batch, transposeA: true)
        for i in dRecurrent.indices { dRecurrent[i] += dRecurrentAll[i] }
        return (dx, dKernel, dRecurrent, bias == nil ? nil : dBias)
    }
}

extension RecurrentOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        try forwardTraining(inputs, masks: [nil], random: &random, workspace: workspace)
    }

    func forwardTraining(_ inputs: [Tensor], masks: [Tensor?], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (output, trace) = try self.trace(inputs[0], reverse: goBackwards, mask: masks.first ?? nil)
        var record = ForwardRecord(inputs: inputs, output: output)
        record.traces = [trace]
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let result = backwardThroughTime(gradOutput, x: x, trace: record.traces[0], reverse: goBackwards)
        var weights = ["kernel": result.dKernel, "recurrent_kernel": result.dRecurrent]
        if let dBias = result.dBias { weights["bias"] = dBias }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: result.dx)], weights: weights)
    }
}
