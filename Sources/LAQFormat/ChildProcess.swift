import CLAQFormatSupport
import Foundation
import Glibc

/// Runs a program in a child process and reports how it ended: the way laq keeps a library it
/// cannot trust on hostile files (libhdf5) from taking the process down.
public enum ChildProcess {
    public enum Ending: Equatable, Sendable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// Runs `executable` with `arguments` (the first is the program name) and `environment`,
    /// with the caller's standard streams; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this
    /// process meanwhile are passed on to the child.
    public static func run(_ executable: String, arguments: [String], environment: [String: String]) throws -> Ending {
        func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] { strings.map { strdup($0) } + [nil] }
        let argv = cStrings(arguments)
        let envp = cStrings(environment.map { "\($0.key)=\($0.value)" }.sorted())
        defer { (argv + envp).forEach { free($0) } }
        var code: Int32 = -1
        var signal: Int32 = 0
        let result = argv.withUnsafeBufferPointer { argvBuffer in
            envp.withUnsafeBufferPointer { envpBuffer in
                laq_run_child(executable, argvBuffer.baseAddress, envpBuffer.baseAddress, &code, &signal)
            }
        }
        guard result == 0 else { throw FormatError.io(path: executable, operation: "start a child process", reason: errnoString()) }
        return signal != 0 ? .signaled(signal) : .exited(code)
    }

    /// This program's own executable, to run itself as a child: `/proc/self/exe` itself, not
    /// the path it links to, which may since have been replaced or deleted.
    public static var currentExecutable: String? {
        FileManager.default.isExecutableFile(atPath: "/proc/self/exe") ? "/proc/self/exe" : nil
    }

    /// The address-space limit (`ulimit -v`, RLIMIT_AS) in bytes, or nil when there is none.
    public static var addressSpaceLimit: UInt64? {
        let limit = laq_address_space_limit()
        return limit == 0 ? nil : limit
    }

    /// Starts this program again, with the same arguments, with the environment variable
    /// `name` set to `value` (for a library that reads it when it loads). Returns only if that
    /// failed.
    public static func restart(setting name: String, to value: String) {
        _ = laq_restart_with_environment(name, value)
    }

    /// Sets the core-file size limit to 0 (for a process reading a file that may crash it).
    public static func disableCoreDumps() {
        _ = laq_disable_core_dumps()
    }

    /// A signal's name: SIGSEGV, SIGKILL, … (or "signal N").
    public static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGFPE: "SIGFPE", SIGABRT: "SIGABRT",
            SIGTRAP: "SIGTRAP", SIGKILL: "SIGKILL", SIGSYS: "SIGSYS", SIGINT: "SIGINT", SIGTERM: "SIGTERM",
            SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGPIPE: "SIGPIPE",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}
