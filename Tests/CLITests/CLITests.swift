import Foundation
import LAQExamples
import LAQFormat
import LAQTestSupport
import Testing

/// End-to-end tests of the built `laq` binary: output, JSON and exit codes (0 ok, 1 invalid, 2 usage/I/O).
@Suite struct CLITests {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: URL {
        // The test bundle sits next to the products in .build/<config>/.
        var url = Bundle.main.bundleURL
        for _ in 0..<3 where !FileManager.default.fileExists(atPath: url.appendingPathComponent("laq").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("laq")
    }

    /// Runs laq with `arguments`; with `limits` (ulimit options, e.g. "ulimit -v 200000"),
    /// through bash with those limits set first.
    static func run(_ arguments: [String], environment: [String: String] = [:], limits: String? = nil) throws -> Result {
        let process = Process()
        if let limits {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "\(limits) && exec \"$0\" \"$@\"", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func binaryIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary.path), "\(Self.binary.path)")
    }

    @Test("demo writes a file that inspect lists and verify accepts")
    func demoInspectVerify() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("demo.laq").path
        let demo = try Self.run(["demo", "-o", path])
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("12 tensors"))

        let inspect = try Self.run(["inspect", path], environment: ["COLUMNS": "100"])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("dense_2/kernel"))
        #expect(inspect.stdout.contains("base3"))
        // The manifest's metadata, and each tensor's float32 size beside its stored size.
        #expect(inspect.stdout.contains("metadata:\n  description: \"laq demo model: random weights in every encoding\""))
        #expect(inspect.stdout.contains("float32  stored  ratio"))
        #expect(inspect.stdout.contains("392.0K"))  // dense_1/kernel: 784×128 float32 values
        #expect(inspect.stdout.split(separator: "\n").allSatisfy { $0.count <= 100 }, "\(inspect.stdout)")
        // On 80 columns the table still fits: names shrink, and the ratio (float32/stored) goes.
        let narrow = try Self.run(["inspect", path], environment: ["COLUMNS": "80"])
        let rows = narrow.stdout.split(separator: "\n").filter { $0.hasPrefix("tensor ") || $0.hasPrefix("dense_") || $0.hasPrefix("batch_") }
        #expect(rows.count == 13 && rows.allSatisfy { $0.count <= 80 }, "\(narrow.stdout)")

        let json = try Self.json(try Self.run(["inspect", "--json", path]).stdout)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == 12)
        #expect(json["version"] as? String == "1.0")
        let ternary = try #require(tensors.first { $0["name"] as? String == "dense_2/kernel" })
        #expect((ternary["encoding"] as? [String: Any])?["packing"] as? String == "base3")
        #expect(((ternary["statistics"] as? [String: Any])?["zero_fraction"] as? Double ?? 0) > 0.2)

        let verify = try Self.run(["verify", path])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("OK"))
        let verifyJSON = try Self.json(try Self.run(["verify", "--json", path]).stdout)
        #expect(verifyJSON["valid"] as? Bool == true)
    }

    @Test("demo is reproducible: the same command gives the same bytes")
    func reproducible() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let a = directory.appendingPathComponent("a.laq").path
        let b = directory.appendingPathComponent("b.laq").path
        _ = try Self.run(["demo", "-o", a])
        _ = try Self.run(["demo", "-o", b])
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)))
    }

    @Test("verify: exit 1 with the problems listed for a damaged file; 2 for a missing file or bad usage")
    func exitCodes() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var bytes = try [UInt8](Data(contentsOf: TestPaths.testdata("golden/every-encoding.laq")))
        bytes[bytes.count - 100] ^= 0x10
        let damaged = directory.appendingPathComponent("damaged.laq").path
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))

        let verify = try Self.run(["verify", damaged])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("INVALID"))
        let json = try Self.json(try Self.run(["verify", "--json", damaged]).stdout)
        #expect(json["valid"] as? Bool == false)
        // The damaged payload's problem names the tensor and the payload's offset, in JSON and text.
        let payloadProblem = try #require((json["problems"] as? [[String: Any]])?.first { $0["tensor"] is String })
        let offset = try #require(payloadProblem["offset"] as? Int)
        #expect(offset <= bytes.count - 100)
        #expect(verify.stdout.contains("payload at offset \(offset)"))

        // Opening succeeds (the flipped byte is in a payload): inspect still lists every tensor,
        // notes the damaged one, and exits 1.
        let inspectDamaged = try Self.run(["inspect", damaged])
        #expect(inspectDamaged.status == 1)
        #expect(inspectDamaged.stdout.contains("DAMAGED"))
        #expect(inspectDamaged.stdout.contains("float32/vector"))

        let missing = try Self.run(["verify", directory.appendingPathComponent("nope.laq").path])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("No such file"))

        let usage = try Self.run(["verify"])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("Missing expected argument"))

        let text = directory.appendingPathComponent("notes.txt").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: text))
        let notLAQ = try Self.run(["inspect", text])
        #expect(notLAQ.status == 1)
        #expect(notLAQ.stderr.contains("truncated") || notLAQ.stderr.contains("magic"))
    }

    @Test("a sample of damaged golden files: verify exits 1, never crashes", arguments: [0, 9, 63, 64, 300, 1000, 2047])
    func damagedSamples(byte: Int) throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let golden = try [UInt8](Data(contentsOf: TestPaths.testdata("golden/every-encoding.laq")))
        var flipped = golden
        flipped[byte % golden.count] ^= 0x01
        let path = directory.appendingPathComponent("f.laq").path
        try Data(flipped).write(to: URL(fileURLWithPath: path))
        #expect(try Self.run(["verify", path]).status == 1)
        try Data(golden[0..<(byte % golden.count)]).write(to: URL(fileURLWithPath: path))
        #expect(try Self.run(["verify", path]).status == 1)
    }

    @Test("inspect lists tensors this laq cannot decode, marked as such")
    func unknownEncodingIsListed() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var writer = try ExampleModels.everyEncoding()
        try writer.add(TensorRecord(name: "future", shape: [4], data: .opaque(encoding: ["type": "lut4"], payload: [1, 2])))
        let path = directory.appendingPathComponent("future.laq").path
        try writer.write(to: path)
        let inspect = try Self.run(["inspect", path])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("lut4 (unknown)"))
        #expect(inspect.stdout.contains("not decodable"))
        let verify = try Self.run(["verify", path])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("cannot decode"))
    }
}

