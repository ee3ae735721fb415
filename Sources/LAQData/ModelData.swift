import LAQEngine

/// A model's inputs and labels from a data file (`run`, `eval`, `bench`, `diff --data`,
/// `quantize --calib`): arrays picked by name, each checked against the model's shapes as the
/// file declares them, before its values are read. Errors name the file, say what does not fit,
/// list the arrays the file has, and suggest the option that would pick a fitting one.
public enum ModelData {
    /// A labelled data file, read: one input tensor per model input, and the labels.
    public struct Labelled {
        public var inputs: [Tensor]
        public var labels: NumpyArray
        /// The file, for checks that need the model's outputs first (``checkLabels(_:rows:width:sparse:)``).
        public var source: DataSource
        public var labelsKey: String
        /// The arrays that hold the inputs.
        public var inputKeys: [String]

        public var samples: Int { inputs.first?.shape.first ?? 0 }
    }

    /// One tensor per model input: the only array, or the array named `key` (single input), or
    /// the arrays named after the input layers or `x0`, `x1`, …; each checked against the model's
    /// input shape (as declared, before its values are read), for finite values, and for a common
    /// sample count.
    public static func inputs(from source: DataSource, for model: Model, key: String) throws(DataError) -> [Tensor] {
        try read(source, keys: inputKeys(source, for: model, key: key))
    }

    /// The inputs and labels of a labelled data file, each checked against `model` before it is
    /// read: labels with as many samples as the inputs and at most as many values per sample as
    /// an output has (class indices have fewer).
    public static func labelled(_ specification: String, for model: Model, xKey: String, yKey: String) throws(DataError) -> Labelled {
        let source = try DataFile.open(specification)
        let keys = try inputKeys(source, for: model, key: xKey)
        let samples = source.shape(keys[0])?.first ?? 0
        guard let shape = source.shape(yKey) else {
            let fitting = source.names.filter { !keys.contains($0) && source.shape($0)?.first == samples }
            throw DataError(file: source.file, reason: "no labels array '\(yKey)'; \(listing(source))"
                + (fitting.isEmpty ? "" : "; pick the labels with --y-key (\(fitting.map { "'\($0)'" }.joined(separator: ", ")): \(samples) samples each)"))
        }
        guard shape.first == samples, samples > 0 else {
            throw DataError(file: source.file, reason: "array '\(yKey)' has \(shape.first ?? 0) samples, the inputs \(samples); \(listing(source))")
        }
        let shapes = (try? model.outputShapes()) ?? [:]
        let widths = model.outputs.map { output in shapes[output.layer].flatMap { $0.dropFirst().reduce(Optional(1)) { total, dim in dim.flatMap { d in total.map { $0 * d } } } } }
        let perSample = shape.dropFirst().reduce(1, *)
        if !widths.isEmpty, !widths.contains(nil), let widest = widths.compactMap({ $0 }).max(), perSample > widest {
            throw DataError(file: source.file, reason: "array '\(yKey)' has shape \(shape): \(perSample) values per sample, the model outputs \(widest); \(listing(source))")
        }
        let inputs = try read(source, keys: keys)
        return Labelled(inputs: inputs, labels: try source.read(yKey), source: source, labelsKey: yKey, inputKeys: keys)
    }

