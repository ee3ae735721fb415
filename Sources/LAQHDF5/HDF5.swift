import CHDF5
import Foundation
import Synchronization

/// The one place LAQHDF5 turns libhdf5 return codes into Swift errors.
///
/// HDF5's automatic printing of its error stack to stderr is switched off once; on a negative
/// return the stack is walked and carried in the ``HDF5Error``.
enum HDF5 {
    /// Silences HDF5's stderr printing; runs once (Swift's lazy globals are thread-safe).
    static let silenced: Void = {
        H5Eset_auto2(hid_t(H5E_DEFAULT), nil, nil)
    }()

    /// Calls `body`; a negative result becomes an ``HDF5Error`` with the error stack. The call
    /// may take `budget` seconds before the watchdog ends the process.
    @discardableResult
    static func check<T: BinaryInteger>(_ operation: String, path: String, budget: Double = Watchdog.defaultBudget, _ body: () -> T) throws(HDF5Error) -> T {
        _ = silenced
        let token = Watchdog.start(operation, path: path, budget: budget)
        let result = body()
        Watchdog.finish(token)
        if result < 0 { throw HDF5Error(operation: operation, path: path, stack: errorStack()) }
        return result
    }

    /// libhdf5 1.10.8 loops forever on some damaged files (reading a string attribute through
    /// a damaged global heap: `H5Aread` → `H5HG_read`, found by tools/mutate.py). Every call
    /// goes through ``check``, which records when it started; a thread looks every quarter
    /// second, and ends the process (exit 1, the bad-input status) with a message naming the
    /// file when a call runs past its budget. In `laq` the reading runs in a child process
    /// (README, Untrusted files), so this ends the child and the parent passes the status on.
    enum Watchdog {
        /// Seconds a metadata call may take (`LAQ_HDF5_TIMEOUT`, default 20); a data read adds
        /// time for its bytes.
        static let defaultBudget: Double = {
            guard let text = ProcessInfo.processInfo.environment["LAQ_HDF5_TIMEOUT"], let seconds = Double(text), seconds > 0 else { return 20 }
            return seconds
        }()

        private struct Call {
            var operation: String
            var path: String
            var deadline: Int
            var budget: Double
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
                    let late = calls.withLock { state -> Call? in
                        state.ticks += 1
                        return state.open.values.first { $0.deadline < state.ticks }
                    }
                    guard let late else { continue }
                    let message = "laq: error: \(late.path): libhdf5 has not returned from '\(late.operation)' in \(Int(late.budget)) s: the file is damaged or crafted (libhdf5 1.10 loops forever on some); nothing was written\n"
                    FileHandle.standardError.write(Data(message.utf8))
                    _exit(1)
                }
            }
        }()

        static func start(_ operation: String, path: String, budget: Double) -> Int {
            _ = thread
            return calls.withLock { state in
                state.next += 1
                state.open[state.next] = Call(operation: operation, path: path, deadline: state.ticks + Int((budget / tick).rounded(.up)), budget: budget)
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
    let id: hid_t
    private let close: (hid_t) -> herr_t

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }

    deinit { _ = close(id) }
}
