import Foundation
import LAQFormat

/// Helpers shared by the test targets: paths, temporary directories, and crafting bad files.
public enum TestPaths {
    /// The repository root, found from this file's path (no SwiftPM resources needed).
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    public static func testdata(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("testdata").appendingPathComponent(name)
    }

    /// A fresh directory under the system's temporary directory, unique to the caller.
    public static func temporaryDirectory(_ label: String = #function) throws -> URL {
        let safe = label.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("laq-tests-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Rebuilds a valid `.laq` file after changing its manifest or data section, with every
/// checksum and offset made consistent again, so a test reaches exactly the rule it targets.
public struct FileSurgeon {
    public let original: [UInt8]

    public init(_ bytes: [UInt8]) { original = bytes }

    func readLE(_ offset: Int, _ size: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<size { value |= UInt64(original[offset + index]) << (8 * index) }
        return value
    }

    public var dataOffset: Int { Int(readLE(32, 8)) }
    public var dataLength: Int { Int(readLE(40, 8)) }
    public var manifestLength: Int { Int(readLE(24, 8)) }

    /// The manifest as a JSON object.
    public var manifest: [String: Any] {
        let bytes = Data(original[64..<(64 + manifestLength)])
        return (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] ?? [:]
    }

    /// A new file: `editManifest` sees tensor offsets relative to the data section (so that
    /// moving the data section, when the manifest's length changes, keeps them pointing at the
    /// same payloads); `editData` changes the data section; CRCs of payloads are recomputed when
    /// `fixPayloadCRCs`; header CRC, manifest CRC and SHA-256 are always recomputed.
    public func rebuild(
        manifest editManifest: (inout [String: Any]) -> Void = { _ in },
        data editData: (inout [UInt8]) -> Void = { _ in },
        fixPayloadCRCs: Bool = false
    ) -> [UInt8] {
        var object = manifest
        var tensors = object["tensors"] as? [[String: Any]] ?? []
        for index in tensors.indices {
            tensors[index]["offset"] = (tensors[index]["offset"] as! Int) - dataOffset
        }
        object["tensors"] = tensors
        editManifest(&object)
        var data = Array(original[dataOffset..<(dataOffset + dataLength)])
        editData(&data)
        var newDataOffset = 64
        var json: [UInt8] = []
        while true {
            var shifted = object
            if var tensors = shifted["tensors"] as? [[String: Any]] {
                for index in tensors.indices {
                    if let relative = tensors[index]["offset"] as? Int { tensors[index]["offset"] = relative + newDataOffset }
                    if fixPayloadCRCs, let start = tensors[index]["offset"] as? Int,
                        let length = tensors[index]["stored_length"] as? Int,
                        start - newDataOffset >= 0, start - newDataOffset + length <= data.count
                    {
                        let slice = Array(data[(start - newDataOffset)..<(start - newDataOffset + length)])
                        tensors[index]["crc32"] = Int(FileSurgeon.crc32(slice))
                    }
                }
                shifted["tensors"] = tensors
            }
            json = Array(try! JSONSerialization.data(withJSONObject: shifted, options: [.sortedKeys, .withoutEscapingSlashes]))
            let needed = (64 + json.count + 63) / 64 * 64
            if needed == newDataOffset { break }
            newDataOffset = max(needed, newDataOffset + 64)
        }
        return FileSurgeon.assemble(manifest: json, data: data)
    }

    /// A complete file around `manifest` and `data`, with correct header, padding and trailer.
    public static func assemble(manifest json: [UInt8], data: [UInt8], major: UInt16 = 1) -> [UInt8] {
        let dataOffset = (64 + json.count + 63) / 64 * 64
        var header: [UInt8] = [0x89, 0x4C, 0x41, 0x51, 0x0D, 0x0A, 0x1A, 0x0A]
        func put(_ value: UInt64, _ size: Int) { for index in 0..<size { header.append(UInt8(truncatingIfNeeded: value >> (8 * index))) } }
        put(UInt64(major), 2); put(0, 2); put(0, 4); put(64, 8); put(UInt64(json.count), 8)
        put(UInt64(dataOffset), 8); put(UInt64(data.count), 8); put(UInt64(crc32(json)), 4); put(0, 8)
        put(UInt64(crc32(header)), 4)
        var file = header + json + [UInt8](repeating: 0, count: dataOffset - 64 - json.count) + data
        file += SHA256.hash(file.withUnsafeBytes { UnsafeRawBufferPointer($0) })
        file += Array("LAQEND\r\n".utf8)
        return file
    }

    /// Recomputes the header CRC (bytes 0…59) after a test edits header fields.
    public static func fixHeaderCRC(_ file: inout [UInt8]) {
        let crc = crc32(Array(file[0..<60]))
        for index in 0..<4 { file[60 + index] = UInt8(truncatingIfNeeded: crc >> (8 * index)) }
    }

    /// Recomputes the trailer's SHA-256 after a test edits bytes before it.
    public static func fixSHA(_ file: inout [UInt8]) {
        let trailer = file.count - 40
        let digest = SHA256.hash(file[0..<trailer].withUnsafeBytes { UnsafeRawBufferPointer($0) })
        file.replaceSubrange(trailer..<(trailer + 32), with: digest)
    }

    /// Bitwise CRC-32 (ISO-HDLC), written from the definition as an independent reference.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    public static func writeLE(_ value: UInt64, _ size: Int, into file: inout [UInt8], at offset: Int) {
        for index in 0..<size { file[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}
