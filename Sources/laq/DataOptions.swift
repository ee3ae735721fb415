import ArgumentParser
import Foundation
import LAQEngine

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

    /// Says on standard error when the activations chosen run in scalar code on this CPU.
    func warnIfScalar() {
        guard activations.isScalarHere else { return }
        FileHandle.standardError.write(Data("warning: this CPU lacks AVX2, so int8 activations run in laq's scalar code, tens of times slower than float32\n".utf8))
    }
}

extension ActivationPrecision: ExpressibleByArgument {}
