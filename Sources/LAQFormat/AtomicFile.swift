import CLAQFormatSupport
import Foundation
import Glibc

/// Atomic file replacement (spec/FORMAT.md §10): the one place LAQFormat writes files.
///
/// Content goes to a temporary file in the destination's directory, is `fsync`ed, then renamed
/// over the destination, and the directory is `fsync`ed. An error or interruption before the
/// rename leaves the destination untouched; on error the temporary file is removed.
public enum AtomicFile {
    /// Writes the bytes that `body` passes to its sink to `path`, atomically.
    public static func write(to path: String, _ body: (inout FileSink) throws -> Void) throws {
        try replace(path) { fd in
            var sink = FileSink(fd: fd, path: path)
            try body(&sink)
            try sink.flush()
        }
    }

    /// Writes `bytes` to `path`, atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { sink in try bytes.withUnsafeBytes { try sink.write($0) } }
    }

    /// Creates the temporary file, lets `body` fill it through the descriptor, fsyncs, closes,
    /// renames, fsyncs the directory; cleans up on error.
    private static func replace(_ path: String, _ body: (_ fd: Int32) throws -> Void) throws {
        let directory = parentDirectory(of: path)
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var template = Array("\(directory)/.\(base).tmp-XXXXXX".utf8CString)
        // A termination signal from the file's creation to the rename removes it.
        var slot: Int32 = -1
        let fd = template.withUnsafeMutableBufferPointer { laq_temporary_create($0.baseAddress!, &slot) }
        guard fd >= 0 else { throw FormatError.io(path: path, operation: "create temporary file in \(directory)", reason: errnoString()) }
        defer { laq_temporary_remove(slot) }
        let temporary = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        var closed = false
        do {
            try body(fd)
            // mkstemp creates 0600; give the file the usual 0666 & ~umask.
            _ = fchmod(fd, 0o666 & ~processUmask)
            guard fsync(fd) == 0 else { throw FormatError.io(path: path, operation: "fsync", reason: errnoString()) }
            closed = true
            guard close(fd) == 0 else { throw FormatError.io(path: path, operation: "close", reason: errnoString()) }
            guard rename(temporary, path) == 0 else {
                throw FormatError.io(path: path, operation: "rename into place", reason: errnoString())
            }
        } catch {
            if !closed { close(fd) }
            unlink(temporary)
            throw error
        }
        let directoryFD = open(directory, O_RDONLY)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Makes SIGINT, SIGTERM, SIGHUP and SIGQUIT (and, with `crashes`, a crash signal) remove the
    /// temporary files of writes in progress before the process ends with that signal, and
    /// makes a write past the file-size limit fail with EFBIG rather than kill the process.
    /// Call once, early (the handlers replace earlier ones, e.g. the Swift runtime's backtracer
    /// for crashes).
    public static func removeTemporariesOnSignals(crashes: Bool) {
        _ = laq_install_cleanup_handlers(crashes ? 1 : 0)
    }

    /// The process's umask, read without changing it (umask(2) can only be read by setting it,
    /// which races with other threads creating files); 022 when /proc is unavailable.
    static let processUmask: mode_t = {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
           let value = mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) {
            return value
        }
        return 0o022
    }()

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// A buffered writer to an open file descriptor, used by ``AtomicFile``.
///
/// Every ``writebackChunk`` bytes written, the sink asks the kernel to start writing them to the
/// disk (sync_file_range, without waiting), so that the disk works while the file is still being
/// produced and the final fsync waits only for the tail (docs/PERFORMANCE.md, "Early
/// writeback").
public struct FileSink {
    let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    /// Bytes written to the descriptor so far, and how many of them writeback was started for.
    var written = 0
    var writebackStarted = 0
    static let bufferSize = 1 << 20
    static let writebackChunk = 4 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(Self.bufferSize)
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count <= Self.bufferSize {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= Self.bufferSize {
            try Self.writeAll(bytes, fd: fd, path: path)
            startWriteback(after: bytes.count)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Appends `count` bytes of `spool` from `offset`, copied by the kernel where it can.
    mutating func copy(from spool: SpoolFile, offset: Int64, count: Int) throws {
        guard count > 0 else { return }
        try flush()
        guard laq_copy_range(spool.fd, offset, fd, Int64(count)) == 0 else {
            throw FormatError.io(path: path, operation: "write", reason: errnoString())
        }
        startWriteback(after: count)
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try Self.writeAll($0, fd: fd, path: path) }
        startWriteback(after: buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Counts `count` more bytes written and starts writeback once a chunk has accumulated.
    private mutating func startWriteback(after count: Int) {
        written += count
        guard written - writebackStarted >= Self.writebackChunk else { return }
        // Best effort: where this fails or is unsupported, fsync still does all the work.
        _ = laq_start_writeback(fd, Int64(writebackStarted), Int64(written - writebackStarted))
        writebackStarted = written
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, fd: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw FormatError.io(path: path, operation: "write", reason: errnoString())
            }
            offset += written
        }
    }
}

/// A file without a name beside a destination, for bytes written once and later copied into
/// the destination (a streamed file's payloads, ``LAQStreamWriter``). The system frees it when
/// it is closed or the process ends, however it ends (`laq_spool_open`).
///
/// Sendable: `fd` never changes, `size` only while the one writer appends (before any reader
/// exists), and reads are positioned (pread), so threads may read it at once.
final class SpoolFile: @unchecked Sendable {
    let fd: Int32
    /// The destination, for messages.
    let path: String
    /// Bytes appended so far.
    private(set) var size: Int64 = 0

    init(beside path: String) throws {
        let directory = AtomicFile.parentDirectory(of: path)
        let fd = laq_spool_open(directory)
        guard fd >= 0 else { throw FormatError.io(path: path, operation: "create temporary file in \(directory)", reason: errnoString()) }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Appends `bytes`; returns the offset they start at. Written at that offset (pwrite), so
    /// that a failed append leaves the next one where it belongs.
    func append(_ bytes: UnsafeRawBufferPointer) throws -> Int64 {
        let offset = size
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if written < 0 {
                if errno == EINTR { continue }
                throw FormatError.io(path: path, operation: "write temporary file", reason: errnoString())
            }
            done += written
        }
        size += Int64(bytes.count)
        return offset
    }

    /// Passes `count` bytes from `offset` to `body`, a chunk of at most `chunk` bytes at a time.
    func read(offset: Int64, count: Int, chunk: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(count, 1), chunk), alignment: 64)
        defer { buffer.deallocate() }
        var position = offset
        var left = count
        while left > 0 {
            let got = pread(fd, buffer.baseAddress!, min(left, buffer.count), off_t(position))
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                throw FormatError.io(path: path, operation: "read temporary file", reason: got == 0 ? "it ended early" : errnoString())
            }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            position += Int64(got)
            left -= got
        }
    }
}

func errnoString() -> String {
    String(cString: strerror(errno))
}
