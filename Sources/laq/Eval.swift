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
        laqModel = try reading(model) { try Model(file: file, packed: true, optimizerState: false) }
        guard laqModel.outputs.count == 1 else { throw CommandError.refused("\(model): eval scores single-output models; this one has \(laqModel.outputs.count) (use laq run to get every output)") }
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
        execution.warnIfScalar()
        executor = try reading(model) { try Executor(model: laqModel, activations: execution.activations) }
        let bar = samples >= 4 * batch ? ProgressBar(label: "evaluating", total: Double(samples), unit: { String(Int($0)) }) : nil
        let prediction: Tensor
        prediction = try reading(model) { try executor.predict(labelled.inputs, batch: batch) { bar?.update(Double($0)) }[0] }
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
            found = try reading(model) { try executor.nonFinite(outputs: [prediction], inputs: labelled.inputs) }
            throw CommandError.refused("\(model): \(result.nonFinite) of \(outputs.count) outputs are not finite (NaN or infinite) on \(self.data)\(found?.layer.map { ", first produced by layer '\($0)'" } ?? ""): no loss or accuracy reported")
        }
        if json {
            guard case var .object(object) = result.json(loss: lossFunction) else { return }
            object["model"] = .string(model)
            object["data"] = .string(self.data)
            object["activations"] = .string(execution.activations.rawValue)
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
