import Foundation
import Glibc

/// An input file's bytes, memory-mapped, for readers outside LAQFormat (Keras files, data
/// files, configs): every command reports the same cause in the same words as a `.laq` file's
/// (`PATH: open failed: No such file or directory`).
public enum InputFile {
    /// The bytes of the regular file at `path`, mapped read-only.
    public static func map(_ path: String) throws(FormatError) -> Data {
        // O_NONBLOCK: a FIFO without a writer is refused below instead of blocking the open.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError.io(path: path, operation: "open", reason: errnoString()) }
        var info = stat()
        let statted = fstat(fd, &info) == 0
        let reason = errnoString()
        close(fd)
        guard statted else { throw FormatError.io(path: path, operation: "stat", reason: reason) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw FormatError.io(path: path, operation: "open", reason: "not a regular file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw FormatError.io(path: path, operation: "read", reason: (error as NSError).localizedDescription)
        }
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
