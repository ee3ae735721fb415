import Glibc

/// Read-only bytes of a whole file: a private memory map of a path, or a copy of an array.
/// The one place LAQFormat maps memory. The mapping lives as long as this object.
final class ByteStorage: @unchecked Sendable {
    /// Immutable after init; safe to read from any thread.
    let bytes: UnsafeRawBufferPointer
    private let mapped: Bool
    /// Whether the bytes are a mapping of a file (read-only, private).
    var isMapped: Bool { mapped }

    init(copying source: [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        source.withUnsafeBytes { buffer.copyMemory(from: $0) }
        bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<source.count])
        mapped = false
    }

    init(mapping path: String) throws {
        // O_NONBLOCK: a FIFO without a writer is refused below instead of blocking the open.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError.io(path: path, operation: "open", reason: errnoString()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FormatError.io(path: path, operation: "stat", reason: errnoString()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError.io(path: path, operation: "open", reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw FormatError.io(path: path, operation: "mmap", reason: errnoString())
        }
        _ = madvise(address, size, MADV_WILLNEED)
        bytes = UnsafeRawBufferPointer(start: address, count: size)
        mapped = true
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            base.deallocate()
        }
    }
}
