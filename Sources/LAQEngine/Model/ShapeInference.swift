import LAQFormat

/// A tensor shape with the batch dimension first; nil entries are unknown.
public typealias Shape = [Int?]

extension Model {
    /// The output shape of every layer's first call (batch first), computed from the input
    /// layers' shapes with Keras' rules; throws when shapes do not fit together.
    public func outputShapes() throws(ModelError) -> [String: Shape] {
        var shapes: [String: Shape] = [:]
        for (ref, shape) in try callShapes() where ref.node == 0 { shapes[ref.layer] = shape }
        return shapes
    }

    /// The output shape of every call of every layer (``calls()``), by the tensor it produces.
    public func callShapes() throws(ModelError) -> [TensorRef: Shape] {
        var shapes: [TensorRef: Shape] = [:]
        for call in try calls() {
            let inputs = self.inputs(of: call).map { shapes[$0] ?? [] }
            shapes[output(of: call)] = try layers[call.layer].kind.outputShape(inputs, layer: layers[call.layer].name)
        }
        return shapes
    }

    /// The shapes of the inputs of each call of `layer` (none for an input layer), from
    /// ``callShapes()``: what its weights' shapes follow.
    public func inputShapes(of layer: Layer, in shapes: [TensorRef: Shape]) -> [[Shape]] {
        layer.inbound.map { node in layer.dataInputs(node).map { shapes[$0] ?? [] } }
    }
}

enum ShapeRules {
    /// `(None, 28, 28, 1)`, as Keras prints shapes.
    static func describe(_ shape: Shape) -> String {
        "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    }

    /// The product of non-negative dimensions, or nil when it exceeds ``LayerOptions/maxDimension``.
    static func checkedProduct(_ values: [Int]) -> Int? {
        var product = 1
        for value in values {
            let (next, overflow) = product.multipliedReportingOverflow(by: value)
            guard !overflow, next <= LayerOptions.maxDimension else { return nil }
            product = next
        }
        return product
    }
}
