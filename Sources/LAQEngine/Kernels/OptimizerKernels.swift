import CLAQKernels

/// The optimizers' update loops over one weight tensor, large tensors split between laq's
/// threads (each element's update depends on its own values alone: the same bits for any
/// number of threads). All arrays of one update have the same count (checked).
enum OptimizerKernels {
    /// Adam (``Adam``): m += (s·g − m)(1 − β1); v += ((s·g)² − v)(1 − β2); w −= α·m/(√v + ε),
    /// s the global clip scale (`laq_adam_update`).
    static func adam(weights w: inout [Float], m: inout [Float], v: inout [Float], gradient g: [Float],
                     scale: Float, beta1: Float, beta2: Float, alpha: Float, epsilon: Float) {
        let count = g.count
        precondition(w.count == count && m.count == count && v.count == count, "Adam over \(w.count), \(m.count), \(v.count) and \(count) values")
        guard count > 0 else { return }
        m.withUnsafeMutableBufferPointer { mm in
            v.withUnsafeMutableBufferPointer { vv in
                w.withUnsafeMutableBufferPointer { w in
                    g.withUnsafeBufferPointer { g in
                        let (mm, vv, w, g) = (SharedPointer(mm.baseAddress!), SharedPointer(vv.baseAddress!), SharedPointer(w.baseAddress!),
                                              SharedPointer(g.baseAddress!))
                        Parallel.forEach(count, work: count) { range in
                            let start = range.lowerBound
                            laq_adam_update(w.base + start, mm.base + start, vv.base + start, g.base + start, range.count,
                                            scale, beta1, beta2, alpha, epsilon, CPU.isa)
                        }
                    }
                }
            }
        }
    }

    /// SGD (``SGD``) with gradient s·g: without momentum w −= η·s·g; with momentum μ,
    /// m ← μ·m − η·s·g, then w += m, or with Nesterov w += μ·m − η·s·g. `velocity` is read
    /// only when μ ≠ 0.
    static func sgd(weights: inout [Float], velocity: inout [Float], gradient: [Float], scale: Float, rate: Float, momentum: Float,
                    nesterov: Bool) {
        let count = gradient.count
        precondition(weights.count == count && (momentum == 0 || velocity.count == count), "SGD over \(weights.count) and \(count) values")
        guard count > 0 else { return }
        if momentum == 0 {
            Elementwise.map(nil, gradient, into: &weights) { w, g in w - rate * (g * scale) }
            return
        }
        weights.withUnsafeMutableBufferPointer { w in
            velocity.withUnsafeMutableBufferPointer { m in
                gradient.withUnsafeBufferPointer { g in
                    let (m, w, g) = (SharedPointer(m.baseAddress!), SharedPointer(w.baseAddress!), SharedPointer(g.baseAddress!))
                    Parallel.forEach(count, work: count) { range in
                        let (m, w, g) = (m.base, w.base, g.base)
                        for i in range {
                            let grad = g[i] * scale
                            m[i] = momentum * m[i] - rate * grad
                            w[i] += nesterov ? momentum * m[i] - rate * grad : m[i]
                        }
                    }
                }
            }
        }
    }
}
