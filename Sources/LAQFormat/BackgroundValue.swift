import Dispatch

/// A value computed on a global queue while the caller goes on; `wait()` joins it. Used to
/// hash files on a second core while they are read or written (package-internal).
package final class BackgroundValue<Value: Sendable>: @unchecked Sendable {
    private var value: Value?
    private let group = DispatchGroup()

    package init(_ body: @escaping @Sendable () -> Value) {
        DispatchQueue.global().async(group: group) { self.value = body() }
    }

    /// Blocks until the value is computed; the group's wait orders the write before the read.
    package func wait() -> Value {
        group.wait()
        return value!
    }
}
