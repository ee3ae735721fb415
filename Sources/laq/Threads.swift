import ArgumentParser
import LAQEngine

/// `--threads`, for the commands that compute (LAQCommand.main applies it, once, after parsing).
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Threads for products, convolutions, training and calibration (default: LAQ_NUM_THREADS, else every CPU the process may use, counting its affinity mask and cgroup quota). Results are the same for any number.",
        valueName: "n"))
    var threads: Int?

    func validate() throws {
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be in 1…256") }
    }
}

/// A command with ``ThreadOptions``.
protocol ThreadedCommand {
    var threading: ThreadOptions { get }
}

extension Run: ThreadedCommand {}
extension Eval: ThreadedCommand {}
extension Quantize: ThreadedCommand {}
extension Diff: ThreadedCommand {}
extension Report: ThreadedCommand {}
extension Demo: ThreadedCommand {}
extension Bench: ThreadedCommand {}
