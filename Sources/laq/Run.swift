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
        laqModel = try reading(model) { try Model(file: file, packed: true, optimizerState: false) }
        execution.warnIfScalar()
        let executor = try reading(model) { try Executor(model: laqModel, activations: execution.activations) }
        let inputs = try ModelData.inputs(from: DataFile.open(input), for: laqModel, key: xKey ?? "x")
        let samples = inputs[0].shape.first ?? 0
        let bar = samples >= 4 * batch ? ProgressBar(label: "running", total: Double(samples), unit: { String(Int($0)) }) : nil
        let results = try reading(model) { try executor.predict(inputs, batch: batch) { bar?.update(Double($0)) } }
        bar?.finish()
        // Outputs are written as computed; NaN and infinities are said, with where they start.
        if let found = try reading(model, nil, { try executor.nonFinite(outputs: results, inputs: inputs) }) {
            FileHandle.standardError.write(Data("warning: \(found.count) of \(found.of) outputs are not finite (NaN or infinite)\(found.layer.map { ", first produced by layer '\($0)'" } ?? "")\n".utf8))
        }
        // A layer inside a nested model is `model/layer`: one file name, not a directory. Names
        // that would meet (`a/b` and `a_b`, two calls of one layer) get their output's index.
        var names = laqModel.outputNames.map { $0.replacingOccurrences(of: "/", with: "_") }
        for index in names.indices where names.filter({ $0 == names[index] }).count > 1 { names[index] += "_\(index)" }
        for (index, name) in names.enumerated() {
            let path = outputPath(name: name, single: laqModel.outputs.count == 1)
            try Numpy.write(shape: results[index].shape, values: results[index].data, to: path)
            print("wrote \(path): \(results[index].shape.map(String.init).joined(separator: "×")) float32")
        }
    }

    func outputPath(name: String, single: Bool) -> String {
        let base = output.map { $0.hasSuffix(".npy") ? String($0.dropLast(4)) : $0 }
            ?? (input.hasSuffix(".npy") || input.hasSuffix(".npz") ? String(input.dropLast(4)) : input) + ".pred"
        return single ? base + ".npy" : "\(base).\(name).npy"
    }
}
