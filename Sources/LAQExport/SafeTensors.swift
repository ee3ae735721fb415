import Foundation
import LAQFormat

/// The safetensors format, written to its published rules (huggingface/safetensors, "Format"):
///
/// - 8 bytes: N, the header's length, unsigned little-endian 64-bit;
/// - N bytes: a UTF-8 JSON object starting with `{`, padded with spaces (0x20) so that the data
///   starts on an 8-byte boundary; one entry per tensor, `{"dtype": "F32", "shape": [...],
///   "data_offsets": [BEGIN, END]}`, offsets relative to the start of the data; an optional
///   `"__metadata__"` entry mapping strings to strings; no duplicate names;
/// - the data: every tensor's bytes, row-major, little-endian, contiguous, with no holes or
///   overlaps, covering the buffer exactly.
///
/// Tensors are laid out in name order (the reference writer's order for tensors of one dtype);
/// keys are written sorted, so the same tensors give the same bytes.
public enum SafeTensors {
    /// The reference readers refuse headers above 100 MB.
    public static let maxHeaderBytes = 100_000_000

    public static func encode(_ tensors: [ExportedTensor], metadata: [String: String] = [:]) throws -> [UInt8] {
        let ordered = tensors.sorted { $0.name < $1.name }
        for (first, second) in zip(ordered, ordered.dropFirst()) where first.name == second.name {
            throw ExportError.unrepresentable(reason: "safetensors: two tensors named '\(first.name)'")
        }
        if ordered.contains(where: { $0.name == "__metadata__" }) {
            throw ExportError.unrepresentable(reason: "safetensors: '__metadata__' is reserved and cannot name a tensor")
        }
        var header: [String: JSONValue] = [:]
        var offset: Int64 = 0
        for tensor in ordered {
            precondition(tensor.shape.reduce(1, *) == tensor.values.count, "shape and values disagree for \(tensor.name)")
            let end = offset + Int64(tensor.values.count) * 4
            header[tensor.name] = .object([
                "dtype": "F32", "shape": .array(tensor.shape.map { .int(Int64($0)) }),
                "data_offsets": .array([.int(offset), .int(end)]),
            ])
            offset = end
        }
        if !metadata.isEmpty { header["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var json = [UInt8](try encoder.encode(JSONValue.object(header)))
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        guard json.count <= maxHeaderBytes else {
            throw ExportError.unrepresentable(reason: "safetensors: the header would be \(json.count) bytes, above the format's 100 MB")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count + Int(offset))
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json
        for tensor in ordered { tensor.values.withUnsafeBytes { bytes += $0 } }
        return bytes
    }
}
