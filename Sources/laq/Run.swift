import ArgumentParser
import Foundation
import LAQData
import LAQEngine
import LAQFormat

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a .laq model on inputs from a .npy/.npz file and write its outputs as .npy.",
        discussion: "Multi-input models read an .npz with one array per input, named after the input layers (or x0, x1, …)."
    )

    @Argument(help: "The .laq model.")
    var model: String

    @Option(name: .long, help: "Input array(s): .npy, or .npz.")
    var input: String

    @Option(name: .long, help: "Array to use from an .npz (default: x, or the input layers' names).")
    var xKey: String?

    @Option(name: .shortAndLong, help: "Output .npy (default: <input>.pred.npy). Multi-output models write one file per output: <name>.<output>.npy.")
    var output: String?

    @Option(help: "Samples per batch.")
    var batch: Int = 256

    @OptionGroup var execution: ExecutionOptions

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        guard batch > 0, batch <= 1 << 20 else { throw ValidationError("--batch must be in 1…1048576") }
    }

    func run() throws {
        let file = try openLAQ(model)
        let laqModel: Model
        do { laqModel = try Model(file: file, packed: true, optimizerState: false) } catch let error as ModelError { throw CLIError(message: "\(model): \(error)", code: 1) }
        let executor = try engine { try Executor(model: laqModel, activations: execution.activations) }
        let inputs = try ModelInputs.select(ModelInputs.open(input), for: laqModel, key: xKey ?? "x", file: input)
        let samples = inputs[0].shape.first ?? 0
        var outputs: [[Float]] = Array(repeating: [], count: laqModel.outputs.count)
        var outputShapes: [[Int]] = Array(repeating: [], count: laqModel.outputs.count)
        let bar = samples >= 4 * batch ? ProgressBar(label: "running", total: Double(samples), unit: { String(Int($0)) }) : nil
        for start in stride(from: 0, to: samples, by: batch) {
            let end = min(start + batch, samples)
            let slice = inputs.map { $0.rows(start..<end) }
            let results = try engine { try executor.predict(slice) }
            for (index, result) in results.enumerated() {
                outputs[index] += result.data
                outputShapes[index] = Array(result.shape.dropFirst())
            }
            bar?.update(Double(end))
        }
        bar?.finish()
        // Outputs are written as computed; NaN and infinities are said, with where they start.
        let nonFinite = outputs.reduce(0) { $0 + $1.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        if nonFinite > 0, let (index, values) = outputs.enumerated().first(where: { $0.element.contains { !$0.isFinite } }) {
            let row = (values.firstIndex { !$0.isFinite } ?? 0) / max(outputShapes[index].reduce(1, *), 1)
            let first = try engine { try executor.firstNonFiniteLayer(inputs.map { $0.rows(row..<(row + 1)) }) }
            FileHandle.standardError.write(Data("warning: \(nonFinite) of \(outputs.reduce(0) { $0 + $1.count }) outputs are not finite (NaN or infinite)\(first.map { ", first produced by layer '\($0)'" } ?? "")\n".utf8))
        }
        // A layer inside a nested model is `model/layer`: one file name, not a directory. Names
        // that would meet (`a/b` and `a_b`, two calls of one layer) get their output's index.
        var names = laqModel.outputNames.map { $0.replacingOccurrences(of: "/", with: "_") }
        for index in names.indices where names.filter({ $0 == names[index] }).count > 1 { names[index] += "_\(index)" }
        for (index, name) in names.enumerated() {
            let path = outputPath(name: name, single: laqModel.outputs.count == 1)
            let bytes = Numpy.encode(shape: [samples] + outputShapes[index], values: outputs[index])
            try AtomicFile.write(to: path) { sink in try bytes.withUnsafeBytes { try sink.write($0) } }
            print("wrote \(path): \(([samples] + outputShapes[index]).map(String.init).joined(separator: "×")) float32")
        }
    }

    func engine<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EngineError { throw CLIError(message: "\(model): \(error)", code: 1) }
    }

    func outputPath(name: String, single: Bool) -> String {
        let base = output.map { $0.hasSuffix(".npy") ? String($0.dropLast(4)) : $0 }
            ?? (input.hasSuffix(".npy") || input.hasSuffix(".npz") ? String(input.dropLast(4)) : input) + ".pred"
        return single ? base + ".npy" : "\(base).\(name).npy"
    }
}
