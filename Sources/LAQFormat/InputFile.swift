import Foundation

/// An input file's bytes, memory-mapped, for readers outside LAQFormat (Keras files, data
/// files, configs): every command reports the same cause in the same words as a `.laq` file's
/// (`PATH: open failed: No such file or directory`).
public enum InputFile {
    /// The bytes of the regular file at `path`, mapped read-only.
    public static func map(_ path: String) throws(FormatError) -> Data {
        let storage: ByteStorage
        do { storage = try ByteStorage(mapping: path) } catch let error as FormatError { throw error } catch { throw FormatError.io(path: path, operation: "open", reason: "\(error)") }
        guard let base = storage.bytes.baseAddress else { return Data() }
        // The Data holds the mapping until it is released.
        return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: storage.bytes.count, deallocator: .custom { _, _ in _ = storage })
    }
}

extension FormatError {
    /// The error's words without the path it starts with, for errors that name the path their own
    /// way (`open failed: No such file or directory`).
    public var reasonWithoutPath: String {
        if case let .io(_, operation, reason) = self { return "\(operation) failed: \(reason)" }
        return description
    }
}
