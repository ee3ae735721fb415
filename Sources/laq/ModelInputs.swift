import ArgumentParser
import LAQData
import LAQEngine

/// Picks and checks a model's input arrays from a `.npy`/`.npz` file (shared by run and eval).
enum ModelInputs {
    /// One tensor per model input: the only array, or the array named `key` (single input), or
    /// the arrays named after the input layers or `x0`, `x1`, …; each checked against the model's
    /// input shape (as declared, before its values are read), for finite values, and for a common
    /// sample count.
    static func select(_ source: DataSource, for model: Model, key: String, file: String) throws -> [Tensor] {
        var chosen: [String] = []
        if source.arrays.count == 1, model.inputs.count == 1 {
            chosen = source.names
        } else {
            for (index, ref) in model.inputs.enumerated() {
                let keys = (model.inputs.count == 1 ? [key] : []) + [ref.layer, "x\(index)"]
                guard let found = keys.first(where: { source.shape($0) != nil }) else {
                    throw CLIError(message: "\(file): no array for input '\(ref.layer)' (tried \(keys.joined(separator: ", ")); has \(source.names.joined(separator: ", ")))", code: 1)
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
                    throw CLIError(message: "\(file): array '\(name)' has shape \(shape), input '\(ref.layer)' expects (\(expected.map { $0.map(String.init) ?? "any" }.joined(separator: ", ")))", code: 1)
                }
            }
        }
        let counts = chosen.map { source.shape($0)!.first ?? 0 }
        guard Set(counts).count <= 1 else {
            throw CLIError(message: "\(file): inputs have different sample counts \(counts)", code: 1)
        }
        var tensors: [Tensor] = []
        for name in chosen {
            let array = try read(source, name)
            if let bad = array.values.firstIndex(where: { !$0.isFinite }) {
                throw CLIError(message: "\(file): array '\(name)' has a non-finite value at element \(bad)", code: 1)
            }
            tensors.append(Tensor(shape: array.shape, data: array.values))
        }
        return tensors
    }

    /// The values of `name` (a missing file or a damaged one: exit 2 or 1).
    static func read(_ source: DataSource, _ name: String) throws -> NumpyArray {
        do { return try source.read(name) } catch { throw CLIError(message: error.description, code: error.isIO ? 2 : 1) }
    }

    /// Opens a data file (its arrays' shapes; values are read as they are used).
    static func open(_ specification: String) throws -> DataSource {
        do { return try DataFile.open(specification) } catch { throw CLIError(message: error.description, code: error.isIO ? 2 : 1) }
    }

    /// The inputs and labels of a labelled data file (eval, quantize --calib), each checked
    /// against `model` before it is read.
    static func labelled(_ file: String, for model: Model, xKey: String, yKey: String) throws -> (inputs: [Tensor], labels: NumpyArray) {
        let source = try open(file)
        guard source.shape(yKey) != nil else {
            throw CLIError(message: "\(file): no labels array '\(yKey)' (has \(source.names.joined(separator: ", "))); use --y-key", code: 1)
        }
        let inputs = try select(source, for: model, key: xKey, file: file)
        return (inputs, try labels(source, key: yKey, samples: inputs[0].shape.first ?? 0, file: file, model: model))
    }

    /// The labels array `key`, refused before it is read unless it has `samples` rows and at
    /// most as many values per sample as an output of `model` has (class indices have fewer).
    private static func labels(_ source: DataSource, key: String, samples: Int, file: String, model: Model) throws -> NumpyArray {
        guard let shape = source.shape(key) else { throw CLIError(message: "\(file): no labels array '\(key)'", code: 1) }
        guard shape.first == samples, samples > 0 else {
            throw CLIError(message: "\(file): array '\(key)' has \(shape.first ?? 0) samples, the inputs \(samples)", code: 1)
        }
        let shapes = (try? model.outputShapes()) ?? [:]
        let widths = model.outputs.map { output in shapes[output.layer].flatMap { $0.dropFirst().reduce(Optional(1)) { total, dim in dim.flatMap { d in total.map { $0 * d } } } } }
        let perSample = shape.dropFirst().reduce(1, *)
        if !widths.isEmpty, !widths.contains(nil), let widest = widths.compactMap({ $0 }).max(), perSample > widest {
            throw CLIError(message: "\(file): array '\(key)' has shape \(shape): \(perSample) values per sample, the model outputs \(widest)", code: 1)
        }
        return try read(source, key)
    }
}

/// Checks labels against a model output of `rows` rows (samples × time steps) of `width` values:
/// class indices in 0..<width (one per row) for sparse losses, otherwise one value per output
/// element; finite everywhere. Errors name the file and the array.
func checkLabels(_ labels: NumpyArray, rows: Int, width: Int, sparse: Bool, file: String, key: String) throws {
    if let bad = labels.values.firstIndex(where: { !$0.isFinite }) {
        throw CLIError(message: "\(file): array '\(key)' has a non-finite value at element \(bad)", code: 1)
    }
    if sparse {
        guard labels.values.count == rows else {
            throw CLIError(message: "\(file): array '\(key)' has shape \(labels.shape); class-index labels need one per output row (\(rows))", code: 1)
        }
        if let bad = labels.values.firstIndex(where: { $0 < 0 || $0 >= Float(width) || $0 != $0.rounded() }) {
            throw CLIError(message: "\(file): array '\(key)': label \(labels.values[bad]) at position \(bad) is not a class index in 0…\(width - 1)", code: 1)
        }
    } else if labels.values.count != rows * width {
        throw CLIError(message: "\(file): array '\(key)' has shape \(labels.shape), the model outputs \(rows) rows of \(width)", code: 1)
    }
}

/// The array names in a labelled `.npz` (eval, quantize --calib).
struct LabelledDataKeys: ParsableArguments {
    @Option(help: "Inputs array in the .npz (multi-input models: the input layers' names or x0, x1, …).")
    var xKey: String = "x"

    @Option(help: "Labels array in the .npz.")
    var yKey: String = "y"
}

/// How `run` and `eval` execute a model's packed kernels.
struct ExecutionOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Activations of binary, ternary and linear m-bit products: float32, or int8 (each input row quantized on the fly, symmetric, max|x|/127, as ONNX Runtime's dynamic quantization; faster, approximate).",
        valueName: "precision"))
    var activations: ActivationPrecision = .float32
}

extension ActivationPrecision: ExpressibleByArgument {}