/// `laq import` end to end.
@Suite struct ImportCLITests {
    @Test("import prints a summary, writes a file that verifies; a failed import writes nothing and exits 1")
    func importCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("tiny.laq").path
        let ok = try CLITests.run(["import", TestPaths.testdata("keras/k3_tiny.keras").path, "-o", output])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("lstm (LSTM)"))
        #expect(ok.stdout.contains("Total params: 674"))
        #expect(ok.stdout.contains("t = 4"))
        #expect(try CLITests.run(["verify", output]).status == 0)

        let json = try CLITests.json(try CLITests.run(["import", "--json", TestPaths.testdata("keras/tfk_tiny.h5").path, "-o", output]).stdout)
        #expect(json["trainable_params"] as? Int == 666)
        #expect((json["optimizer"] as? [String: Any])?["iterations"] as? Int == 4)

        let failed = directory.appendingPathComponent("bad.laq").path
        let bad = try CLITests.run(["import", TestPaths.testdata("keras/bad_wrong_shape.h5").path, "-o", failed])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("conv/kernel"))
        #expect(!FileManager.default.fileExists(atPath: failed))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["tiny.laq"])

        let missing = try CLITests.run(["import", directory.appendingPathComponent("nope.h5").path])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nope.h5: open failed: No such file or directory"))
    }
}

