import Foundation
import LAQFormat
import LAQTestSupport
import Testing

/// The hostile files of testdata/bad/ (one per cause, most from an attack campaign against laq)
/// and the file-less cases: each ends in a clean error that names the file and what is wrong,
/// with the bad-input exit code, and leaves no output or temporary file behind.
@Suite struct HostileInputTests {
    static func bad(_ name: String) -> String { TestPaths.testdata("bad/\(name)").path }

    /// A model the data files are meant for (784 inputs, 10 classes).
    static func model(in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("m.laq").path
        let result = try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", path])
        try #require(result.status == 0, "\(result.stderr)")
        return path
    }

    /// The directory holds only `expected` (no output of a failed command, no temporary file).
    static func expectOnly(_ expected: Set<String>, in directory: URL, _ comment: String) throws {
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path))
        #expect(names == expected, "\(comment): \(names.sorted())")
    }

    static let imports: [(file: String, message: String)] = [
        // libhdf5 1.10.8 segfaults in H5HG_read (from H5Aread of a string attribute) on one flipped
        // byte; the read runs in a child process, so it ends as an error.
        ("hdf5-global-heap-flip.h5", "reading it crashed"),
        // libhdf5 loops forever reading a damaged string attribute (tools/mutate.py found it).
        ("keras-hdf5-attribute-loop.keras", "libhdf5 has not returned from 'read attribute 'name' of '/layers/dense/vars'' in 2 s"),
        // A loop in libhdf5 that allocates a gigabyte a second (found by fuzzing).
        ("hdf5-attribute-loop-memory.h5", "libhdf5 grew the process past"),
        ("zip-central-directory-offset.keras", ".keras archive: a ZIP64 archive without its locator"),
        ("hdf5-external-storage-etc-passwd.h5", "its data is stored in 1 external file: laq reads nothing outside the input file"),
        // other-model.h5, the link's target, lies beside it: refused, not followed.
        ("hdf5-external-link.h5", "it is an external link (to another file)"),
        ("hdf5-virtual-dataset-missing-source.h5", "a virtual dataset"),
        ("keras-duplicate-member.keras", "two members named 'config.json'"),
        // Adam's step count stored as a float NaN; a negative second moment.
        ("optimizer-nan-iteration.h5", "iteration count nan is not a whole number of steps"),
        ("optimizer-negative-v.h5", "second moment of 'classes/bias' has negative or non-finite values"),
        // A layer name that is not UTF-8: refused, not repaired (two readers would repair it two ways).
        ("hdf5-name-not-utf8.h5", "read attribute 'layer_names' of '/model_weights' failed: a string that is not UTF-8"),
        // A float type whose exponent bias is damaged: libhdf5 converted the kernel to zeros.
        ("hdf5-float-exponent-bias.h5", "a 4-byte float type that is not IEEE 754"),
    ]

    @Test("import refuses each hostile Keras file, naming it, and writes nothing", arguments: imports.map(\.file))
    func importRefuses(file: String) throws {
        let expected = Self.imports.first { $0.file == file }!.message
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The watchdog's time budget, shortened from 20 s (the loop case); the memory loop keeps a
        // long one, so that its memory limit, not a slow allocation on a loaded machine, ends it.
        let timeout = file == "hdf5-attribute-loop-memory.h5" ? "60" : "2"
        let result = try CLITests.run(["import", Self.bad(file), "-o", directory.appendingPathComponent("out.laq").path], environment: ["LAQ_HDF5_TIMEOUT": timeout])
        #expect(result.status == 1, "\(result.status) \(result.stderr)")
        // laq's message starts the last error line; a child libhdf5 crashed may have printed
        // glibc's dying words ("malloc(): invalid size") before it.
        let message = result.stderr.split(separator: "\n").last { $0.hasPrefix("laq: error:") }.map(String.init) ?? ""
        #expect(message.hasPrefix("laq: error: \(Self.bad(file))"), "\(result.stderr)")
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(!result.stderr.contains("Program crashed"), "\(result.stderr)")
        try Self.expectOnly([], in: directory, file)
    }

    static let dataFiles: [(file: String, message: String)] = [
        ("npz-central-directory-offset.npz", "not a readable .npz (zip): the central directory (offset 2147483647, 102 bytes) lies outside the file"),
        // 1 MB of zip declaring a 1 GiB uint8 array: refused by its declared shape, before inflating.
        ("npz-declared-1G.npz", "array 'x' has shape [1073741824], input 'pixels' expects (any, 784)"),
        // 2 KiB of HDF5 declaring 4 GiB: refused by its shape before reading.
        ("hdf5-data-declared-2e30.h5", "array 'x' has shape [1048576, 1024], input 'pixels' expects (any, 784)"),
        // The right shape, but no chunk stored: refused before 3.3 GB of fill values are made.
        ("hdf5-data-unwritten.h5", "its extent [1048576, 784] needs 3288334336 bytes, the file stores 0"),
        // The directory says 227 compressed bytes, the local header 229: Python's zipfile reads
        // 227 and fails its CRC, ZIPFoundation read to the stream's end (tools/mutate.py).
        ("npz-local-size-mismatch.npz", "its local header's CRC-32 or sizes disagree with the central directory"),
        // Junk in the header's padding: NumPy refuses it (tools/mutate.py).
        ("npz-header-junk.npz", "its header is not the dict literal NumPy writes (text after the dict"),
        // A member needing zip version 25.5 to extract: Python's zipfile refuses it (tools/mutate.py).
        ("npz-zip-version-25.npz", "member 'y.npy': needs zip version 25.5 to extract, past 6.3"),
        // Members `x.npy` and `x`: NumPy's npz["x"] opens `x`, laq took the later one.
        ("npz-two-members-one-array.npz", "array 'x': two members hold an array of this name"),
    ]

    @Test("eval, run and quantize refuse each hostile data file within 1 GB of address space", arguments: dataFiles.map(\.file))
    func dataRefused(file: String) throws {
        let expected = Self.dataFiles.first { $0.file == file }!.message
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Self.model(in: directory)
        let data = Self.bad(file)
        let commands: [[String]] = [
            ["eval", model, "--data", data],
            ["run", model, "--input", data, "-o", directory.appendingPathComponent("y.npy").path],
            ["quantize", model, "-o", directory.appendingPathComponent("q.laq").path, "--method", "twn", "--calib", data],
        ]
        for command in commands {
            let result = try CLITests.run(command, limits: "ulimit -v 1000000")
            #expect(result.status == 1, "\(command[0]): \(result.status) \(result.stderr)")
            #expect(result.stderr.hasPrefix("laq: error: \(data)"), "\(command[0]): \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(command[0]): \(result.stderr)")
        }
        try Self.expectOnly(["m.laq"], in: directory, file)
    }

    static let manifests: [(file: String, message: String)] = [
        ("manifest-duplicate-key.laq", "duplicate key"),
        ("manifest-trailing-comma.laq", "trailing comma"),
        ("manifest-bom.laq", "byte-order mark"),
    ]

    @Test("verify and inspect refuse manifests that break spec/FORMAT.md's JSON", arguments: manifests.map(\.file))
    func manifestRefused(file: String) throws {
        let expected = Self.manifests.first { $0.file == file }!.message
        for command in ["verify", "inspect"] {
            let result = try CLITests.run([command, Self.bad(file)])
            #expect(result.status == 1, "\(command): \(result.status) \(result.stdout) \(result.stderr)")
            #expect((result.stdout + result.stderr).contains(expected), "\(command): \(result.stdout) \(result.stderr)")
        }
    }

    @Test("a write past the file-size limit (EFBIG) is an I/O error, exit 2, for every output kind, leaving nothing")
    func fileTooLarge() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Self.model(in: directory)
        // 64 KiB: every output of this 600 KiB model is larger. The h5 export used to segfault
        // at exit (libhdf5 closing a file whose write failed).
        for kind in ["h5", "npz", "safetensors"] {
            let output = directory.appendingPathComponent("out.\(kind)").path
            let result = try CLITests.run(["export", model, "--to", kind, "-o", output], limits: "ulimit -f 64")
            #expect(result.status == 2, "\(kind): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("\(output): write failed: File too large"), "\(kind): \(result.stderr)")
        }
        let imported = try CLITests.run(["import", TestPaths.testdata("keras/k3_fmnist_mlp.h5").path, "-o", directory.appendingPathComponent("out.laq").path], limits: "ulimit -f 64")
        #expect(imported.status == 2 && imported.stderr.contains("File too large"), "\(imported.status) \(imported.stderr)")
        try Self.expectOnly(["m.laq"], in: directory, "after failed writes")
    }

    @Test("under ulimit -v 200 MB every command exits 2 at once with an out-of-memory error; under 1 GB they work")
    func addressSpaceLimits() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Self.model(in: directory)
        let calibration = TestPaths.testdata("keras/fmnist_calibration.npz").path
        let commands: [[String]] = [
            ["--version"],
            ["import", TestPaths.testdata("keras/k3_fmnist_mlp.keras").path, "-o", directory.appendingPathComponent("i.laq").path],
            ["inspect", model],
            ["verify", model],
            ["eval", model, "--data", calibration],
            ["quantize", model, "-o", directory.appendingPathComponent("q.laq").path, "--method", "lat2a", "--calib", calibration, "--epochs", "1"],
            ["export", model, "--to", "h5", "-o", directory.appendingPathComponent("e.h5").path],
        ]
        for command in commands {
            let small = try CLITests.run(command, limits: "ulimit -v 200000")
            #expect(small.status == 2 && small.stderr.contains("laq: error: out of memory"), "\(command[0]) at 200 MB: \(small.status) \(small.stderr)")
            // OpenBLAS' worker start-up used to hang here.
            let large = try CLITests.run(command, limits: "ulimit -v 1000000")
            #expect(large.status == 0, "\(command[0]) at 1 GB: \(large.status) \(large.stderr)")
        }
    }

    @Test("SIGTERM during a write removes the temporary file; the process ends by the signal")
    func terminationRemovesTemporaries() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A file large enough that its export takes a while: 64 MiB of float32 weights.
        let model = directory.appendingPathComponent("big.laq").path
        var writer = LAQWriter(options: WriteOptions(compression: .none))
        try writer.add(TensorRecord(name: "w", shape: [4096, 4096], data: .float((0..<(4096 * 4096)).map { Float($0 % 251) }, as: .float32)))
        try writer.write(to: model)
        let output = directory.appendingPathComponent("out.npz").path
        var observed = false
        var seen: [String] = []
        for _ in 0..<5 where !observed {
            let process = Process()
            process.executableURL = CLITests.binary
            process.arguments = ["export", model, "--to", "npz", "-o", output]
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            // Wait for the temporary file (".out.npz.tmp-XXXXXX"), then stop the process.
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning, Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
                if names.contains(where: { $0.hasPrefix(".out.npz.tmp-") }) {
                    seen.append(names.joined(separator: ","))
                    process.terminate()
                    break
                }
                usleep(200)
            }
            process.waitUntilExit()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationReason == .uncaughtSignal || process.terminationStatus == 0, "\(message)")
            // A process that finished its write before the signal came proves nothing: again.
            if process.terminationReason == .uncaughtSignal {
                #expect(process.terminationStatus == SIGTERM)
                observed = true
            }
            try? FileManager.default.removeItem(atPath: output)
        }
        #expect(observed, "the export never showed its temporary file, or ended before the signal: \(seen)")
        try Self.expectOnly(["big.laq"], in: directory, "after SIGTERM")
    }
}
