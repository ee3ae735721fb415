extension Model {
    /// One row of a `model.summary()`-style table.
    public struct SummaryRow: Sendable {
        public var layer: String
        public var className: String
        public var outputShape: Shape?
        public var parameters: Int
        /// The tensors every call consumes (a shared layer lists each call's).
        public var inputs: [String]
    }

    /// Layers with their output shapes and parameter counts, as Keras' `model.summary()` lists them.
    public func summaryRows() -> [SummaryRow] {
        let shapes = (try? outputShapes()) ?? [:]
        var counts: [String: Int] = [:]
        for weight in weights { counts[weight.layer, default: 0] += weight.elementCount }
        return layers.map { layer in
            SummaryRow(layer: layer.name, className: layer.className, outputShape: shapes[layer.name],
                       parameters: counts[layer.name] ?? 0, inputs: layer.inbound.flatMap { $0 }.map(\.description))
        }
    }

    /// Trainable and non-trainable parameter counts.
    public var parameterCounts: (trainable: Int, nonTrainable: Int) {
        weights.reduce((0, 0)) { total, weight in
            weight.trainable ? (total.0 + weight.elementCount, total.1) : (total.0, total.1 + weight.elementCount)
        }
    }
}