/// `laq run` end to end.
@Suite struct RunCLITests {
    @Test("run writes Keras' predictions as .npy; a wrongly shaped input exits 1, a missing one 2")
    func runCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("branches.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_branches.keras").path, "-o", model]).status == 0)
        let output = directory.appendingPathComponent("y.npy").path
        let run = try CLITests.run(["run", model, "--input", TestPaths.testdata("keras/k3_branches.io.npz").path, "-o", output, "--batch", "5"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("32×2"))
        #expect(FileManager.default.fileExists(atPath: output))

        let tiny = directory.appendingPathComponent("tiny.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_tiny.h5").path, "-o", tiny]).status == 0)
        let wrong = try CLITests.run(["run", tiny, "--input", TestPaths.testdata("keras/k3_branches.io.npz").path])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("no array for input 'image'") || wrong.stderr.contains("expects"))
        let missing = try CLITests.run(["run", tiny, "--input", directory.appendingPathComponent("none.npy").path])
        #expect(missing.status == 2)
    }
}

/// A keras_hub backbone end to end: several named inputs and outputs.
@Suite struct KerasHubCLITests {
    @Test("BERT: run writes one .npy per output, named after it; calibration needs --loss-output, then trains on that output and keeps both")
    func bert() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let io = TestPaths.testdata("keras/hub_bert.io.npz").path
        let model = directory.appendingPathComponent("bert.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/hub_bert.keras").path, "-o", model]).status == 0)
        let inspect = try CLITests.run(["inspect", model])
        #expect(inspect.stdout.contains("outputs: pooled_output [?,8] float32, sequence_output [?,?,8] float32"), "\(inspect.stdout)")
        let run = try CLITests.run(["run", model, "--input", io, "-o", directory.appendingPathComponent("y").path])
        #expect(run.status == 0, "\(run.stderr)")
        for (name, shape) in [("pooled_output", "6×8"), ("sequence_output", "6×10×8")] {
            #expect(run.stdout.contains("y.\(name).npy: \(shape) float32"), "\(run.stdout)")
        }
        let quantized = directory.appendingPathComponent("bert_lat.laq").path
        let calibrate = ["quantize", model, "-o", quantized, "--method", "lat2a", "--calib", io, "--y-key", "y_pooled_output", "--loss", "mse"]
        let ambiguous = try CLITests.run(calibrate)
        #expect(ambiguous.status != 0)
        #expect(ambiguous.stderr.contains("the model has outputs 'pooled_output', 'sequence_output'"), "\(ambiguous.stderr)")
        #expect(try CLITests.run(calibrate + ["--loss-output", "pooled"]).stderr.contains("--loss-output pooled: the model's outputs are"))
        let calibrated = try CLITests.run(calibrate + ["--loss-output", "pooled_output"])
        #expect(calibrated.status == 0, "\(calibrated.stderr)")
        let rerun = try CLITests.run(["run", quantized, "--input", io, "-o", directory.appendingPathComponent("q").path])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stdout.contains("q.pooled_output.npy") && rerun.stdout.contains("q.sequence_output.npy"), "\(rerun.stdout)")
    }
}

