import Foundation

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
}

extension RecurrentOp {
    /// The forward pass, step by step, recording the trace (same equations as ``run(_:reverse:)``).
    func trace(_ x: Tensor, reverse: Bool) throws(EngineError) -> (Tensor, RecurrentTrace) {
        guard x.rank == 3 else { throw .shape(layer: name, reason: "expects (batch, time, features), got \(x.shape)") }
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
            trace.pre.append(pre)
            trace.gates.append(gates)
            trace.h.append(h)
            trace.c.append(c)
            if returnSequences {
                for n in 0..<batch { for j in 0..<units { sequence[(n * steps + t) * units + j] = h[n * units + j] } }
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
            if returnSequences {
                for n in 0..<batch { for j in 0..<units { dh[n * units + j] += gradOutput.data[(n * steps + t) * units + j] } }
            }
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
                dCandidate.withUnsafeBufferPointer { dc in
                    recurrent.withUnsafeBufferPointer { u in
                        dRH.withUnsafeMutableBufferPointer { out in
                            BLAS.gemm(dc.baseAddress!, u.baseAddress! + 2 * units, out.baseAddress!, m: batch, n: units, k: units,
                                      ldb: width, transposeB: true)
                        }
                    }
                    rh.withUnsafeBufferPointer { a in
                        dRecurrent.withUnsafeMutableBufferPointer { du in
                            BLAS.gemm(a.baseAddress!, dc.baseAddress!, du.baseAddress! + 2 * units, m: units, n: units, k: batch,
                                      ldc: width, transposeA: true, accumulate: true)
                        }
                    }
                }
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
        let (output, trace) = try self.trace(inputs[0], reverse: goBackwards)
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

extension BidirectionalOp: TrainableOp {
    func forwardTraining(_ inputs: [Tensor], random: inout TrainingRandom, workspace: Workspace) throws(EngineError) -> ForwardRecord {
        let (forward, forwardTrace) = try forwardLayer.trace(inputs[0], reverse: forwardLayer.goBackwards)
        var (backward, backwardTrace) = try backwardLayer.trace(inputs[0], reverse: !forwardLayer.goBackwards)
        backward = Self.reversedInTime(backward)
        var record = ForwardRecord(inputs: inputs, output: try merge(forward, backward))
        record.traces = [forwardTrace, backwardTrace]
        record.extra = forward.data + backward.data
        return record
    }

    func backward(_ gradOutput: Tensor, _ record: ForwardRecord, workspace: Workspace) throws(EngineError) -> LayerGradients {
        let x = record.inputs[0]
        let half = record.extra.count / 2
        let forward = Array(record.extra[0..<half])
        let backward = Array(record.extra[half...])
        let shape = forwardLayer.returnSequences ? [x.shape[0], x.shape[1], forwardLayer.units] : [x.shape[0], forwardLayer.units]
        var gForward = [Float](repeating: 0, count: half)
        var gBackward = [Float](repeating: 0, count: half)
        let units = forwardLayer.units
        for i in 0..<half {
            switch mode {
            case "concat":
                let row = i / units, j = i % units
                gForward[i] = gradOutput.data[row * 2 * units + j]
                gBackward[i] = gradOutput.data[row * 2 * units + units + j]
            case "sum": gForward[i] = gradOutput.data[i]; gBackward[i] = gradOutput.data[i]
            case "mul": gForward[i] = gradOutput.data[i] * backward[i]; gBackward[i] = gradOutput.data[i] * forward[i]
            default: gForward[i] = gradOutput.data[i] * 0.5; gBackward[i] = gradOutput.data[i] * 0.5
            }
        }
        let forwardGradients = forwardLayer.backwardThroughTime(Tensor(shape: shape, data: gForward), x: x, trace: record.traces[0], reverse: forwardLayer.goBackwards)
        // The backward layer's sequence was re-aligned with time: undo that for its gradient.
        let backwardGradient = Self.reversedInTime(Tensor(shape: shape, data: gBackward))
        let backwardGradients = backwardLayer.backwardThroughTime(backwardGradient, x: x, trace: record.traces[1], reverse: !forwardLayer.goBackwards)
        var weights: [String: [Float]] = [:]
        for (prefix, result) in [("forward/", forwardGradients), ("backward/", backwardGradients)] {
            weights[prefix + "kernel"] = result.dKernel
            weights[prefix + "recurrent_kernel"] = result.dRecurrent
            if let dBias = result.dBias { weights[prefix + "bias"] = dBias }
        }
        let dx = zip(forwardGradients.dx, backwardGradients.dx).map { $0 + $1 }
        return LayerGradients(inputs: [Tensor(shape: x.shape, data: dx)], weights: weights)
    }

    /// A (batch, time, units) sequence reversed along time; other tensors unchanged.
    static func reversedInTime(_ tensor: Tensor) -> Tensor {
        guard tensor.rank == 3 else { return tensor }
        let (batch, steps, units) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        var data = tensor.data
        for n in 0..<batch {
            for t in 0..<steps {
                for j in 0..<units { data[(n * steps + t) * units + j] = tensor.data[(n * steps + steps - 1 - t) * units + j] }
            }
        }
        return Tensor(shape: tensor.shape, data: data)
    }
}
