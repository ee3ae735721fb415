import CHDF5
import Foundation
import Glibc
import Synchronization

/// The one place LAQHDF5 turns libhdf5 return codes into Swift errors.
///
/// HDF5's automatic printing of its error stack to stderr is switched off on every thread that
/// calls it; on a negative return the stack is walked and carried in the ``HDF5Error``.
enum HDF5 {
    /// Calls `body`; a negative result becomes an ``HDF5Error`` with the error stack. The call
    /// may take `budget` seconds, and grow the process by `memory` bytes, before the watchdog
    /// ends the process.
    @discardableResult
    static func check<T: BinaryInteger>(
        _ operation: String, path: String, budget: Double = Watchdog.defaultBudget, memory: Int = Watchdog.defaultMemory, _ body: () -> T
    ) throws(HDF5Error) -> T {
        laq_h5_silence_thread()
        let token = Watchdog.start(operation, path: path, budget: budget, memory: memory)
        let result = body()
        Watchdog.finish(token)
        if result < 0 { throw HDF5Error(operation: operation, path: path, stack: errorStack()) }
        return result
    }

    /// libhdf5 1.10.8 loops forever on some damaged files (reading a string attribute through
    /// a damaged global heap: `H5Aread` → `H5HG_read`, found by tools/mutate.py), some of those
    /// loops allocating a gigabyte a second (found by fuzzing). Every call goes through
    /// ``check``, which records it; a thread looks every quarter second and ends the process
    /// (exit 1, the bad-input status) with a message naming the file when a call runs past its
    /// time, or grows resident memory past its budget from where it stood at the first look that
    /// saw the call (calls shorter than a look cost no memory reading). In `laq` the reading runs
    /// in a child process (README, Untrusted files), so this ends the child and the parent passes
    /// the status on.
    enum Watchdog {
        /// Seconds a metadata call may take (`LAQ_HDF5_TIMEOUT`, default 20); a data read adds
        /// time for its bytes.
        static let defaultBudget: Double = {
            guard let text = ProcessInfo.processInfo.environment["LAQ_HDF5_TIMEOUT"], let seconds = Double(text), seconds > 0 else { return 20 }
            return seconds
        }()

        /// Bytes a call may add to resident memory: 1 GiB (a metadata call needs kilobytes; a
        /// data read's own buffer is allocated before it starts, and it adds its bytes again).
        static let defaultMemory = 1 << 30

        private struct Call {
            var operation: String
            var path: String
            var deadline: Int
            var budget: Double
            var memory: Int
            /// Resident bytes past which the call is ended: set at the first look that sees it.
            var memoryLimit: Int?
        }

        /// Resident memory in bytes (/proc/self/statm), or nil where it cannot be read.
        private static func resident() -> Int? {
            guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
            let fields = text.split(separator: " ")
            guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
            return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        }

        /// Time is counted in the watchdog's own ticks (a quarter second each), not read from a
        /// clock: a process stopped (Ctrl-Z) or a machine suspended stops the ticks too, so a
        /// call is not blamed for time it did not run.
        private static let tick = 0.25
        private static let calls = Mutex<(next: Int, ticks: Int, open: [Int: Call])>((0, 0, [:]))
        private static let thread: Void = {
            Thread.detachNewThread {
                while true {
                    Thread.sleep(forTimeInterval: tick)
                    let current = calls.withLock { $0.open.isEmpty } ? nil : resident()
                    let message = calls.withLock { state -> String? in
                        state.ticks += 1
                        for (token, call) in state.open {
                            if call.deadline < state.ticks {
                                return "\(call.path): libhdf5 has not returned from '\(call.operation)' in \(Int(call.budget)) s"
                            }
                            guard let current else { continue }
                            guard let limit = call.memoryLimit else {
                                state.open[token]?.memoryLimit = current + call.memory
                                continue
                            }
                            if current > limit {
                                return "\(call.path): libhdf5 grew the process past \(limit >> 20) MiB in '\(call.operation)'"
                            }
                        }
                        return nil
                    }
                    guard let message else { continue }
                    FileHandle.standardError.write(Data("laq: error: \(message): the file is damaged or crafted (libhdf5 1.10 loops on some); nothing was written\n".utf8))
                    _exit(1)
                }
            }
        }()

        static func start(_ operation: String, path: String, budget: Double, memory: Int) -> Int {
            _ = thread
            return calls.withLock { state in
                state.next += 1
                state.open[state.next] = Call(operation: operation, path: path, deadline: state.ticks + Int((budget / tick).rounded(.up)),
                                              budget: budget, memory: memory)
                return state.next
            }
        }

        static func finish(_ token: Int) {
            calls.withLock { _ = $0.open.removeValue(forKey: token) }
        }
    }

    /// The current error stack's descriptions, outermost first.
    static func errorStack() -> [String] {
        final class Box { var lines: [String] = [] }
        let box = Box()
        let context = Unmanaged.passUnretained(box).toOpaque()
        H5Ewalk2(hid_t(H5E_DEFAULT), H5E_WALK_DOWNWARD, { _, error, data in
            guard let error, let data else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            let function = error.pointee.func_name.map { String(cString: $0) } ?? "?"
            let description = error.pointee.desc.map { String(cString: $0) } ?? ""
            box.lines.append("\(description) (\(function))")
            return 0
        }, context)
        H5Eclear2(hid_t(H5E_DEFAULT))
        return box.lines
    }
}

/// An HDF5 identifier that is closed exactly once, when this value goes away.
struct H5ID: ~Copyable {
    private let raw: hid_t
    private let close: (hid_t) -> herr_t

    /// The identifier. Every use silences libhdf5's error printing on the calling thread first:
    /// type queries and closes do not go through ``HDF5/check(_:path:budget:memory:_:)``, and
    /// may be a thread's first libhdf5 call.
    var id: hid_t {
        laq_h5_silence_thread()
        return raw
    }

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.raw = id
        self.close = close
    }

    deinit {
        laq_h5_silence_thread()
        _ = close(raw)
    }
}
