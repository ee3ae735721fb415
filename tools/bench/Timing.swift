import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The median wall time of `repeats` runs of `body`, in seconds.
func median(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    try median(repeats, setup: {}, body)
}

/// The median wall time of `repeats` runs of `body`, in seconds; `setup` runs untimed before each.
func median(_ repeats: Int, setup: () throws -> Void, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        try setup()
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return times.sorted()[times.count / 2]
}

/// cp(1)-like copy: read and write in 1 MiB chunks, then fsync like laq's atomic write.
func plainCopy(from source: String, to destination: String, sync: Bool) {
    let input = open(source, O_RDONLY)
    let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        _ = buffer.withUnsafeBytes { write(output, $0.baseAddress, count) }
    }
    if sync { fsync(output) }
    close(input)
    close(output)
}

/// Plain read of the whole file into one buffer.
func plainRead(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var info = stat()
    fstat(fd, &info)
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var offset = 0
    while offset < bytes.count {
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
        if count <= 0 { break }
        offset += count
    }
    return bytes
}
