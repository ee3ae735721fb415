import ArgumentParser
import Foundation
import LAQData
import LAQEngine
import LAQFormat

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a .laq model's inference speed as stored, on this machine.",
        discussion: """
            Runs --warmup untimed batches, then --iterations timed ones, and prints the median, \
            minimum and 90th percentile time per batch, samples per second, the threads used, the \
            instruction set of laq's kernels on this CPU, the chunks of samples a batch ran in (where the \
            model's tensors are large, a batch runs in chunks that fit the caches, side by side on the threads \
            where there are enough), the multiply-adds of one batch's products and \
            the GFLOP/s they make. --layers times each \
            layer too (a BatchNormalization or activation layer fused into the product before it \
            shows "in" that layer, whose time includes it; with chunks side by side, a layer's time is \
            its threads' time divided by their number). The inputs are random values in [0, 1) of the model's input shape (integer \
            inputs such as token ids: 1) unless --input gives a file. tools/bench/compare_peers.py runs the same Keras model in ONNX \
            Runtime and Keras beside this command.
            """
    )

    @Argument(help: "The .laq model.")
    var model: String

    @Option(help: "Samples per batch.")
    var batch: Int = 1

    @Option(help: "Untimed runs before the timed ones.")
    var warmup: Int = 3

    @Option(help: "Timed runs.")
    var iterations: Int = 20

    @Option(help: "Inputs (.npy/.npz): the first --batch samples are used (default: random values).")
    var input: String?

    @Option(name: .long, help: "Array to use from an .npz (default: x, or the input layers' names).")
    var xKey: String?

    @Option(help: "Length of the input dimensions the model leaves open (a sequence length), for random inputs.")
    var length: Int?

    @Flag(help: "Time each layer too.")
    var layers = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var execution: ExecutionOptions

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        guard (1...(1 << 20)).contains(batch) else { throw ValidationError("--batch must be in 1…1048576") }
        guard (0...100_000).contains(warmup) else { throw ValidationError("--warmup must be in 0…100000") }
        guard (1...100_000).contains(iterations) else { throw ValidationError("--iterations must be in 1…100000") }
        if let length, !(1...(1 << 20)).contains(length) { throw ValidationError("--length must be in 1…1048576") }
    }

    func run() throws {
        let file = try openLAQ(model)
        let laqModel: Model
        laqModel = try reading(model) { try Model(file: file, packed: true, optimizerState: false) }
        execution.warnIfScalar()
        let executor = try reading(model) { try Executor(model: laqModel, activations: execution.activations) }
        let inputs: [Tensor]
        if let input {
            let all = try ModelData.inputs(from: DataFile.open(input), for: laqModel, key: xKey ?? "x")
            let samples = all.first?.shape.first ?? 0
            guard samples >= batch else { throw CommandError.refused("\(input): has \(samples) samples, --batch is \(batch); give --batch \(max(samples, 1)) or fewer") }
            inputs = all.map { $0.rows(0..<batch) }
        } else {
            inputs = try reading(model) { try Benchmark.randomInputs(for: laqModel, batch: batch, length: length) }
        }
        let bar = ProgressBar(label: "benchmarking", total: Double(warmup + iterations * (layers ? 2 : 1)), unit: { String(Int($0)) })
        let result = try reading(model) {
            try Benchmark.run(executor, inputs: inputs, warmup: warmup, iterations: iterations, layers: layers) { done, _ in bar.update(Double(done)) }
        }
        bar.finish()
        if json {
            guard case var .object(object) = result.json else { return }
            object["model"] = .string(model)
            object["input"] = input.map { .string($0) } ?? .string("random")
            object["activations"] = .string(execution.activations.rawValue)
            object["kernels"] = .string(MatrixKernel.instructionSet)
            try printJSON(.object(object))
            return
        }
        let chunks = result.chunks > 1 ? " in \(result.chunks) chunks\(result.sideBySide ? " side by side" : "")" : ""
        print("\(model): batch \(batch)\(chunks), \(execution.activations.rawValue) activations, \(result.threads) thread\(result.threads == 1 ? "" : "s") (\(MatrixKernel.instructionSet) kernels), \(iterations) runs after \(warmup) warm-up, \(input.map { "inputs from \($0)" } ?? "random inputs")")
        print(String(format: "  median %@   min %@   p90 %@ per batch", milliseconds(result.median), milliseconds(result.minimum), milliseconds(result.p90)))
        print(String(format: "  %@ samples/s   %@ multiply-adds per batch   %.2f GFLOP/s", grouped(result.samplesPerSecond), count(result.multiplyAdds), result.gflops))
        if let layerTimes = result.layers {
            let total = layerTimes.reduce(0) { $0 + $1.medianSeconds }
            var table = TextTable(headers: ["layer", "class", "median", "share", "multiply-adds", "GFLOP/s"],
                                  rightAligned: [2, 3, 4, 5], shrinkable: [(0, 16), (1, 12)])
            for layer in layerTimes {
                table.rows.append([
                    layer.name, layer.className, layer.fusedInto.map { "in \($0)" } ?? milliseconds(layer.medianSeconds),
                    String(format: "%.1f%%", total > 0 ? 100 * layer.medianSeconds / total : 0), count(layer.multiplyAdds),
                    layer.multiplyAdds > 0 && layer.medianSeconds > 0 ? String(format: "%.2f", 2 * Double(layer.multiplyAdds) / layer.medianSeconds / 1e9) : "",
                ])
            }
            print(table.render(width: terminalWidth()))
        }
    }

    private func milliseconds(_ seconds: Double) -> String {
        seconds >= 0.1 ? String(format: "%.1f ms", seconds * 1000) : String(format: "%.3f ms", seconds * 1000)
    }

    private func grouped(_ value: Double) -> String {
        value >= 100 ? count(Int(value.rounded())) : String(format: "%.2f", value)
    }

    private func count(_ value: Int) -> String {
        let digits = String(value)
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return result
    }
}