/// A model computing NaN: every command says so rather than report a number.
@Suite struct NonFiniteCLITests {
    @Test("a NaN bias: eval exits 1 naming the layer, run warns, quantize exits 1 naming the weight, verify warns, diff counts it")
    func nanBias() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = TestPaths.testdata("bad/nan-bias.laq").path
        let data = TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path
        let eval = try CLITests.run(["eval", model, "--data", data, "--y-key", "labels"])
        #expect(eval.status == 1 && eval.stderr.contains("2560 of 2560 outputs are not finite") && eval.stderr.contains("layer 'dense_3'"), "\(eval.stderr)")
        let run = try CLITests.run(["run", model, "--input", data, "-o", directory.appendingPathComponent("y.npy").path])
        #expect(run.status == 0 && run.stderr.contains("warning: 2560 of 2560 outputs are not finite"), "\(run.stderr)")
        let quantize = try CLITests.run(["quantize", model, "-o", directory.appendingPathComponent("q.laq").path, "--method", "twn", "--one-shot"])
        #expect(quantize.status == 1 && quantize.stderr.contains("weight 'dense_3/bias' holds 1 non-finite value"), "\(quantize.stderr)")
        let verify = try CLITests.run(["verify", model])
        #expect(verify.status == 0 && verify.stdout.contains("dense_3/bias (1)"), "\(verify.stdout)")
        // diff: the NaN rows never agree, and the count and first layer are said.
        let reference = directory.appendingPathComponent("m.laq").path
        let imported = try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", reference])
        try #require(imported.status == 0, "\(imported.stderr)")
        let diff = try CLITests.run(["diff", reference, model, "--data", data])
        #expect(diff.stdout.contains("top-1 agreement 0.00%, KL undefined, max |Δ| –"), "\(diff.stdout)")
        #expect(diff.stdout.contains("warning: 2560 values of B's classes are not finite (NaN or infinite), first produced by layer 'dense_3'"), "\(diff.stdout)")
        let json = try CLITests.json(try CLITests.run(["diff", reference, model, "--data", data, "--json"]).stdout)
        let outputs = try #require((json["data"] as? [String: Any])?["outputs"] as? [[String: Any]])
        let nonFinite = try #require(outputs.first?["non_finite"] as? [String: Any])
        #expect(nonFinite["b"] as? Int == 2560 && nonFinite["a"] as? Int == 0 && nonFinite["first_layer_b"] as? String == "dense_3", "\(nonFinite)")
    }
}

/// Numeric options past what the provenance can record are usage errors, not traps.
@Suite struct OptionRangeTests {
    @Test("--seed past 2^63 − 1 exits 2 with the range, for quantize and demo")
    func seed() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let quantize = try CLITests.run(["quantize", TestPaths.testdata("keras/k3_tiny.h5").path, "-o", directory.appendingPathComponent("q.laq").path,
                                         "--method", "twn", "--calib", TestPaths.testdata("keras/k3_tiny.io.npz").path, "--seed", "9223372036854775808"])
        #expect(quantize.status == 2 && quantize.stderr.contains("--seed takes 0…9223372036854775807"), "\(quantize.stderr)")
        let demo = try CLITests.run(["demo", "-o", directory.appendingPathComponent("d.laq").path, "--seed", "18446744073709551615"])
        #expect(demo.status == 2 && demo.stderr.contains("--seed takes 0…9223372036854775807"), "\(demo.stderr)")
    }
}

/// Models Keras quantized end to end.
@Suite struct KerasQuantizedCLITests {
    @Test("int8 and int4 models: import, one-shot and calibrated quantize keep Keras' codes and say so, the files verify and run", arguments: ["k3_int8", "k3_int4"])
    func quantized(fixture: String) throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let io = TestPaths.testdata("keras/\(fixture).io.npz").path
        let model = directory.appendingPathComponent("m.laq").path
        let imported = try CLITests.run(["import", TestPaths.testdata("keras/\(fixture).keras").path, "-o", model])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("Keras quantized this model after training") || imported.stderr.contains("Keras quantized this model after training"))
        for (name, arguments) in [("oneshot", ["--method", "twn", "--one-shot"]),
                                  ("calibrated", ["--method", "lat2a", "--calib", io, "--loss", "categorical_crossentropy", "--epochs", "1"])] {
            let output = directory.appendingPathComponent("\(name).laq").path
            let quantize = try CLITests.run(["quantize", model, "-o", output] + arguments)
            #expect(quantize.status == 0, "\(quantize.stderr)")
            #expect(quantize.stdout.contains("5 tensors are already quantized by Keras (model.quantize) and kept as they are"), "\(quantize.stdout)")
            #expect(try CLITests.run(["verify", output]).status == 0)
            let run = try CLITests.run(["run", output, "--input", io, "-o", directory.appendingPathComponent("\(name).npy").path])
            #expect(run.status == 0 && run.stdout.contains("32×5"), "\(run.stderr)")
        }
    }
}

