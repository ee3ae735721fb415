import ArgumentParser
import Foundation
import LAQEngine
import LAQFormat

/// The `laq` command line. Its exit statuses are ``ExitStatus``'s.
@main
struct LAQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laq",
        abstract: "Loss-aware quantization for Keras models, and the .laq file format.",
        discussion: """
            Exit status: 0 success; 1 invalid input (a file that breaks the format, a model or data \
            laq refuses, `verify` found problems, `diff` found differences, or reading it crashed \
            libhdf5); 2 usage or I/O error, or out of memory; 3 an internal error (a bug in laq).
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
            Foundation.exit(ExitStatus.usageOrIO.rawValue)
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
        var parsed: (any ParsableCommand)?
        do {
            var command = try parseAsRoot()
            parsed = command
            // Threads: --threads, else LAQ_NUM_THREADS, else every CPU the process may use; one
            // under an address-space limit, where each thread's first product would map
            // OpenBLAS' 128 MiB buffer.
            Parallel.configure(threads: ChildProcess.addressSpaceLimit != nil ? 1 : (command as? ThreadedCommand)?.threading.threads)
            try Isolation.runInChildIfNeeded(command)
            if let limit = ChildProcess.addressSpaceLimit, !BLASThreads.reserveBuffer() {
                throw CommandError.outOfMemory("out of memory: under the address-space limit of \(limit >> 20) MiB (ulimit -v) there is no room for OpenBLAS' \(BLASThreads.bufferBytes >> 20) MiB working buffer; raise the limit")
            }
            try command.run()
        } catch {
            exit(withError: error, command: parsed)
        }
    }

    /// The smallest address-space limit laq starts under (measured: the debug build's argument
    /// parsing alone failed under 200 MiB; see Tests/CLITests HostileInputTests).
    static let minimumAddressSpace: UInt64 = 256 << 20

    /// Ends the process for `error`: laq's own errors with their message and ``ExitStatus``,
    /// ArgumentParser's usage errors with the subcommand's usage (status 2), help and version
    /// with 0, and anything else as an internal error (status 3).
    static func exit(withError error: any Error, command: (any ParsableCommand)? = nil) -> Never {
        if let error = error as? ExitCode { Foundation.exit(error.rawValue) }
        if let status = ExitStatus.of(error, in: command) {
            FileHandle.standardError.write(Data("laq: error: \(error)\n".utf8))
            Foundation.exit(status.rawValue)
        }
        let code = exitCode(for: error)
        let message = fullMessage(for: error)
        if code == .success {
            print(message)
            Foundation.exit(ExitStatus.success.rawValue)
        }
        // A usage error found once a subcommand was parsed (its run() checks an option's value):
        // that subcommand's usage, as ArgumentParser prints for errors it finds itself.
        if let error = error as? ValidationError, let command, !(command is LAQCommand) {
            let name = type(of: command)._commandName
            let usage = usageString(for: type(of: command)).replacingOccurrences(of: "\n", with: "\n  ")
            FileHandle.standardError.write(Data("Error: \(error.message)\nUsage: \(usage)\n  See 'laq \(name) --help' for more information.\n".utf8))
            Foundation.exit(ExitStatus.usageOrIO.rawValue)
        }
        if code == .validationFailure || error is ValidationError {
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Foundation.exit(ExitStatus.usageOrIO.rawValue)
        }
        FileHandle.standardError.write(Data("laq: internal error: \(error) (\(type(of: error))). This is a bug in laq; please report it with the command that gave it\n".utf8))
        Foundation.exit(ExitStatus.internalError.rawValue)
    }
}
