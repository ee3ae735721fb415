import ArgumentParser
import Foundation
import LAQFormat

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a .laq file: structure, every checksum, every code.",
        discussion: "Exit status: 0 valid; 1 invalid (the problems are listed); 2 usage or I/O error."
    )

    @Argument(help: "The .laq file.")
    var file: String

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func run() throws {
        let (laq, report) = LAQFile.verify(path: file)
        // The exit status is the report's (the damage tests check it for every damaged file).
        let status = report.exitStatus
        // A file that cannot be read at all is an I/O error (2), not an invalid file (1).
        if status == 2, let problem = report.problems.first {
            throw CommandError.io(problem.message)
        }
        if json {
            try printJSON(report.json(path: file, file: laq))
        } else if report.isValid, let laq {
            print("\(file): OK: format \(laq.header.major).\(laq.header.minor), \(report.tensorsChecked) tensors, \(formatBytes(report.bytesChecked)), sha256 \(report.sha256 ?? "")")
            if !report.undecodable.isEmpty {
                print("note: \(report.undecodable.count) tensors use encodings or features this laq cannot decode (checksums verified): \(report.undecodable.joined(separator: ", "))")
            }
            if !report.nonFinite.isEmpty {
                print("warning: \(report.nonFinite.count) tensor\(report.nonFinite.count == 1 ? " holds" : "s hold") NaN or infinite values (a model computing with them outputs NaN): "
                      + report.nonFinite.map { "\($0.tensor) (\($0.count))" }.joined(separator: ", "))
            }
        } else {
            print("\(file): INVALID: \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            for problem in report.problems {
                print("  [rule \(problem.rule ?? "-")] \(problem.message)")
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
