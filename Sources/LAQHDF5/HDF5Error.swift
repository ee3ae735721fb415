/// A failed libhdf5 call: the operation, the file, and HDF5's error stack (innermost last).
public struct HDF5Error: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var stack: [String]

    public init(operation: String, path: String, stack: [String] = []) {
        self.operation = operation
        self.path = path
        self.stack = stack
    }

    public var description: String {
        let detail = stack.isEmpty ? "" : ": " + stack.reversed().joined(separator: " ← ")
        return "\(path): HDF5 \(operation) failed\(detail)"
    }
}
