import ArgumentParser
import Foundation
import LAQData
import LAQFormat

/// A command whose input files may go through libhdf5.
///
/// Debian 12's libhdf5 (1.10.8) crashes on some damaged or crafted files (a flipped byte in a
/// global heap segfaults `H5HG_read` inside `H5Aread`), and laq keeps it as its HDF5 library. So
/// such a command runs in a child process, a copy of laq itself: the parent parses the command
/// line, starts the child with the same arguments, passes on termination signals, and turns a
/// child that died of a signal into a clean error naming the file (exit 1). The child removes its
/// temporary files when it crashes (writes are atomic, so no output appears), and dumps no core.
///
/// Under an address-space limit (`ulimit -v`) every command runs so: Swift traps when an
/// allocation fails, and the parent reports that as running out of memory (exit 2).
/// `LAQ_ISOLATED_CHILD=1` marks the child, and runs any command in-process.
protocol ReadsHDF5 {
    /// The input files libhdf5 will read (empty: the command runs in-process).
    var hdf5Inputs: [String] { get }
}

enum Isolation {
    static let childVariable = "LAQ_ISOLATED_CHILD"

    static var isChild: Bool { ProcessInfo.processInfo.environment[childVariable] != nil }

    /// Runs `command` in a child process (and exits as it did) when it reads HDF5 or runs under
    /// an address-space limit; returns when it runs here.
    static func runInChildIfNeeded(_ command: any ParsableCommand) throws {
        guard !isChild else { return }
        let files = (command as? ReadsHDF5)?.hdf5Inputs ?? []
        if !files.isEmpty || ChildProcess.addressSpaceLimit != nil { try runInChild(reading: files) }
    }

    /// Runs this command line in a child process and exits as it did; a child that died of a
    /// crash signal becomes an error naming `files`.
    static func runInChild(reading files: [String]) throws -> Never {
        guard let executable = ChildProcess.currentExecutable else {
            throw CommandError.io("cannot find laq's own executable (/proc/self/exe) to run this command in a child process")
        }
        var environment = ProcessInfo.processInfo.environment
        environment[childVariable] = "1"
        // The Swift runtime's backtracer would print pages about libhdf5's crash: the parent says it.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let ending = try ChildProcess.run(executable, arguments: CommandLine.arguments, environment: environment)
        let reading = files.isEmpty ? "" : " reading \(describe(files))"
        switch ending {
        case let .exited(code):
            exit(code)
        case let .signaled(signal) where [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE].contains(signal):
            // Interrupted, or its reader went away (`laq … | head`): end the same way, as the child did.
            Glibc.signal(signal, SIG_DFL)
            raise(signal)
            exit(128 + signal)
        case .signaled(SIGKILL):
            throw CommandError.outOfMemory("the process\(reading) was killed (SIGKILL), most likely by the system for using too much memory; nothing was written")
        case let .signaled(signal):
            let name = ChildProcess.signalName(signal)
            if let limit = ChildProcess.addressSpaceLimit {
                let limitText = "the address-space limit of \(limit >> 20) MiB (ulimit -v)"
                throw files.isEmpty
                    ? CommandError.outOfMemory("out of memory under \(limitText): the process stopped (\(name)); nothing was written. Raise the limit")
                    : CommandError.crashed("\(describe(files)): the process reading it stopped (\(name)): out of memory under \(limitText), or the file is damaged or crafted (libhdf5 crashes on some); nothing was written")
            }
            throw CommandError.crashed("\(describe(files)): reading it crashed (\(name)); libhdf5 crashes on some damaged or crafted files. Nothing was written. Check the file, e.g. load it with Keras or h5py, or save the model again")
        }
    }

    private static func describe(_ files: [String]) -> String {
        files.count == 1 ? files[0] : files.joined(separator: " or ")
    }

    /// `path` when it is an HDF5 file by its signature (a data file), else nothing.
    static func ifHDF5(_ specification: String?) -> [String] {
        guard let specification else { return [] }
        let path = DataFile.path(of: specification)
        return DataFile.isHDF5(path) ? [path] : []
    }
}

extension Import: ReadsHDF5 {
    /// Every kind of Keras file holds HDF5 (a `.keras` archive its `model.weights.h5`).
    var hdf5Inputs: [String] { [model] }
}

extension Eval: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(data) }
}

extension Run: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(input) }
}

extension Quantize: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(calib) + Isolation.ifHDF5(val) }
}

extension Diff: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(comparison.data) }
}

extension Bench: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(input) }
}

extension Report: ReadsHDF5 {
    var hdf5Inputs: [String] { Isolation.ifHDF5(comparison.data) }
}
