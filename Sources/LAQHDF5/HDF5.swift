import CHDF5

/// The one place LAQHDF5 turns libhdf5 return codes into Swift errors.
///
/// HDF5's automatic printing of its error stack to stderr is switched off once; on a negative
/// return the stack is walked and carried in the ``HDF5Error``.
enum HDF5 {
    /// Silences HDF5's stderr printing; runs once (Swift's lazy globals are thread-safe).
    static let silenced: Void = {
        H5Eset_auto2(hid_t(H5E_DEFAULT), nil, nil)
    }()

    /// Calls `body`; a negative result becomes an ``HDF5Error`` with the error stack.
    @discardableResult
    static func check<T: BinaryInteger>(_ operation: String, path: String, _ body: () -> T) throws(HDF5Error) -> T {
        _ = silenced
        let result = body()
        if result < 0 { throw HDF5Error(operation: operation, path: path, stack: errorStack()) }
        return result
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