    /// Checks labels against a model output of `rows` rows (samples × time steps) of `width`
    /// values: class indices in 0..<width (one per row) for sparse losses, otherwise one value
    /// per output element; finite everywhere. A mismatch names the arrays of the file that would
    /// fit, and a one-hot array given to a sparse loss says so.
    public static func checkLabels(_ data: Labelled, rows: Int, width: Int, sparse: Bool) throws(DataError) {
        let labels = data.labels, key = data.labelsKey, file = data.source.file
        if let bad = labels.values.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: file, reason: "array '\(key)' has a non-finite value at element \(bad)")
        }
        let needed = sparse ? rows : rows * width
        let fitting = data.source.names.filter { $0 != key && !data.inputKeys.contains($0) && (data.source.shape($0) ?? []).reduce(1, *) == needed }
        let pick = fitting.first.map { "; use --y-key \($0) (\(needed) values)" } ?? ""
        if sparse {
            guard labels.values.count == rows else {
                let oneHot = labels.values.count == rows * width && width > 1
                    ? "; it holds one value per class (one-hot?), which --loss categorical_crossentropy reads" : ""
                throw DataError(file: file, reason: "array '\(key)' has shape \(labels.shape); class-index labels need one per output row (\(rows))\(oneHot)\(pick); \(listing(data.source))")
            }
            if let bad = labels.values.firstIndex(where: { $0 < 0 || $0 >= Float(width) || $0 != $0.rounded() }) {
                throw DataError(file: file, reason: "array '\(key)': label \(labels.values[bad]) at position \(bad) is not a class index in 0…\(width - 1)")
            }
        } else if labels.values.count != rows * width {
            throw DataError(file: file, reason: "array '\(key)' has shape \(labels.shape), the model outputs \(rows) rows of \(width)\(pick); \(listing(data.source))")
        }
    }

    /// "the file has x (256×784 float32), y (256 uint8)".
    public static func listing(_ source: DataSource) -> String {
        "the file has " + source.names.map { name in
            let array = source.arrays[name]!
            return "\(name) (\(array.shape.isEmpty ? "scalar" : array.shape.map(String.init).joined(separator: "×")) \(typeName(array.dtype)))"
        }.joined(separator: ", ")
    }

    /// NumPy's name of a dtype string (`<f4` → float32, `|u1` → uint8, `|b1` → bool).
    static func typeName(_ dtype: String) -> String {
        let code = dtype.drop { "<>|=".contains($0) }
        guard let kind = code.first, let bytes = Int(code.dropFirst()) else { return dtype }
        switch kind {
        case "f": return "float\(bytes * 8)"
        case "i": return "int\(bytes * 8)"
        case "u": return "uint\(bytes * 8)"
        case "b": return "bool"
        default: return dtype
        }
    }

    /// The arrays holding each model input, checked against the input's declared shape and for a
    /// common sample count (nothing read yet).
    static func inputKeys(_ source: DataSource, for model: Model, key: String) throws(DataError) -> [String] {
        var chosen: [String] = []
        if source.arrays.count == 1, model.inputs.count == 1 {
            chosen = source.names
        } else {
            for (index, ref) in model.inputs.enumerated() {
                let keys = (model.inputs.count == 1 ? [key] : []) + [ref.layer, "x\(index)"]
                guard let found = keys.first(where: { source.shape($0) != nil }) else {
                    throw DataError(file: source.file, reason: "no array for input '\(ref.layer)' (tried \(keys.joined(separator: ", "))); \(listing(source)); pick it with --x-key")
                }
                chosen.append(found)
            }
        }
        let shapes = (try? model.outputShapes()) ?? [:]
        for (name, ref) in zip(chosen, model.inputs) {
            let shape = source.shape(name)!
            if let expected = shapes[ref.layer] {
                let fits = expected.count == shape.count && zip(expected.dropFirst(), shape.dropFirst()).allSatisfy { $0 == nil || $0 == $1 }
                guard fits else {
                    throw DataError(file: source.file, reason: "array '\(name)' has shape \(shape), input '\(ref.layer)' expects (\(expected.map { $0.map(String.init) ?? "any" }.joined(separator: ", ")))")
                }
            }
        }
        let counts = chosen.map { source.shape($0)!.first ?? 0 }
        guard Set(counts).count <= 1 else {
            throw DataError(file: source.file, reason: "inputs have different sample counts \(counts)")
        }
        return chosen
    }

    /// The arrays' values as tensors, each refused if it holds a NaN or an infinity.
    static func read(_ source: DataSource, keys: [String]) throws(DataError) -> [Tensor] {
        var tensors: [Tensor] = []
        for name in keys {
            let array = try source.read(name)
            if let bad = array.values.firstIndex(where: { !$0.isFinite }) {
                throw DataError(file: source.file, reason: "array '\(name)' has a non-finite value at element \(bad)")
            }
            tensors.append(Tensor(shape: array.shape, data: array.values))
        }
        return tensors
    }
}