/// `laq quantize --one-shot` end to end: import → quantize → verify → run.
@Suite struct QuantizeCLITests {
    @Test("quantize writes codebook tensors that verify and run; loss-aware methods use the imported v")
    func quantizeCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("tiny.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_tiny.h5").path, "-o", model]).status == 0)
        let quantized = directory.appendingPathComponent("tiny-lat.laq").path
        let result = try CLITests.run(["quantize", model, "-o", quantized, "--method", "late", "--one-shot", "--layer", "dense=laq:3", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try CLITests.json(result.stdout)
        let tensors = try #require(report["tensors"] as? [[String: Any]])
        #expect(Set(tensors.compactMap { $0["name"] as? String }) == ["conv/kernel", "lstm/kernel", "lstm/recurrent_kernel", "dense/kernel"])
        #expect((report["notices"] as? [Any])?.isEmpty == true)
        #expect(try CLITests.run(["verify", quantized]).status == 0)
        let inspect = try CLITests.json(try CLITests.run(["inspect", "--json", quantized]).stdout)
        let kernel = try #require((inspect["tensors"] as? [[String: Any]])?.first { $0["name"] as? String == "lstm/kernel" })
        #expect((kernel["encoding"] as? [String: Any])?["packing"] as? String == "base3")
        let provenance = try #require((inspect["provenance"] as? [[String: Any]])?.last)
        #expect(provenance["command"] as? String == "quantize")
        #expect(((provenance["parameters"] as? [String: Any])?["hessian"] as? [String: Any])?["iterations"] as? Int == 4)
        let run = try CLITests.run(["run", quantized, "--input", TestPaths.testdata("keras/k3_tiny.io.npz").path, "-o", directory.appendingPathComponent("y.npy").path])
        #expect(run.status == 0, "\(run.stderr)")

        let noOneShot = try CLITests.run(["quantize", model, "-o", quantized, "--method", "late"])
        #expect(noOneShot.status == 2)
        let badMethod = try CLITests.run(["quantize", model, "-o", quantized, "--method", "nope", "--one-shot"])
        #expect(badMethod.status == 2)
        #expect(badMethod.stderr.contains("unknown method"))
    }
}

