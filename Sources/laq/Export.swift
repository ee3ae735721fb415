import ArgumentParser
import Foundation
import LAQExport
import LAQFormat
import LAQHDF5

extension ExportFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a .laq model's weights, dequantized to float32, in a format other tools read.",
        discussion: """
            npz: one array per weight, named <layer>/<weight> (numpy.load). safetensors: the same tensors \
            (F32), with the source's SHA-256 in __metadata__. h5: Keras' legacy full-model layout, \
            architecture as imported plus weights, for keras.models.load_model or Model.load_weights \
            (it loads in the Keras generation that wrote the original file). Optimizer state is not exported.

            Exit status: 0 written; 1 the file cannot be exported (damaged, undecodable tensors, no Keras \
            architecture for h5); 2 usage or I/O error. Nothing is written on failure.
            """
    )

    @Argument(help: "The .laq file.")
    var input: String

    @Option(help: "Output format: npz, h5 or safetensors.")
    var to: ExportFormat

    @Option(name: .shortAndLong, help: "Output file.")
    var output: String

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func run() throws {
        let file = try openLAQ(input)
        let summary: ExportSummary
        do {
            summary = try Exporter.export(file, as: to, to: output)
        } catch let error as ExportError {
            throw FileError(path: input, reason: error)
        } catch let error as HDF5Error {
            // Writing the HDF5 output failed (the error names the file).
            throw CommandError.io(error.description)
        }
        if json {
            try printJSON([
                "input": .string(input), "output": .string(output), "format": .string(to.rawValue),
                "tensors": .int(Int64(summary.tensors)), "parameters": .int(Int64(summary.parameters)),
                "bytes": .int(Int64(summary.bytes)),
            ])
        } else {
            print("\(input) → \(output) (\(to.rawValue), \(summary.tensors) tensors, \(summary.parameters) parameters, \(formatBytes(summary.bytes)))")
        }
    }
}
