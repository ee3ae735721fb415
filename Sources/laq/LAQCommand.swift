import ArgumentParser
import Foundation
import LAQEngine
import LAQFormat

/// The `laq` command line. Exit codes (also in README):
///
/// - 0: success.
/// - 1: the input is invalid: `verify` found problems, or a command could not use a file because
///   it breaks spec/FORMAT.md.
/// - 2: usage error (bad arguments), I/O error (missing file, permission, disk full) or out of
///   memory (under an address-space limit).
@main
struct LAQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laq",
        abstract: "Loss-aware quantization for Keras models, and the .laq file format.",
        discussion: """
            Exit status: 0 success; 1 invalid input (a file that breaks the format, \
            or `verify` found problems, or reading it crashed libhdf5); 2 usage or I/O error, or \
            out of memory.
            """,
        version: LAQVersion.string,
        subcommands: [Import.self, Quantize.self, Run.self, Eval.self, Inspect.self, Verify.self, Diff.self, Export.self, Report.self, Bench.self, Demo.self]
    )

    static func main() {
        // Under an address-space limit (ulimit -v), OpenBLAS' workers, started when it loads,
        // cannot map their 128 MiB buffers and spin forever: start again with one BLAS thread
        // (unless the environment chose a number).
        if ChildProcess.addressSpaceLimit != nil, ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil {
            ChildProcess.restart(setting: "OPENBLAS_NUM_THREADS", to: "1")
        }
        // Below this, the Swift runtime and the libraries cannot count on starting at all (their
        // allocations fail as traps, even while parsing the command line).
        if let limit = ChildProcess.addressSpaceLimit, limit < minimumAddressSpace {
            FileHandle.standardError.write(Data("laq: error: out of memory: the address-space limit (ulimit -v) is \(limit >> 20) MiB, laq needs at least \(minimumAddressSpace >> 20) MiB to start\n".utf8))
            Foundation.exit(2)
        }
        // OpenBLAS' workers, started when it loaded, would spin on the second core through the
        // first 0.1 s of every command; commands that multiply start them again, and they then
        // sleep when idle instead of spinning beside laq's own threads.
        BLASThreads.sleepWhenIdle()
        // Training steps and batches allocate megabyte arrays afresh: keep freed ones for reuse.
        EngineMemory.keepFreedBlocks()
        // Interrupted writes leave no temporary files; a child reading a hostile file removes its
        // own when it crashes too, and dumps no core (see Isolation).
        AtomicFile.removeTemporariesOnSignals(crashes: Isolation.isChild)
        if Isolation.isChild { ChildProcess.disableCoreDumps() }
        do {
            var command = try parseAsRoot()
            // Threads: --threads, else LAQ_NUM_THREADS, else every CPU the process may use; one
            // under an address-space limit, where each thread's first product would map
            // OpenBLAS' 128 MiB buffer.
            Parallel.configure(threads: ChildProcess.addressSpaceLimit != nil ? 1 : (command as? ThreadedCommand)?.threading.threads)
            try Isolation.runInChildIfNeeded(command)
            if let limit = ChildProcess.addressSpaceLimit, !BLASThreads.reserveBuffer() {
                throw CLIError(message: "out of memory: under the address-space limit of \(limit >> 20) MiB (ulimit -v) there is no room for OpenBLAS' \(BLASThreads.bufferBytes >> 20) MiB working buffer; raise the limit", code: 2)
            }
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// The smallest address-space limit laq starts under (measured: the debug build's argument
    /// parsing alone failed under 200 MiB; see Tests/CLITests HostileInputTests).
    static let minimumAddressSpace: UInt64 = 256 << 20

    static func exit(withError error: any Error) -> Never {
        switch error {
        case let error as FormatError:
            FileHandle.standardError.write(Data("laq: error: \(error)\n".utf8))
            Foundation.exit(error.exitStatus)
        case let error as CLIError:
            FileHandle.standardError.write(Data("laq: error: \(error.message)\n".utf8))
            Foundation.exit(error.code)
        case let error as ExitCode:
            Foundation.exit(error.rawValue)
        default:
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Foundation.exit(0)
            }
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            // ArgumentParser reports usage errors as 64 (EX_USAGE); laq documents 2.
            Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}
