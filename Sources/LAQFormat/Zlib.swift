import Foundation
import CLAQFormatSupport
import CLAQZlib

/// CRC-32 (ISO-HDLC, zlib's and zip's) for laq's other modules.
public enum Checksum {
    /// The CRC-32 of `bytes` (the folded kernel where the CPU has it, else zlib).
    public static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 { Zlib.crc32(bytes, continuing: crc) }

    /// The CRC-32 of `data` (a slice of a memory-mapped file is read in place).
    public static func crc32(_ data: Data) -> UInt32 { data.withUnsafeBytes { Zlib.crc32($0) } }
}

/// The one place LAQFormat calls zlib: CRC-32, deflate and bounded inflate.
enum Zlib {
    /// Whether this CPU runs the folded CRC-32 kernel (x86-64 with PCLMULQDQ).
    static let foldedCRC = laq_crc32_fold_available() != 0

    /// CRC-32 (ISO-HDLC, zlib's) of `bytes`, continuing from `crc` (0 to start).
    ///
    /// Whole 16-byte blocks run in the folded kernel where the CPU has it (~4× zlib 1.2's
    /// speed); the tail, and everything on other CPUs, in zlib. Both give zlib's value.
    static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var crc = crc
        var bytes = bytes
        if foldedCRC, bytes.count >= 64, let base = bytes.baseAddress {
            let blocks = bytes.count & ~15
            crc = laq_crc32_fold(crc, base.assumingMemoryBound(to: UInt8.self), blocks)
            bytes = UnsafeRawBufferPointer(rebasing: bytes[blocks...])
        }
        var result = UInt(crc)
        var base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var remaining = bytes.count
        // zlib takes a 32-bit length: feed large buffers in 1 GiB pieces.
        while remaining > 0, let pointer = base {
            let piece = min(remaining, 1 << 30)
            result = CLAQZlib.crc32(result, pointer, UInt32(piece))
            base = pointer + piece
            remaining -= piece
        }
        return UInt32(truncatingIfNeeded: result)
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0) }
    }

    /// Deflates `input` into a zlib stream at `level`, or returns `nil` if the result would not be
    /// smaller than `limit` bytes (so incompressible data costs one pass and no large buffer).
    static func compress(_ input: UnsafeRawBufferPointer, level: Int32, limit: Int) -> [UInt8]? {
        guard input.count > 0, limit > 0 else { return nil }
        var stream = z_stream()
        guard deflateInit_(&stream, level, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return nil
        }
        defer { deflateEnd(&stream) }
        let capacity = limit - 1
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var consumed = 0
        let inputBase = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status: Int32 = output.withUnsafeMutableBufferPointer { out in
            var status = Z_OK
            while true {
                let inChunk = min(input.count - consumed, Int(UInt32.max >> 1))
                stream.next_in = UnsafeMutablePointer(mutating: inputBase + consumed)
                stream.avail_in = UInt32(inChunk)
                let outChunk = min(capacity - produced, Int(UInt32.max >> 1))
                stream.next_out = out.baseAddress! + produced
                stream.avail_out = UInt32(outChunk)
                let flush = consumed + inChunk == input.count ? Z_FINISH : Z_NO_FLUSH
                status = deflate(&stream, flush)
                consumed += inChunk - Int(stream.avail_in)
                produced += outChunk - Int(stream.avail_out)
                if status == Z_STREAM_END || status < 0 { return status }
                if produced == capacity { return Z_BUF_ERROR }  // not smaller than the limit
            }
        }
        guard status == Z_STREAM_END else { return nil }
        output.removeSubrange(produced...)
        return output
    }

    /// Inflates one zlib stream into exactly `output.count` bytes.
    ///
    /// - Throws: `corruptCompression` when the stream is invalid or has bytes after its end, and
    ///   `decodedSizeMismatch` when it inflates to fewer or more bytes than `output` holds; both
    ///   name `tensor` and `offset`, the payload's start in its file.
    static func inflate(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, tensor: String, offset: UInt64
    ) throws {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw FormatError.corruptCompression(tensor: tensor, offset: offset, reason: "inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        guard input.count > 0 else {
            throw FormatError.corruptCompression(tensor: tensor, offset: offset, reason: "empty stream")
        }
        let inBase = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var consumed = 0
        var produced = 0
        var status = Z_OK
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        defer { scratch.deallocate() }
        while true {
            let inChunk = min(input.count - consumed, Int(UInt32.max >> 1))
            stream.next_in = UnsafeMutablePointer(mutating: inBase + consumed)
            stream.avail_in = UInt32(inChunk)
            let outChunk: Int
            if produced < output.count {
                outChunk = min(output.count - produced, Int(UInt32.max >> 1))
                stream.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self) + produced
            } else {
                // Output is full: offer one scratch byte so an over-long stream shows itself.
                outChunk = 1
                stream.next_out = scratch
            }
            stream.avail_out = UInt32(outChunk)
            status = CLAQZlib.inflate(&stream, Z_NO_FLUSH)
            consumed += inChunk - Int(stream.avail_in)
            let wrote = outChunk - Int(stream.avail_out)
            if status == Z_STREAM_END {
                produced += wrote
                break
            }
            if status == Z_NEED_DICT || status == Z_DATA_ERROR || status == Z_MEM_ERROR || status == Z_STREAM_ERROR {
                let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw FormatError.corruptCompression(tensor: tensor, offset: offset, reason: message)
            }
            if produced >= output.count, wrote > 0 {
                throw FormatError.decodedSizeMismatch(
                    tensor: tensor, offset: offset, declared: UInt64(output.count), actual: UInt64(output.count) + 1)
            }
            produced += wrote
            if consumed == input.count && wrote == 0 && status == Z_BUF_ERROR {
                throw FormatError.corruptCompression(tensor: tensor, offset: offset, reason: "stream ends early after \(produced) bytes")
            }
        }
        guard produced == output.count else {
            throw FormatError.decodedSizeMismatch(tensor: tensor, offset: offset, declared: UInt64(output.count), actual: UInt64(produced))
        }
        guard consumed == input.count else {
            throw FormatError.corruptCompression(
                tensor: tensor, offset: offset, reason: "\(input.count - consumed) bytes after the end of the stream")
        }
    }
}
