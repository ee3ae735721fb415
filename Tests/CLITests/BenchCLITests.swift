import Foundation
import LAQTestSupport
import Testing

/// `laq bench`, and the same results for any number of threads end to end.
@Suite struct BenchCLITests {
    /// The Fashion-MNIST MLP of the fixtures (784 → 64 → 10) as a .laq file, and its directory.
    static func mlp() throws -> (directory: URL, model: String) {
        let directory = try TestPaths.temporaryDirectory()
        let model = directory.appendingPathComponent("mlp.laq").path
        let result = try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", model])
        #expect(result.status == 0, "\(result.stderr)")
        return (directory, model)
    }

    @Test("--json: times, samples/s, threads, the multiply-adds of one batch (784·64 + 64·10 per sample) and per layer")
    func json() throws {
        let (directory, model) = try Self.mlp()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLITests.run(["bench", model, "--batch", "8", "--warmup", "1", "--iterations", "5", "--threads", "3", "--layers", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try CLITests.json(result.stdout)
        #expect(object["batch"] as? Int == 8 && object["iterations"] as? Int == 5 && object["warmup"] as? Int == 1)
        #expect(object["threads"] as? Int == 3)
        // An MLP's tensors are small: the batch runs whole.
        #expect(object["chunks"] as? Int == 1 && object["chunks_side_by_side"] as? Bool == false)
        #expect(object["input"] as? String == "random" && object["activations"] as? String == "float32")
        let kernels = object["kernels"] as? String ?? ""
        #expect(["avx512-vnni-gfni", "avx512-vnni", "avx512", "avx2", "scalar"].contains(kernels))
        // Where the int8 kernels are scalar (no AVX2), int8 activations say so.
        let int8 = try CLITests.run(["bench", model, "--iterations", "1", "--activations", "int8", "--json"])
        #expect(int8.status == 0 && int8.stderr.contains("lacks AVX2") == (kernels == "scalar"), "\(int8.stderr)")
        #expect(object["multiply_adds"] as? Int == 8 * (784 * 64 + 64 * 10))
        let times = try #require(object["times_ms"] as? [Double])
        #expect(times.count == 5)
        let (median, minimum, p90) = (try #require(object["median_ms"] as? Double), try #require(object["min_ms"] as? Double), try #require(object["p90_ms"] as? Double))
        #expect(minimum == times.min() && minimum <= median && median <= p90 && p90 <= times.max()!)
        #expect(abs(try #require(object["samples_per_second"] as? Double) - 8 / (median / 1000)) < 1e-6 * 8 / (median / 1000))
        #expect(abs(try #require(object["gflops"] as? Double) - 2 * Double(8 * (784 * 64 + 64 * 10)) / (median / 1000) / 1e9) < 1e-9)
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(layers.map { $0["name"] as? String } == ["hidden", "classes"])
        #expect(layers.map { $0["multiply_adds"] as? Int } == [8 * 784 * 64, 8 * 64 * 10])
        #expect(layers.allSatisfy { ($0["median_ms"] as? Double ?? -1) >= 0 })
        let shares = layers.compactMap { $0["share"] as? Double }
        #expect(abs(shares.reduce(0, +) - 1) < 1e-9)
    }

    @Test("--layers: a BatchNormalization and a ReLU fused into the convolution before them say so")
    func fusedLayers() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("coverage.laq").path
        let imported = try CLITests.run(["import", TestPaths.testdata("keras/k3_coverage.h5").path, "-o", model])
        #expect(imported.status == 0, "\(imported.stderr)")
        let result = try CLITests.run(["bench", model, "--warmup", "0", "--iterations", "2", "--layers", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let layers = try #require(try CLITests.json(result.stdout)["layers"] as? [[String: Any]])
        var into: [String: String] = [:]
        for layer in layers { if let name = layer["name"] as? String, let target = layer["fused_into"] as? String { into[name] = target } }
        #expect(into == ["bn": "conv", "relu6": "conv", "pad_pairs": "conv", "pad_one": "depthwise"])
        let table = try CLITests.run(["bench", model, "--warmup", "0", "--iterations", "2", "--layers"])
        #expect(table.status == 0 && table.stdout.contains("in conv"), "\(table.stdout)")
    }

    @Test("the table; --input takes the first --batch samples; errors name what is wrong")
    func tableInputsAndErrors() throws {
        let (directory, model) = try Self.mlp()
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = TestPaths.testdata("keras/fmnist_calibration.npz").path
        let table = try CLITests.run(["bench", model, "--input", data, "--batch", "16", "--iterations", "3", "--layers", "--activations", "int8"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("batch 16, int8 activations") && table.stdout.contains("inputs from \(data)"))
        #expect(table.stdout.contains("samples/s") && table.stdout.contains("GFLOP/s") && table.stdout.contains("813,056 multiply-adds per batch"))
        #expect(table.stdout.contains("hidden") && table.stdout.contains("Dense"))

        let tooFew = try CLITests.run(["bench", model, "--input", data, "--batch", "5000"])
        #expect(tooFew.status == 1 && tooFew.stderr.contains("\(data): has 1000 samples, --batch is 5000"), "\(tooFew.stderr)")
        let missing = try CLITests.run(["bench", directory.appendingPathComponent("none.laq").path])
        #expect(missing.status == 2 && missing.stderr.contains("none.laq"), "\(missing.stderr)")
        let badThreads = try CLITests.run(["bench", model, "--threads", "0"])
        #expect(badThreads.status == 2 && badThreads.stderr.contains("--threads must be in 1…256"), "\(badThreads.stderr)")

        // A model whose input leaves its length open needs --length for random inputs.
        let bert = directory.appendingPathComponent("bert.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/hub_bert.keras").path, "-o", bert]).status == 0)
        let open = try CLITests.run(["bench", bert])
        #expect(open.status == 1 && open.stderr.contains("leaves a dimension open") && open.stderr.contains("--length"), "\(open.stderr)")
        let sequence = try CLITests.run(["bench", bert, "--length", "12", "--iterations", "2", "--json"])
        #expect(sequence.status == 0, "\(sequence.stderr)")
        #expect(try CLITests.json(sequence.stdout)["multiply_adds"] as? Int ?? 0 > 0)
    }

    @Test("calibration (convolutions, training, Adam) and predictions give the same bytes on 1, 2, 3 and 8 threads")
    func sameBitsForAnyThreadCount() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("cnn.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_cnn.h5").path, "-o", model]).status == 0)
        let data = TestPaths.testdata("keras/k3_fmnist_cnn.io.npz").path
        var files: [Data] = [], predictions: [Data] = []
        for threads in [1, 2, 3, 8] {
            // One name in a directory per run: the provenance records the command line.
            let run = directory.appendingPathComponent("threads-\(threads)")
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            let quantized = run.appendingPathComponent("q.laq").path
            let calibrate = try CLITests.run(["quantize", model, "-o", quantized, "--method", "lat2a", "--calib", data, "--y-key", "labels",
                                              "--epochs", "1", "--batch", "64"], environment: ["LAQ_NUM_THREADS": "\(threads)"])
            #expect(calibrate.status == 0, "\(calibrate.stderr)")
            files.append(try Data(contentsOf: URL(fileURLWithPath: quantized)))
            let output = run.appendingPathComponent("p.npy").path
            let predict = try CLITests.run(["run", quantized, "--input", data, "-o", output, "--threads", "\(threads)"])
            #expect(predict.status == 0, "\(predict.stderr)")
            predictions.append(try Data(contentsOf: URL(fileURLWithPath: output)))
        }
        #expect(files.dropFirst().allSatisfy { $0 == files[0] }, "calibrated files differ between thread counts")
        #expect(predictions.dropFirst().allSatisfy { $0 == predictions[0] }, "predictions differ between thread counts")
    }

    @Test("fused predictions (Conv2D → BatchNormalization → ReLU, a depthwise convolution) give the same bytes on 1, 2, 3 and 8 threads")
    func fusedSameBitsForAnyThreadCount() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("coverage.laq").path
        #expect(try CLITests.run(["import", TestPaths.testdata("keras/k3_coverage.h5").path, "-o", model]).status == 0)
        let data = TestPaths.testdata("keras/k3_coverage.io.npz").path
        var predictions: [Data] = []
        for threads in [1, 2, 3, 8] {
            let output = directory.appendingPathComponent("p-\(threads).npy").path
            let predict = try CLITests.run(["run", model, "--input", data, "-o", output, "--threads", "\(threads)"])
            #expect(predict.status == 0, "\(predict.stderr)")
            predictions.append(try Data(contentsOf: URL(fileURLWithPath: output)))
        }
        #expect(predictions.dropFirst().allSatisfy { $0 == predictions[0] }, "predictions differ between thread counts")
    }
}