/// `laq eval` end to end.
@Suite struct EvalCLITests {
    @Test("eval reports Keras' loss and accuracy; bad labels exit 1 with the array named")
    func evalCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        let data = TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path
        let result = try CLITests.run(["eval", model, "--data", data, "--y-key", "labels", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try CLITests.json(result.stdout)
        #expect(json["accuracy"] as? Double == 0.83984375)
        #expect(json["samples"] as? Int == 256)
        // The Keras predictions are not class indices: refused, naming the array.
        let bad = try CLITests.run(["eval", model, "--data", data, "--y-key", "y"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("array 'y'"))
    }

    @Test("--activations int8 runs a ternary model's kernels with int8 inputs: close to float32, reported in the JSON; a bad value exits 2")
    func int8Activations() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        let ternary = directory.appendingPathComponent("mlp-lat2a.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        #expect(try CLITests.run(["quantize", model, "-o", ternary, "--method", "lat2a", "--one-shot"]).status == 0)
        let data = TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path
        var accuracy: [String: Double] = [:]
        for precision in ["float32", "int8"] {
            let result = try CLITests.run(["eval", ternary, "--data", data, "--y-key", "labels", "--activations", precision, "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let json = try CLITests.json(result.stdout)
            #expect(json["activations"] as? String == precision)
            accuracy[precision] = json["accuracy"] as? Double
        }
        let float = try #require(accuracy["float32"]), int8 = try #require(accuracy["int8"])
        #expect(abs(float - int8) <= 2.0 / 256, "float32 \(float), int8 \(int8) on 256 samples")
        let bad = try CLITests.run(["eval", ternary, "--data", data, "--y-key", "labels", "--activations", "int4"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("activations"))
    }
}

/// `laq quantize --calib` end to end.
@Suite struct CalibrateCLITests {
    @Test("--calib runs the loss-aware loop, reports before/after and records the run in the provenance")
    func calibrate() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        let output = directory.appendingPathComponent("mlp-lat2a.laq").path
        let run = try CLITests.run(["quantize", model, "-o", output, "--method", "lat2a", "--calib",
                                    TestPaths.testdata("keras/fmnist_calibration.npz").path, "--epochs", "1", "--batch", "50",
                                    "--lr-schedule", "step:0.1:15,25"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("one-shot (before): validation loss"))
        #expect(run.stderr.contains("epoch 1 (kept)"))
        let inspect = try CLITests.json(try CLITests.run(["inspect", "--json", output]).stdout)
        let provenance = try #require((inspect["provenance"] as? [[String: Any]])?.last)
        let parameters = try #require(provenance["parameters"] as? [String: Any])
        #expect(parameters["mode"] as? String == "calibrated")
        let hessian = try #require(parameters["hessian"] as? [String: Any])
        #expect((hessian["data"] as? [String: Any])?["samples"] as? Int == 900)
        #expect(hessian["validation_after"] != nil && hessian["validation_before"] != nil)
        #expect(hessian["lr_schedule"] as? String == "step:0.1:15,25")
        #expect(run.stderr.contains("full precision: validation loss"))
        #expect((hessian["validation_full_precision"] as? [String: Any])?["accuracy"] is Double)

        // One-shot with --val: the full-precision and the quantized model, both evaluated.
        let oneShot = try CLITests.run(["quantize", model, "-o", output, "--method", "lat2a", "--one-shot",
                                        "--val", TestPaths.testdata("keras/fmnist_calibration.npz").path])
        #expect(oneShot.status == 0, "\(oneShot.stderr)")
        #expect(oneShot.stderr.contains("full precision: validation loss") && oneShot.stderr.contains("one-shot: validation loss"))
        let oneShotParameters = try #require((try CLITests.json(try CLITests.run(["inspect", "--json", output]).stdout)["provenance"] as? [[String: Any]])?.last?["parameters"] as? [String: Any])
        let validation = try #require(oneShotParameters["validation"] as? [String: Any])
        let fullAccuracy = try #require((validation["full_precision"] as? [String: Any])?["accuracy"] as? Double)
        let quantizedAccuracy = try #require((validation["quantized"] as? [String: Any])?["accuracy"] as? Double)
        #expect(fullAccuracy > 0.7 && quantizedAccuracy > 0.1 && quantizedAccuracy <= 1)
        #expect((validation["data"] as? [String: Any])?["samples"] as? Int == 1000)
        #expect(try CLITests.run(["verify", output]).status == 0)

        let both = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--one-shot", "--calib", "x.npz"])
        #expect(both.status == 2)
        let noLabels = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--calib",
                                         TestPaths.testdata("keras/fmnist_calibration.npz").path, "--y-key", "labels"])
        #expect(noLabels.status == 1)
        #expect(noLabels.stderr.contains("no labels array 'labels'"))
        // Keras' predictions are no class indices: refused before any training, naming the array.
        let notIndices = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--calib",
                                           TestPaths.testdata("keras/k3_fmnist_mlp.io.npz").path, "--y-key", "y"])
        #expect(notIndices.status == 1)
        #expect(notIndices.stderr.contains("array 'y'"))
        let badSchedule = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--calib",
                                            TestPaths.testdata("keras/fmnist_calibration.npz").path, "--lr-schedule", "every:0:0.5"])
        #expect(badSchedule.status == 2)
        #expect(badSchedule.stderr.contains("--lr-schedule every:0:0.5: '0' is not a positive epoch count"))
        let badLayer = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--one-shot", "--layer", "hidden=:"])
        #expect(badLayer.status == 2)
        // Calibration options with --one-shot would do nothing: refused, naming them.
        let ignored = try CLITests.run(["quantize", model, "-o", output, "--method", "late", "--one-shot", "--epochs", "3", "--lr-schedule", "step:0.1:2"])
        #expect(ignored.status == 2)
        #expect(ignored.stderr.contains("--epochs, --lr-schedule only apply to a calibration run"))
    }
}

