import LAQFormat
import LAQModel

/// SimpleRNN, LSTM and GRU (both `reset_after` forms), Keras' equations and gate orders
/// (LSTM i, f, c, o; GRU z, r, h). The input projection x·W + b is one GEMM over all time steps;
/// each step then adds h·U.
struct RecurrentOp: Op {
    enum Cell { case simple, lstm, gru(resetAfter: Bool) }
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

    var gates: Int {
        switch cell {
        case .simple: 1
        case .lstm: 4
        case .gru: 3
        }
    }

    init(_ context: OpContext, className: String, prefix: String = "", config: JSONValue? = nil) throws(EngineError) {
        name = context.layer.name
        let config = config ?? context.config
        let recurrentContext = OpContext(layer: Layer(name: context.layer.name, className: className, config: config, inbound: []), weights: context.weights, keras3: context.keras3, activations: context.activations)
        switch className {
        case "SimpleRNN": cell = .simple
        case "LSTM": cell = .lstm
        default: cell = .gru(resetAfter: config["reset_after"] != .bool(false))
        }
        let (kernel, matrix) = try context.matrix(prefix + "kernel")
        self.kernel = kernel.values
        kernelMatrix = matrix
        units = try recurrentContext.int("units")
        let gates = className == "LSTM" ? 4 : className == "GRU" ? 3 : 1
        // GRU with reset_after = false reads U_h column by column: it runs from float32.
        let gruBeforeReset = className == "GRU" && config["reset_after"] == .bool(false)
        let (recurrentKernel, recurrentMatrix) = gruBeforeReset
            ? try { () throws(EngineError) in let w = try context.weight(prefix + "recurrent_kernel"); return (w, KernelMatrix.dense(w.values)) }()
            : try context.matrix(prefix + "recurrent_kernel")
        guard units >= 1, recurrentKernel.shape == [units, gates * units] else {
            throw .shape(layer: name, reason: "recurrent_kernel has shape \(recurrentKernel.shape), expected [\(units), \(gates * units)]")
        }
        recurrent = recurrentKernel.values
        self.recurrentMatrix = recurrentMatrix
        bias = context.optionalWeight(prefix + "bias")?.values
        let resetAfter = className == "GRU" && config["reset_after"] != .bool(false)
        if let bias, bias.count != (resetAfter ? 2 : 1) * gates * units {
            throw .shape(layer: name, reason: "bias has \(bias.count) values, expected \((resetAfter ? 2 : 1) * gates * units)")
        }
        // Keras' defaults when the config leaves them out.
        activation = try recurrentContext.activation("activation", default: "tanh")
        recurrentActivation = className == "SimpleRNN" ? .linear : try recurrentContext.activation("recurrent_activation", default: "sigmoid")
        returnSequences = config["return_sequences"] == .bool(true)
        goBackwards = config["go_backwards"] == .bool(true)
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        try run(tensors[0], reverse: goBackwards)
    }

    /// Runs the cell over time (reversed when `reverse`); outputs are in processing order.
    func run(_ x: Tensor, reverse: Bool) throws(EngineError) -> Tensor {
        guard x.rank == 3 else { throw .shape(layer: name, reason: "expects (batch, time, features), got \(x.shape)") }
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        let width = gates * units
        guard kernelMatrix.count == features * width else { throw .shape(layer: name, reason: "kernel does not match \(features) input features") }
        // Input projection for every step at once: [batch·steps, width].
        var projected = [Float](repeating: 0, count: batch * steps * width)
        x.data.withUnsafeBufferPointer { a in
            projected.withUnsafeMutableBufferPointer { c in
                kernelMatrix.multiply(a.baseAddress!, m: batch * steps, k: features, n: width, into: c.baseAddress!)
            }
        }
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
            switch cell {
            case .gru(resetAfter: false):
                // z, r use h·U directly; the candidate uses (r ⊙ h)·U_h.
                h.withUnsafeBufferPointer { hp in
                    recurrent.withUnsafeBufferPointer { u in
                        hU.withUnsafeMutableBufferPointer { out in
                            BLAS.gemm(hp.baseAddress!, u.baseAddress!, out.baseAddress!, m: batch, n: width, k: units)
                        }
                    }
                }
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
                h.withUnsafeBufferPointer { hp in
                    hU.withUnsafeMutableBufferPointer { out in
                        recurrentMatrix.multiply(hp.baseAddress!, m: batch, k: units, n: width, into: out.baseAddress!)
                    }
                }
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
            if returnSequences {
                for n in 0..<batch { for j in 0..<units { sequence[(n * steps + t) * units + j] = h[n * units + j] } }
            }
        }
        return returnSequences ? Tensor(shape: [batch, steps, units], data: sequence) : Tensor(shape: [batch, units], data: h)
    }
}

/// Bidirectional: the forward layer, and a copy run backwards in time whose sequence output is
/// reversed back; merged by concat (default), sum, mul or ave.
struct BidirectionalOp: Op {
    let name: String
    let forwardLayer: RecurrentOp
    let backwardLayer: RecurrentOp
    let mode: String

    init(_ context: OpContext) throws(EngineError) {
        name = context.layer.name
        guard let inner = context.config["layer"], let className = inner["class_name"]?.stringValue else {
            throw .unsupported(layer: name, reason: "no wrapped layer")
        }
        forwardLayer = try RecurrentOp(context, className: className, prefix: "forward/", config: inner["config"])
        backwardLayer = try RecurrentOp(context, className: className, prefix: "backward/", config: inner["config"])
        mode = context.config["merge_mode"]?.stringValue ?? "concat"
    }

    func forward(_ tensors: [Tensor], workspace: Workspace?) throws(EngineError) -> Tensor {
        let forward = try forwardLayer.run(tensors[0], reverse: forwardLayer.goBackwards)
        // Re-align the backward sequence with time.
        let backward = Self.reversedInTime(try backwardLayer.run(tensors[0], reverse: !forwardLayer.goBackwards))
        return try merge(forward, backward)
    }

    /// Merges the two directions: concat (default), sum, mul or ave.
    func merge(_ forward: Tensor, _ backward: Tensor) throws(EngineError) -> Tensor {
        switch mode {
        case "concat": return try ConcatenateOp(name: name, axis: -1).forward([forward, backward])
        case "sum": return try MergeOp(name: name, kind: .add).forward([forward, backward])
        case "mul": return try MergeOp(name: name, kind: .multiply).forward([forward, backward])
        case "ave":
            var sum = try MergeOp(name: name, kind: .add).forward([forward, backward])
            for i in sum.data.indices { sum.data[i] *= 0.5 }
            return sum
        default: throw .unsupported(layer: name, reason: "merge_mode \(mode)")
        }
    }
}

extension RecurrentOp {
    /// GRU without `reset_after`: (r ⊙ h)·U_h, U_h the last `units` columns of U (one GEMM with
    /// U's row stride).
    func candidateProduct(_ rh: [Float], batch: Int) -> [Float] {
        let width = gates * units
        var candidate = [Float](repeating: 0, count: batch * units)
        rh.withUnsafeBufferPointer { a in
            recurrent.withUnsafeBufferPointer { u in
                candidate.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(a.baseAddress!, u.baseAddress! + 2 * units, c.baseAddress!, m: batch, n: units, k: units, ldb: width)
                }
            }
        }
        return candidate
    }
}
