import ArgumentParser
import Foundation
import LAQAnalysis
import LAQFormat

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML report of a .laq file (inline SVG charts, no network access).",
        discussion: """
            Per-tensor bits, sizes and compression; weight histograms with the quantization levels drawn over \
            them (with --against, the full-precision weights); the calibration loss and accuracy curves from \
            the provenance; with --against, the diff summary, and with --data as well, output agreement and \
            each quantized layer's effect on the output.

            Exit status: 0 written; 1 a damaged file; 2 usage or I/O error, or --data that cannot be run.
            """
    )

    @Argument(help: "The .laq file (usually quantized).")
    var input: String

    @Option(help: "The full-precision file it was quantized from.")
    var against: String?

    @OptionGroup var comparison: ComparisonData
    var data: String? { comparison.data }

    @Option(name: .shortAndLong, help: "Output HTML file.")
    var output: String

    @Flag(help: "Print a JSON summary (charts drawn, sizes).")
    var json = false

    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        if data != nil, against == nil { throw ValidationError("--data compares outputs against the --against file: give both") }
    }

    func run() throws {
        let file = try openLAQ(input)
        let reference = try against.map { try openLAQ($0) }
        var diff: ModelDiff?
        if let reference {
            diff = try ModelDiff.compare(reference, file)
            if let data, let base = diff {
                diff?.outputs = try Diff.compareOutputs(reference, named: against ?? "", file, named: input, diff: base, data: data, xKey: comparison.xKey, limit: comparison.limit)
            }
        }
        var page = ReportPage(file: file, fileName: URL(fileURLWithPath: input).lastPathComponent, reference: reference,
                              referenceName: against.map { URL(fileURLWithPath: $0).lastPathComponent }, diff: diff,
                              dataName: data.map { URL(fileURLWithPath: $0).lastPathComponent })
        let html = try page.render()
        let bytes = Array(html.utf8)
        try AtomicFile.write(bytes, to: output)
        if json {
            try printJSON(["input": .string(input), "output": .string(output), "bytes": .int(Int64(bytes.count)),
                           "charts": .array(page.charts.map { .string($0) })])
        } else {
            print("wrote \(output): \(page.charts.count) charts, \(formatBytes(UInt64(bytes.count)))")
        }
    }
}