/// `laq export` end to end (Keras loading the result: tools/check_export.py).
@Suite struct ExportCLITests {
    @Test("export writes npz, h5 and safetensors; exit 1 for a file it cannot export, 2 for a missing one")
    func exportCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("tiny.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_tiny.h5").path, "-o", model]).status == 0)
        for format in ["npz", "h5", "safetensors"] {
            let output = directory.appendingPathComponent("tiny.\(format)").path
            let result = try CLITests.run(["export", model, "--to", format, "-o", output, "--json"])
            #expect(result.status == 0, "\(format): \(result.stderr)")
            let json = try CLITests.json(result.stdout)
            #expect(json["tensors"] as? Int == 11 && json["parameters"] as? Int == 674, "\(format)")
            #expect(json["bytes"] as? Int == (try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int))
        }
        // An unknown format is a usage error; a damaged file is exit 1 and writes nothing.
        let badFormat = try CLITests.run(["export", model, "--to", "onnx", "-o", directory.appendingPathComponent("x").path])
        #expect(badFormat.status == 2)
        let damaged = directory.appendingPathComponent("damaged.laq").path
        var bytes = try #require(FileManager.default.contents(atPath: model))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let failed = try CLITests.run(["export", damaged, "--to", "npz", "-o", directory.appendingPathComponent("damaged.npz").path])
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("damaged.npz").path))
        let missing = try CLITests.run(["export", directory.appendingPathComponent("nope.laq").path, "--to", "npz", "-o", "x.npz"])
        #expect(missing.status == 2)
    }
}

/// `laq diff` end to end: diff(1)'s exit codes, the JSON of spec/EXPORT.md §5.4.
@Suite struct DiffCLITests {
    @Test("diff: 0 for a file and itself, 1 for a model and its quantized version (naming the most hurt layer with --data), 2 for trouble")
    func diffCommand() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        let quantized = directory.appendingPathComponent("mlp-lat2a.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        #expect(try CLITests.run(["quantize", model, "-o", quantized, "--method", "lat2a", "--one-shot"]).status == 0)

        let same = try CLITests.run(["diff", model, model])
        #expect(same.status == 0, "\(same.stdout)\(same.stderr)")
        #expect(same.stdout.contains("same content"))

        let different = try CLITests.run(["diff", model, quantized, "--data", TestPaths.testdata("keras/fmnist_calibration.npz").path, "--json"])
        #expect(different.status == 1, "\(different.stderr)")
        let json = try CLITests.json(different.stdout)
        #expect(json["same"] as? Bool == false)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        let kernel = try #require(tensors.first { $0["name"] as? String == "hidden/kernel" })
        #expect(kernel["status"] as? String == "changed" && (kernel["relative_l2"] as? Double ?? 0) > 0)
        #expect((json["only_in_a"] as? [String])?.count == 8, "quantize drops the optimizer state")
        let data = try #require(json["data"] as? [String: Any])
        #expect(data["samples"] as? Int == 1000)
        let hurt = try #require(data["most_hurt_layer"] as? String)
        #expect(["hidden", "classes"].contains(hurt))
        let output = try #require((data["outputs"] as? [[String: Any]])?.first)
        #expect((output["top1_agreement"] as? Double ?? 1) < 1 && (output["kl_divergence"] as? Double ?? 0) > 0)

        let text = try CLITests.run(["diff", model, quantized, "--data", TestPaths.testdata("keras/fmnist_calibration.npz").path, "--limit", "100"])
        #expect(text.status == 1)
        #expect(text.stdout.contains("most hurt layer: "))
        #expect(text.stdout.contains("(100 samples)"))

        #expect(try CLITests.run(["diff", model, directory.appendingPathComponent("nope.laq").path]).status == 2)
        let badData = try CLITests.run(["diff", model, quantized, "--data", TestPaths.testdata("keras/k3_tiny.io.npz").path])
        #expect(badData.status == 2)
        #expect(badData.stderr.contains("k3_tiny.io.npz"))
    }
}

