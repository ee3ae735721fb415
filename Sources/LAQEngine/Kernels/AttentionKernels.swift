import Foundation

/// Scaled dot-product attention over every head of a batch, forward and backward, on the
/// projected Q (batch × T × N·H), K and V (batch × S × N·H): the memory side of
/// ``AttentionOp``. Head n of sample b reads the columns n·H … n·H + H − 1 of its rows; each
/// product is one OpenBLAS call with Q's, K's or V's row stride. Every array's count is
/// checked against the sizes.
enum AttentionKernels {
    /// The sizes of one attention: samples, heads, query steps T, key steps S, and the key and
    /// value widths per head.
    struct Sizes {
        let batch: Int, heads: Int, t: Int, s: Int, keyDim: Int, valueDim: Int
    }

    /// How scores become weights: `scale`·scores; `allowed` (batch × T × S, 0 = masked) when
    /// some positions are masked; a row with none allowed gets zeros (`zeroesEmptyRows`) or
    /// uniform weights, or with `additive` (tf.keras' −1e9 mask) the softmax of its shifted
    /// scores.
    struct Softmax {
        let scale: Float
        let allowed: [UInt8]?
        let zeroesEmptyRows: Bool
        let additive: Bool
    }

    /// weights (batch × N × T × S) = softmax(Q·Kᵀ) per head; O (batch × T × N·Hv) = dropout(P)·V,
    /// dropout applying `keep` (the factor of each weight: 0 or 1/(1 − rate); empty for none)
    /// through `dropped`, a scratch array of weights' size when `keep` is not empty.
    static func forward(q: [Float], k: [Float], v: [Float], sizes: Sizes, softmax: Softmax, keep: [Float],
                        weights: inout [Float], dropped: inout [Float], o: inout [Float]) {
        let (batch, heads, t, s, keyDim, valueDim) = (sizes.batch, sizes.heads, sizes.t, sizes.s, sizes.keyDim, sizes.valueDim)
        let (qk, vk) = (heads * keyDim, heads * valueDim)
        precondition(q.count == batch * t * qk && k.count == batch * s * qk && v.count == batch * s * vk
                     && weights.count == batch * heads * t * s && o.count == batch * t * vk
                     && (keep.isEmpty || (keep.count == weights.count && dropped.count == weights.count))
                     && (softmax.allowed?.count ?? batch * t * s) == batch * t * s, "attention arrays do not match their sizes")
        guard t > 0, s > 0, batch > 0, heads > 0 else { return }
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    weights.withUnsafeMutableBufferPointer { w in
                        dropped.withUnsafeMutableBufferPointer { dropped in
                            o.withUnsafeMutableBufferPointer { o in
                                keep.withUnsafeBufferPointer { keep in
                                    for b in 0..<batch {
                                        for n in 0..<heads {
                                            let block = w.baseAddress! + (b * heads + n) * t * s
                                            // Scores Q·Kᵀ (T × S) of this head: rows strided by N·H.
                                            BLAS.gemm(q.baseAddress! + b * t * qk + n * keyDim, k.baseAddress! + b * s * qk + n * keyDim, block,
                                                      m: t, n: s, k: keyDim, lda: qk, ldb: qk, transposeB: true)
                                            apply(softmax, to: block, rows: t, width: s, allowedOffset: b * t * s)
                                            var used = UnsafePointer(block)
                                            if !keep.isEmpty {
                                                let target = dropped.baseAddress! + (b * heads + n) * t * s
                                                let flags = keep.baseAddress! + (b * heads + n) * t * s
                                                for i in 0..<(t * s) { target[i] = block[i] * flags[i] }
                                                used = UnsafePointer(target)
                                            }
                                            BLAS.gemm(used, v.baseAddress! + b * s * vk + n * valueDim, o.baseAddress! + b * t * vk + n * valueDim,
                                                      m: t, n: valueDim, k: s, ldb: vk, ldc: vk)
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

    /// Row-wise softmax of `scale`·scores in place: positions not allowed get weight 0, and a
    /// row with none allowed uniform weights 1/width (Keras' −1e9 scores) or zeros.
    private static func apply(_ softmax: Softmax, to block: UnsafeMutablePointer<Float>, rows: Int, width: Int, allowedOffset: Int) {
        let (scale, allowed) = (softmax.scale, softmax.allowed)
        for r in 0..<rows {
            let row = block + r * width
            @inline(__always) func ok(_ j: Int) -> Bool { allowed.map { $0[allowedOffset + r * width + j] != 0 } ?? true }
            var largest = -Float.infinity
            var any = false
            for j in 0..<width {
                row[j] *= scale
                if ok(j) {
                    any = true
                    largest = max(largest, row[j])
                }
            }
            if !any, !softmax.additive {
                let weight: Float = softmax.zeroesEmptyRows ? 0 : 1 / Float(width)
                for j in 0..<width { row[j] = weight }
                continue
            }
            if !any {
                for j in 0..<width { row[j] += -1e9 }
                largest = (0..<width).map { row[$0] }.max() ?? 0
            }
            var sum: Float = 0
            for j in 0..<width {
                let e = ok(j) || !any ? expf(row[j] - largest) : 0
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<width { row[j] *= inverse }
        }
    }

    /// Gradients of the attention from dO (batch × T × N·Hv), given the forward's weights P and
    /// `keep`: dV = dropout(P)ᵀ·dO; dZ = P ⊙ (dP − Σ_s P·dP)·scale with dP = dropout'(dO·Vᵀ),
    /// nothing flowing to positions that were not allowed (their score was a constant); dQ =
    /// dZ·K, dK = dZᵀ·Q, each written whole when T, S > 0 (left as given otherwise). `dP`
    /// (T × S) and, with dropout, `used` (T × S) are scratch.
    static func backward(dO: [Float], q: [Float], k: [Float], v: [Float], weights: [Float], keep: [Float], sizes: Sizes, softmax: Softmax,
                         dP: inout [Float], used: inout [Float], dQ: inout [Float], dK: inout [Float], dV: inout [Float]) {
        let (batch, heads, t, s, keyDim, valueDim) = (sizes.batch, sizes.heads, sizes.t, sizes.s, sizes.keyDim, sizes.valueDim)
        let (qk, vk) = (heads * keyDim, heads * valueDim)
        precondition(q.count == batch * t * qk && k.count == batch * s * qk && v.count == batch * s * vk && dO.count == batch * t * vk
                     && weights.count == batch * heads * t * s && dQ.count == q.count && dK.count == k.count && dV.count == v.count
                     && dP.count == t * s && (keep.isEmpty || (keep.count == weights.count && used.count == t * s))
                     && (softmax.allowed?.count ?? batch * t * s) == batch * t * s, "attention gradient arrays do not match their sizes")
        guard t > 0, s > 0, batch > 0, heads > 0 else { return }
        let (scale, allowed, additive) = (softmax.scale, softmax.allowed, softmax.additive)
        dO.withUnsafeBufferPointer { dO in
            q.withUnsafeBufferPointer { q in
                k.withUnsafeBufferPointer { k in
                    v.withUnsafeBufferPointer { v in
                        weights.withUnsafeBufferPointer { w in
                            dP.withUnsafeMutableBufferPointer { dP in
                                used.withUnsafeMutableBufferPointer { used in
                                    dQ.withUnsafeMutableBufferPointer { dQ in
                                        dK.withUnsafeMutableBufferPointer { dK in
                                            dV.withUnsafeMutableBufferPointer { dV in
                                                for b in 0..<batch {
                                                    for n in 0..<heads {
                                                        let offset = (b * heads + n) * t * s
                                                        let p = w.baseAddress! + offset
                                                        let dOHead = dO.baseAddress! + b * t * vk + n * valueDim
                                                        var applied = p
                                                        if !keep.isEmpty {
                                                            for i in 0..<(t * s) { used[i] = p[i] * keep[offset + i] }
                                                            applied = UnsafePointer(used.baseAddress!)
                                                        }
                                                        // dV = (dropout(P))ᵀ·dO;  d(dropout(P)) = dO·Vᵀ.
                                                        BLAS.gemm(applied, dOHead, dV.baseAddress! + b * s * vk + n * valueDim,
                                                                  m: s, n: valueDim, k: t, ldb: vk, ldc: vk, transposeA: true)
                                                        BLAS.gemm(dOHead, v.baseAddress! + b * s * vk + n * valueDim, dP.baseAddress!,
                                                                  m: t, n: s, k: valueDim, lda: vk, ldb: vk, transposeB: true)
                                                        if !keep.isEmpty { for i in 0..<(t * s) { dP[i] *= keep[offset + i] } }
                                                        // Softmax: dZ = P ⊙ (dP − Σ_s P·dP), times the score scale.
                                                        for r in 0..<t {
                                                            var dot: Float = 0
                                                            for j in 0..<s { dot += p[r * s + j] * dP[r * s + j] }
                                                            // tf.keras' additive mask: a row with nothing allowed is a
                                                            // softmax of shifted scores, which passes gradients.
                                                            let shifted = additive && allowed.map { a in (0..<s).allSatisfy { a[(b * t + r) * s + $0] == 0 } } ?? false
                                                            for j in 0..<s {
                                                                let ok = shifted || (allowed.map { $0[(b * t + r) * s + j] != 0 } ?? true)
                                                                dP[r * s + j] = ok ? p[r * s + j] * (dP[r * s + j] - dot) * scale : 0
                                                            }
                                                        }
                                                        // dQ = dZ·K, dK = dZᵀ·Q.
                                                        BLAS.gemm(dP.baseAddress!, k.baseAddress! + b * s * qk + n * keyDim, dQ.baseAddress! + b * t * qk + n * keyDim,
                                                                  m: t, n: keyDim, k: s, ldb: qk, ldc: qk)
                                                        BLAS.gemm(dP.baseAddress!, q.baseAddress! + b * t * qk + n * keyDim, dK.baseAddress! + b * s * qk + n * keyDim,
                                                                  m: s, n: keyDim, k: t, ldb: qk, ldc: qk, transposeA: true)
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
            }
        }
    }
}
