import Foundation
import Glibc

/// An input file's bytes, memory-mapped, for readers outside LAQFormat (Keras files, data
/// files, configs): every command reports the same cause in the same words as a `.laq` file's
/// (`PATH: open failed: No such file or directory`).
public enum InputFile {
    /// The bytes of the regular file at `path`, mapped read-only.
    public static func map(_ path: String) throws(FormatError) -> Data {
        try mapFile(path).data
    }

    /// The regular file at `path`, mapped read-only, with the means to give its pages back.
    public static func mapFile(_ path: String) throws(FormatError) -> MappedFile {
        let storage: ByteStorage
        do { storage = try ByteStorage(mapping: path) } catch let error as FormatError { throw error } catch { throw FormatError.io(path: path, operation: "open", reason: "\(error)") }
        return MappedFile(storage: storage)
    }
}

/// A file mapped read-only (``InputFile/mapFile(_:)``).
///
/// Resident pages of a mapping count in a process's memory (RSS) as its own allocations do. A
/// command that reads a large file once (an import) gives each part's pages back when done
/// with it: the bytes stay in the page cache, and a later read maps them again.
public struct MappedFile: Sendable {
    /// The file's bytes; the Data holds the mapping until it is released.
    public let data: Data
    private let storage: ByteStorage

    init(storage: ByteStorage) {
        self.storage = storage
        if let base = storage.bytes.baseAddress {
            data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: storage.bytes.count, deallocator: .custom { _, _ in _ = storage })
        } else {
            data = Data()
        }
    }

    /// Bytes scanned between returns of their pages, in ``scan(_:_:)``.
    static let scanChunk = 8 << 20

    /// Passes `data[range]` (all of it when nil) to `body` a chunk at a time, giving each
    /// chunk's pages back after it.
    public func scan(_ range: Range<Int>? = nil, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let range = range ?? 0..<storage.bytes.count
        for start in stride(from: range.lowerBound, to: range.upperBound, by: Self.scanChunk) {
            let chunk = start..<min(start + Self.scanChunk, range.upperBound)
            try body(UnsafeRawBufferPointer(rebasing: storage.bytes[chunk]))
            release(chunk)
        }
    }

    /// Gives back the whole pages of `data[range]` (all of it when nil) that this process has
    /// touched (madvise MADV_DONTNEED, on a read-only mapping of a file: the bytes stay the
    /// file's, read again from the page cache when next used).
    public func release(_ range: Range<Int>? = nil) {
        guard storage.isMapped, let base = storage.bytes.baseAddress else { return }
        let range = range ?? 0..<storage.bytes.count
        precondition(range.lowerBound >= 0 && range.upperBound <= storage.bytes.count, "range outside the file")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Whole pages inside the range only: a page shared with bytes outside it stays.
        let start = (Int(bitPattern: base) + range.lowerBound + page - 1) / page * page
        let end = (Int(bitPattern: base) + range.upperBound) / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED)
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
