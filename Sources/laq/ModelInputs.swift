import ArgumentParser
import LAQData
import LAQEngine

/// Picks and checks a model's input arrays from a `.npy`/`.npz` file (shared by run and eval).
enum ModelInputs {
    /// One tensor per model input: the only array, or the array named `key` (single input), or
    /// the arrays named after the input layers or `x0`, `x1`, …; each checked against the model's
    /// input shape, for finite values, and for a common sample count.
    static func select(_ arrays: [String: NumpyArray], for model: Model, key: String, file: String) throws -> [Tensor] {
        var chosen: [(String, NumpyArray)] = []
        if arrays.count == 1, model.inputs.count == 1 {
            chosen = [arrays.first!]
        } else {
            for (index, ref) in model.inputs.enumerated() {
                let keys = (model.inputs.count == 1 ? [key] : []) + [ref.layer, "x\(index)"]
                guard let found = keys.first(where: { arrays[$0] != nil }) else {
                    throw CLIError(message: "\(file): no array for input '\(ref.layer)' (tried \(keys.joined(separator: ", ")); has \(arrays.keys.sorted().joined(separator: ", ")))", code: 1)
                }
                chosen.append((found, arrays[found]!))
            }
        }
        let shapes = (try? model.outputShapes()) ?? [:]
        var tensors: [Tensor] = []
        for ((name, array), ref) in zip(chosen, model.inputs) {
            if let expected = shapes[ref.layer] {
                let fits = expected.count == array.shape.count && zip(expected.dropFirst(), array.shape.dropFirst()).allSatisfy { $0 == nil || $0 == $1 }
                guard fits else {
                    throw CLIError(message: "\(file): array '\(name)' has shape \(array.shape), input '\(ref.layer)' expects (\(expected.map { $0.map(String.init) ?? "any" }.joined(separator: ", ")))", code: 1)
                }
            }
            if let bad = array.values.firstIndex(where: { !$0.isFinite }) {
                throw CLIError(message: "\(file): array '\(name)' has a non-finite value at element \(bad)", code: 1)
            }
            tensors.append(Tensor(shape: array.shape, data: array.values))
        }
        guard Set(tensors.map { $0.shape.first ?? 0 }).count <= 1 else {
            throw CLIError(message: "\(file): inputs have different sample counts \(tensors.map { $0.shape.first ?? 0 })", code: 1)
        }
        return tensors
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