/// `laq inspect --histogram`.
@Suite struct HistogramCLITests {
    @Test("inspect --histogram: a layer's quantized kernel with its levels; against the full-precision file, its weights binned")
    func histogram() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        let quantized = directory.appendingPathComponent("mlp-late.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        #expect(try CLITests.run(["quantize", model, "-o", quantized, "--method", "late", "--one-shot"]).status == 0)
        let levels = try CLITests.run(["inspect", quantized, "--histogram", "hidden"])
        #expect(levels.status == 0, "\(levels.stderr)")
        #expect(levels.stdout.hasPrefix("hidden/kernel  784×64"))
        #expect(levels.stdout.contains("levels (code: level") && levels.stdout.contains("  1: 0 "))
        let against = try CLITests.run(["inspect", quantized, "--histogram", "hidden/kernel", "--against", model, "--bins", "10"])
        #expect(against.status == 0)
        #expect(against.stdout.contains("(10 bins), ◆ levels"))
        let json = try CLITests.json(try CLITests.run(["inspect", model, "--histogram", "classes/kernel", "--json"]).stdout)
        #expect((json["bins"] as? [[String: Any]])?.compactMap { $0["count"] as? Int }.reduce(0, +) == 640)
        #expect(json["levels"] is NSNull)
        // A reference without the tensor is named as the file at fault.
        let demo = directory.appendingPathComponent("demo.laq").path
        #expect(try CLITests.run(["demo", "-o", demo]).status == 0)
        let wrongReference = try CLITests.run(["inspect", quantized, "--histogram", "hidden", "--against", demo])
        #expect(wrongReference.status == 2 && wrongReference.stderr.contains("demo.laq: ") && wrongReference.stderr.contains("hidden/kernel"))
        let unknown = try CLITests.run(["inspect", model, "--histogram", "nope"])
        #expect(unknown.status == 2 && unknown.stderr.contains("layers: classes, hidden"))
    }
}

/// HDF5 data for eval and quantize --calib.
@Suite struct HDF5DataCLITests {
    @Test("eval reads HDF5 datasets by --x-key/--y-key path and agrees with the same data as .npz")
    func evalHDF5() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("mlp.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model]).status == 0)
        let h5 = TestPaths.testdata("data/fmnist_200.h5").path
        let fromH5 = try CLITests.run(["eval", model, "--data", h5, "--x-key", "test/x", "--y-key", "test/y", "--json"])
        #expect(fromH5.status == 0, "\(fromH5.stderr)")
        let accuracy = try #require(try CLITests.json(fromH5.stdout)["accuracy"] as? Double)
        #expect(accuracy > 0.7)
        let calibrated = directory.appendingPathComponent("q.laq").path
        let quantize = try CLITests.run(["quantize", model, "-o", calibrated, "--method", "lata", "--calib", h5,
                                         "--x-key", "test/x", "--y-key", "test/y", "--batch", "50"])
        #expect(quantize.status == 0, "\(quantize.stderr)")
        let missing = try CLITests.run(["eval", model, "--data", h5 + ":/test/nope"])
        #expect(missing.status == 1 && missing.stderr.contains("/test/nope"))
    }
}
