import Foundation

extension Loss {
    /// ∂(mean loss over the batch)/∂outputs for outputs (n, width). For probabilities the clip
    /// to [ε, 1 − ε] is not applied to the gradient (only a floor against division by zero), so
    /// that through a softmax or sigmoid output it becomes exactly p·Σy − y (σ − y), the gradient
    /// Keras takes from the logits: saturated, misclassified samples still train.
    public func gradient(outputs: [Float], labels rawLabels: [Float], width: Int) -> [Float] {
        gradient(outputs: outputs, labels: rawLabels, width: width, workspace: nil)
    }

    /// The same, with the result and scratch rows from `workspace` when given.
    func gradient(outputs: [Float], labels rawLabels: [Float], width: Int, workspace: Workspace?) -> [Float] {
        let n = width == 0 ? 0 : outputs.count / width
        let labels = hingeLabels(rawLabels)
        var grad = Matrix.zeros(outputs.count, workspace: workspace)
        let scale = 1 / Float(max(n, 1))
        // Scratch rows, reused by every sample (no array per sample).
        var target = Matrix.zeros(width, workspace: workspace), p = Matrix.zeros(width, workspace: workspace)
        var inner = Matrix.zeros(width, workspace: workspace)
        defer {
            workspace?.recycle(&target)
            workspace?.recycle(&p)
            workspace?.recycle(&inner)
        }
        for sample in 0..<n {
            let row = sample * width
            switch self {
            case let .sparseCategoricalCrossentropy(fromLogits), let .categoricalCrossentropy(fromLogits):
                if case .sparseCategoricalCrossentropy = self {
                    for j in 0..<width { target[j] = 0 }
                    target[Int(labels[sample])] = 1
                } else {
                    for j in 0..<width { target[j] = labels[row + j] }
                }
                if fromLogits {
                    for j in 0..<width { p[j] = outputs[row + j] }
                    Activation.softmax.apply(&p, width: width)
                    let mass = target.reduce(0, +)
                    for j in 0..<width { grad[row + j] = (p[j] * mass - target[j]) * scale }
                } else {
                    // L = −Σ y_j log(p_j / S), S = Σ p.
                    let rawSum = outputs[row..<(row + width)].reduce(0, +)
                    let sum = rawSum == 0 ? 1 : rawSum
                    for j in 0..<width { inner[j] = 0 }  // ∂L/∂q_j, q = p/S
                    for j in 0..<width where target[j] != 0 {
                        let q = outputs[row + j] / sum
                        inner[j] = -target[j] / max(q, Self.floor)
                    }
                    // ∂q_j/∂p_k = δ_jk/S − p_j/S².
                    var dot: Float = 0
                    for j in 0..<width { dot += inner[j] * outputs[row + j] }
                    for k in 0..<width { grad[row + k] = (inner[k] / sum - dot / (sum * sum)) * scale }
                }
            case let .binaryCrossentropy(fromLogits):
                for j in 0..<width {
                    let y = labels[row + j]
                    let o = outputs[row + j]
                    if fromLogits {
                        grad[row + j] = (Activation.sigmoid(o) - y) * scale / Float(width)
                    } else {
                        let p = min(max(o, Self.floor), Float(1).nextDown)
                        grad[row + j] = (-y / p + (1 - y) / (1 - p)) * scale / Float(width)
                    }
                }
            case .meanSquaredError:
                for j in 0..<width { grad[row + j] = 2 * (outputs[row + j] - labels[row + j]) * scale / Float(width) }
            case .squaredHinge:
                for j in 0..<width {
                    let y = labels[row + j]
                    grad[row + j] = -2 * y * max(1 - y * outputs[row + j], 0) * scale / Float(width)
                }
            }
        }
        return grad
    }
}

extension Loss {
    /// The smallest probability a gradient divides by.
    static let floor: Float = 1e-30
}

