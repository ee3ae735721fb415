import ArgumentParser
import Foundation
import LAQData
import LAQEngine
import LAQFormat

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a .laq model on labelled data: loss, accuracy and top-k.",
        discussion: "The loss defaults to the one in the imported training config. Labels are class indices (sparse) or arrays shaped like the output (one-hot, binary)."
    )

    @Argument(help: "The .laq model.")
    var model: String

    @Option(help: "Labelled data: an .npz with inputs and labels.")
    var data: String

    @OptionGroup var keys: LabelledDataKeys
    var xKey: String { keys.xKey }
    var yKey: String { keys.yKey }

    @Option(help: "Loss (default: the training config's): sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mean_squared_error, squared_hinge.")
    var loss: String?

    @Option(help: "k for top-k accuracy.")
    var topK: Int = 5

    @Option(help: "Samples per batch.")
    var batch: Int = 256

    @OptionGroup var execution: ExecutionOptions

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        guard batch > 0, batch <= 1 << 20 else { throw ValidationError("--batch must be in 1…1048576") }
        guard topK >= 1 else { throw ValidationError("--top-k must be ≥ 1") }
    }

    func run() throws {
        let file = try openLAQ(model)
        let laqModel: Model
        do { laqModel = try Model(file: file, packed: true, optimizerState: false) } catch let error as ModelError { throw CLIError(message: "\(model): \(error)", code: .invalidInput) }
        guard laqModel.outputs.count == 1 else { throw CLIError(message: "\(model): eval supports single-output models", code: .invalidInput) }
        let lossFunction: Loss?
        if let loss {
            guard let parsed = Loss(.string(loss)) else { throw ValidationError("unknown loss '\(loss)'") }
            lossFunction = parsed
        } else {
            lossFunction = Loss(laqModel.training["loss"])
        }
        let labelled = try ModelData.labelled(self.data, for: laqModel, xKey: xKey, yKey: yKey)
        let samples = labelled.samples
        let executor: Executor
        do { executor = try Executor(model: laqModel, activations: execution.activations) } catch { throw CLIError(message: "\(model): \(error)", code: .invalidInput) }
        let bar = samples >= 4 * batch ? ProgressBar(label: "evaluating", total: Double(samples), unit: { String(Int($0)) }) : nil
        let prediction: Tensor
        do { prediction = try executor.predict(labelled.inputs, batch: batch) { bar?.update(Double($0)) }[0] } catch { throw CLIError(message: "\(model): \(error)", code: .invalidInput) }
        bar?.finish()
        let outputs = prediction.data
        let width = prediction.shape.count > 1 ? max(prediction.lastDimension, 1) : 1
        let rows = outputs.count / width
        let labels = labelled.labels
        let sparse = lossFunction?.sparseLabels ?? (labels.values.count == rows && width > 1)
        try ModelData.checkLabels(labelled, rows: rows, width: width, sparse: sparse)
        let result = Evaluation.evaluate(outputs: outputs, labels: labels.values, width: width, sparse: sparse, loss: lossFunction, k: topK)
        if result.nonFinite > 0 {
            // No loss or accuracy of a model that computes NaN or infinity: say where it starts.
            let found: (count: Int, of: Int, layer: String?)?
            do { found = try executor.nonFinite(outputs: [prediction], inputs: labelled.inputs) } catch { throw CLIError(message: "\(model): \(error)", code: .invalidInput) }
            throw CLIError(message: "\(model): \(result.nonFinite) of \(outputs.count) outputs are not finite (NaN or infinite) on \(self.data)\(found?.layer.map { ", first produced by layer '\($0)'" } ?? ""): no loss or accuracy reported", code: .invalidInput)
        }
        if json {
            var object: [String: JSONValue] = [
                "model": .string(model), "data": .string(self.data), "samples": .int(Int64(result.samples)),
                "loss": result.loss.map { .double($0) } ?? .null, "loss_name": lossFunction.map { .string($0.name) } ?? .null,
                "accuracy": result.accuracy.map { .double($0) } ?? .null,
                "activations": .string(execution.activations.rawValue),
            ]
            if let top = result.topK { object["top_k"] = ["k": .int(Int64(top.k)), "accuracy": .double(top.accuracy)] }
            try printJSON(.object(object))
        } else {
            var parts = ["\(result.samples) samples"]
            if let loss = result.loss, let name = lossFunction?.name { parts.append(String(format: "loss %.4f (%@)", loss, name)) }
            if let accuracy = result.accuracy { parts.append(String(format: "accuracy %.2f%%", accuracy * 100)) }
            if let top = result.topK { parts.append(String(format: "top-%d %.2f%%", top.k, top.accuracy * 100)) }
            print("\(model): " + parts.joined(separator: ", "))
        }
    }
}
