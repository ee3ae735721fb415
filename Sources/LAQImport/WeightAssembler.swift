import LAQEngine

/// A variable as a file stores it, before it is matched to a layer's weight. Its values are
/// read only after its name and shape have been checked, so a file cannot make laq allocate
/// for a dataset that does not fit the model.
struct StoredVariable {
    /// The name in the file (`dense/kernel:0`, `tiny/bn/gamma`), or the numeric key (Keras 3).
    var storedName: String
    var shape: [Int]
    var dtype: String
    var read: () throws -> [Float]
}

/// Matches stored variables to each layer's expected weights (by position, as Keras' loaders
/// do), cross-checking names when the file has them and shapes against the layer config.
enum WeightAssembler {
    static func assemble(
        graph: KerasArchitecture.Graph, path: String, outlet: TensorOutlet = TensorOutlet(),
        variables: (Layer) throws -> [StoredVariable]
    ) throws -> [Weight] {
        let model = Model(name: graph.name, layers: graph.layers, inputs: graph.inputs, outputs: graph.outputs, outputNames: graph.outputNames)
        let shapes: [TensorRef: Shape]
        do { shapes = try model.callShapes() } catch { throw ImportError.model(path: path, error) }
        var weights: [Weight] = []
        for layer in graph.layers {
            let stored = try variables(layer)
            let expected = layer.weightNames
            if stored.count != expected.count, let codes = stored.first(where: { $0.dtype == "int" }) {
                // MultiHeadAttention and EinsumDense keep float configs when model.quantize
                // quantizes their projections: the file's integer kernels tell.
                throw ImportError.invalid(path: path, what: "layer '\(layer.name)' (\(layer.className))",
                                          reason: "its variable \(codes.storedName) holds integer codes: Keras quantized it (model.quantize), and laq executes Keras' quantization of Dense and Embedding only")
            }
            guard stored.count == expected.count else {
                throw ImportError.weightCount(path: path, layer: layer.name, expected: expected, found: stored.map(\.storedName))
            }
            let expectedShapes = model.inputShapes(of: layer, in: shapes).first.map(layer.kind.weightShapes) ?? [:]
            let specs = layer.kind.weights
            let kerasNames = specs.map(\.kerasName)
            for (index, (variable, name)) in zip(stored, expected).enumerated() {
                // Keras 3's name for the variable, or the weight's own (tf.keras' LayerScale: `gamma`).
                if !namesMatch(variable.storedName, kerasNames[index]), !namesMatch(variable.storedName, name) {
                    throw ImportError.weightName(path: path, layer: layer.name, expected: name, found: variable.storedName)
                }
                if let shape = expectedShapes[name], shape != variable.shape {
                    throw ImportError.weightShape(path: path, weight: "\(layer.name)/\(name)", expected: shape, found: variable.shape)
                }
                let weight = Weight(layer: layer.name, shortName: name, shape: variable.shape, values: try variable.read(),
                                    trainable: specs[index].trainable, sourceDType: variable.dtype)
                weights.append(try outlet.deliver(weight, of: layer))
            }
        }
        return weights
    }

    /// Whether a stored variable name (`lstm/lstm_cell/kernel:0`, `tiny/bidi/backward_rnn/…/bias`)
    /// names the expected weight (`kernel`, `backward/bias`); numeric keys (Keras 3) carry no name
    /// and always match. tf.keras calls a depthwise kernel `depthwise_kernel`, Keras 3 `kernel`.
    static func namesMatch(_ stored: String, _ expected: String) -> Bool {
        if stored.allSatisfy(\.isNumber) { return true }
        var name = stored
        if let colon = name.lastIndex(of: ":") { name = String(name[..<colon]) }
        let parts = name.split(separator: "/").map(String.init)
        let wanted = expected.split(separator: "/").map(String.init)
        guard let last = parts.last, let wantedLast = wanted.last else { return false }
        // Keras numbers unnamed variables: `variable`, `variable_1`, …
        let numbered = wantedLast == "variable" && last.hasPrefix("variable_") && last.dropFirst("variable_".count).allSatisfy(\.isNumber)
        guard last == wantedLast || numbered || (last == "depthwise_kernel" && wantedLast == "kernel") else { return false }
        if wanted.count == 2 {  // Bidirectional: the direction must appear in the path.
            return parts.dropLast().contains { $0.hasPrefix(wanted[0]) }
        }
        return true
    }
}
