import ArgumentParser
import Foundation
import LAQExamples
import LAQFormat

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a demo model that uses every encoding of the format.",
        discussion: "A Fashion-MNIST-shaped MLP with random weights: binary, ternary and 3-bit codebooks, float32/16 and bfloat16 tensors, and Adam moments."
    )

    @Option(name: .shortAndLong, help: "Output file.")
    var output: String = "demo.laq"

    @Option(help: "Seed for the random weights.")
    var seed: UInt64 = 1

    @Flag(help: "Record the creation time in the provenance (the file is then not reproducible).")
    var timestamp = false

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        // The provenance records the seed as a JSON integer (int64).
        if seed > UInt64(Int64.max) { throw ValidationError("--seed takes 0…\(Int64.max), got \(seed)") }
    }

    func run() throws {
        var writer = try ExampleModels.demoMLP(seed: seed)
        if timestamp {
            writer.provenance[writer.provenance.count - 1].created = ISO8601DateFormatter().string(from: Date())
        }
        try writer.write(to: output)
        let file = try LAQFile(path: output)
        print("wrote \(output): \(file.tensors.count) tensors, \(formatBytes(file.fileSize))")
    }
}
