import Foundation
import LAQTestSupport
import Testing

/// Errors as a user meets them: each exit status of `laq --help` (0 success, 1 invalid input,
/// 2 usage or I/O), every error about a file naming that file, one message per cause across
/// subcommands, usage errors with the subcommand's own usage, and data files whose keys do not
/// fit answered with the arrays they have and the option that picks one.
@Suite struct ErrorMessageTests {
    static let readme = TestPaths.repositoryRoot.appendingPathComponent("README.md").path
    /// 256 Fashion-MNIST samples: x (256×784 float32), y (256×10 float32, one-hot), labels (256 uint8).
    static let data = TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path

    /// laq's error line: the last line starting "laq: error:".
    static func errorLine(_ result: CLITests.Result) -> String {
        result.stderr.split(separator: "\n").last { $0.hasPrefix("laq: error:") }.map(String.init) ?? ""
    }

    @Test("a missing file gives one message, naming it, with status 2, from every subcommand")
    func missingFile() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let out = directory.appendingPathComponent("out").path
        let missing = directory.appendingPathComponent("missing.laq").path
        let missingData = directory.appendingPathComponent("missing.npz").path
        let commands: [(arguments: [String], path: String)] = [
            (["inspect", missing], missing), (["verify", missing], missing), (["export", missing, "--to", "npz", "-o", out], missing),
            (["report", missing, "-o", out], missing), (["bench", missing], missing), (["diff", model, missing], missing),
            (["quantize", missing, "-o", out, "--method", "late", "--one-shot"], missing),
            (["import", directory.appendingPathComponent("missing.h5").path, "-o", out], directory.appendingPathComponent("missing.h5").path),
            (["eval", model, "--data", missingData], missingData), (["run", model, "--input", missingData], missingData),
            (["quantize", model, "-o", out, "--method", "late", "--calib", missingData], missingData),
        ]
        for (arguments, path) in commands {
            let result = try CLITests.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.status) \(result.stderr)")
            #expect(Self.errorLine(result) == "laq: error: \(path): open failed: No such file or directory", "\(arguments): \(result.stderr)")
        }
    }

    @Test("a file of the wrong kind is invalid input (status 1; diff: 2, its trouble), and the message names it")
    func wrongKind() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let inspect = try CLITests.run(["inspect", Self.readme])
        #expect(inspect.status == 1)
        #expect(Self.errorLine(inspect).hasPrefix("laq: error: \(Self.readme): not a .laq file"), "\(inspect.stderr)")
        let diff = try CLITests.run(["diff", model, Self.readme])
        #expect(diff.status == 2)
        #expect(Self.errorLine(diff).hasPrefix("laq: error: \(Self.readme): not a .laq file"), "\(diff.stderr)")
        let eval = try CLITests.run(["eval", model, "--data", Self.readme])
        #expect(eval.status == 1)
        #expect(Self.errorLine(eval).hasPrefix("laq: error: \(Self.readme):"), "\(eval.stderr)")
        let imported = try CLITests.run(["import", Self.readme, "-o", directory.appendingPathComponent("x.laq").path])
        #expect(imported.status == 1)
        #expect(Self.errorLine(imported).hasPrefix("laq: error: \(Self.readme): not a Keras model file"), "\(imported.stderr)")
    }

    @Test("usage errors exit 2 with the subcommand's usage, whether ArgumentParser or the command finds them")
    func usage() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let out = directory.appendingPathComponent("q.laq").path
        for arguments in [
            ["quantize", model, "-o", out, "--method", "nope", "--one-shot"],  // found in run()
            ["quantize", model, "-o", out, "--method", "late"],  // found in validate()
            ["quantize", model, "-o", out, "--method", "late", "--one-shot", "--no-such-option"],  // found by the parser
            ["quantize", model, "-o", out, "--method", "late", "--one-shot", "--bn-batches", "4"],  // a calibration option
            ["quantize", model, "-o", out, "--method", "late", "--one-shot", "--hessian-every", "5"],
            ["quantize", model, "-o", out, "--method", "late", "--calib", Self.data, "--hessian-every", "0"],
            ["quantize", model, "-o", out, "--method", "late", "--calib", Self.data, "--bn-batches", "-1"],
        ] {
            let result = try CLITests.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("Usage: laq quantize "), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("See 'laq quantize --help'"), "\(arguments): \(result.stderr)")
        }
        #expect(try CLITests.run(["--help"]).status == 0)
        #expect(try CLITests.run(["--version"]).status == 0)
    }

    @Test("labels that do not fit: the arrays the file has, and the option that picks fitting ones")
    func labelKeys() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try HostileInputTests.model(in: directory)
        let listing = "the file has labels (256 uint8), x (256×784 float32), y (256×10 float32)"
        // The default 'y' is one-hot; the model's loss is sparse: the class indices are in 'labels'.
        let oneHot = try CLITests.run(["eval", model, "--data", Self.data])
        #expect(oneHot.status == 1)
        let line = Self.errorLine(oneHot)
        #expect(line.hasPrefix("laq: error: \(Self.data): array 'y' has shape [256, 10]"), "\(oneHot.stderr)")
        #expect(line.contains("use --y-key labels"), "\(oneHot.stderr)")
        #expect(line.contains("--loss categorical_crossentropy"), "\(oneHot.stderr)")
        #expect(line.contains(listing), "\(oneHot.stderr)")
        // Both suggestions work.
        #expect(try CLITests.run(["eval", model, "--data", Self.data, "--y-key", "labels"]).status == 0)
        #expect(try CLITests.run(["eval", model, "--data", Self.data, "--loss", "categorical_crossentropy"]).status == 0)
        // A labels key that is not there, and an inputs key that is not there.
        let noLabels = try CLITests.run(["eval", model, "--data", Self.data, "--y-key", "targets"])
        #expect(noLabels.status == 1)
        #expect(Self.errorLine(noLabels).contains("no labels array 'targets'; \(listing); pick the labels with --y-key"), "\(noLabels.stderr)")
        let noInputs = try CLITests.run(["run", model, "--input", Self.data, "--x-key", "images", "-o", directory.appendingPathComponent("p.npy").path])
        #expect(noInputs.status == 1)
        #expect(Self.errorLine(noInputs).contains("no array for input 'pixels' (tried images, pixels, x0); \(listing); pick it with --x-key"), "\(noInputs.stderr)")
        // Calibration gives the same answer for the same data.
        let calib = try CLITests.run(["quantize", model, "-o", directory.appendingPathComponent("q.laq").path, "--method", "late", "--calib", Self.data])
        #expect(calib.status == 1)
        #expect(Self.errorLine(calib).contains("use --y-key labels"), "\(calib.stderr)")
    }
}
