import Foundation
import LAQFormat
import LAQEngine

/// `laq diff`: what differs between two `.laq` files (spec/EXPORT.md §5).
///
/// Content is compared, not storage: compression, offsets, checksums and the order of the
/// tensor table do not make files differ. Files are the same when their model description
/// (name, inputs, outputs, training config, architecture), metadata and tensors (shape,
/// encoding, every decoded value) are equal. Provenance is reported but does not by itself make
/// files differ: re-writing a file records a new step without changing what it holds.
public struct ModelDiff: Sendable {
    /// A changed field: its name and each side's compact JSON (nil where the side has none).
    public struct FieldChange: Sendable, Equatable {
        public var field: String
        public var a: String?
        public var b: String?
    }

    /// A layer added, removed or changed between the architectures.
    public struct LayerChange: Sendable, Equatable {
        public enum Kind: String, Sendable { case added, removed, changed }
        public var layer: String
        public var kind: Kind
        public var detail: String
    }

    /// One tensor, in one file or both.
    public struct TensorDiff: Sendable, Equatable {
        public var name: String
        public var shapeA: [Int]?
        public var shapeB: [Int]?
        public var encodingA: String?
        public var encodingB: String?
        /// max |b − a| over the dequantized values (same shape, both decodable).
        public var maxAbsDifference: Double?
        /// ‖b − a‖₂ / ‖a‖₂ over the dequantized values; nil when a is all zeros and b is not.
        public var relativeL2: Double?
        /// Share of elements whose code differs (both codebook tensors with the same shape).
        public var codesChanged: Double?
        public var identical: Bool
        /// Why a comparison was not made (undecodable, shapes differ).
        public var note: String?
    }

    public var model: [FieldChange] = []
    public var architecture: [LayerChange] = []
    public var metadata: [FieldChange] = []
    /// Each file's provenance steps ("laq 0.9.0 import"), and how many leading steps they share.
    public var provenanceA: [String] = []
    public var provenanceB: [String] = []
    public var sharedProvenance = 0
    public var tensors: [TensorDiff] = []
    /// With data: how the two models' outputs agree, and which layer hurts most.
    public var outputs: OutputComparison?

    /// True when nothing but storage and provenance differs.
    public var isSame: Bool {
        model.isEmpty && architecture.isEmpty && metadata.isEmpty && tensors.allSatisfy(\.identical)
    }

    public var onlyInA: [String] { tensors.filter { $0.shapeB == nil }.map(\.name) }
    public var onlyInB: [String] { tensors.filter { $0.shapeA == nil }.map(\.name) }

    /// Compares two files' content; tensors are decoded one pair at a time.
    public static func compare(_ a: LAQFile, _ b: LAQFile) throws -> ModelDiff {
        var diff = ModelDiff()
        let ma = a.manifest.model, mb = b.manifest.model
        func field(_ name: String, _ x: JSONValue, _ y: JSONValue) {
            if x != y { diff.model.append(FieldChange(field: name, a: compactJSON(x), b: compactJSON(y))) }
        }
        field("name", .string(ma.name), .string(mb.name))
        field("framework", .string(ma.framework), .string(mb.framework))
        field("inputs", (try? JSONValue(encoding: ma.inputs)) ?? .null, (try? JSONValue(encoding: mb.inputs)) ?? .null)
        field("outputs", (try? JSONValue(encoding: ma.outputs)) ?? .null, (try? JSONValue(encoding: mb.outputs)) ?? .null)
        field("training", ma.training, mb.training)
        if ma.architecture != mb.architecture { diff.architecture = architectureChanges(ma.architecture, mb.architecture) }

        let keys = Set(a.manifest.metadata.keys).union(b.manifest.metadata.keys).sorted()
        for key in keys where a.manifest.metadata[key] != b.manifest.metadata[key] {
            diff.metadata.append(FieldChange(field: key, a: a.manifest.metadata[key].map(compactJSON), b: b.manifest.metadata[key].map(compactJSON)))
        }

        func steps(_ file: LAQFile) -> [String] { file.manifest.provenance.map { "\($0.tool) \($0.command)" } }
        diff.provenanceA = steps(a)
        diff.provenanceB = steps(b)
        diff.sharedProvenance = zip(a.manifest.provenance, b.manifest.provenance).prefix { $0 == $1 }.count

        for tensor in a.tensors {
            diff.tensors.append(try compareTensor(tensor, in: a, with: b.tensor(named: tensor.name), in: b))
        }
        for tensor in b.tensors where a.tensor(named: tensor.name) == nil {
            diff.tensors.append(TensorDiff(name: tensor.name, shapeB: tensor.shape, encodingB: tensor.encodingSummary, identical: false))
        }
        return diff
    }

    static func compareTensor(_ x: TensorInfo, in a: LAQFile, with other: TensorInfo?, in b: LAQFile) throws -> TensorDiff {
        var result = TensorDiff(name: x.name, shapeA: x.shape, encodingA: x.encodingSummary, identical: false)
        guard let y = other else { return result }
        result.shapeB = y.shape
        result.encodingB = y.encodingSummary
        guard x.shape == y.shape else {
            result.note = "shapes differ"
            return result
        }
        guard x.isDecodable, y.isDecodable else {
            result.note = "not decodable by this laq: \(x.unsupportedReason ?? y.unsupportedReason ?? "")"
            // Identical stored bytes under an identical encoding are still the same tensor.
            result.identical = x.encodingJSON == y.encodingJSON && x.crc32 == y.crc32 && x.decodedLength == y.decodedLength
                && (try? a.withDecodedPayload(x) { p in try b.withDecodedPayload(y) { q in p.elementsEqual(q) } }) == true
            return result
        }
        // Codebook tensors decode once: their codes and their values.
        let codebookA: CodebookTensor? = if case .codebook? = x.encoding { try a.codebook(x) } else { nil }
        let codebookB: CodebookTensor? = if case .codebook? = y.encoding { try b.codebook(y) } else { nil }
        let p = try codebookA?.dequantized() ?? a.floats(x), q = try codebookB?.dequantized() ?? b.floats(y)
        var maxAbs = 0.0, squaredDifference = 0.0, squaredA = 0.0
        var bitwiseEqual = true
        for index in p.indices {
            let difference = Double(q[index]) - Double(p[index])
            maxAbs = max(maxAbs, abs(difference))
            squaredDifference += difference * difference
            squaredA += Double(p[index]) * Double(p[index])
            if p[index].bitPattern != q[index].bitPattern { bitwiseEqual = false }
        }
        result.maxAbsDifference = maxAbs
        result.relativeL2 = squaredA > 0 ? (squaredDifference / squaredA).squareRoot() : (squaredDifference == 0 ? 0 : nil)
        if let codesA = codebookA?.codes, let codesB = codebookB?.codes {
            result.codesChanged = Double(zip(codesA, codesB).filter { $0 != $1 }.count) / Double(max(codesA.count, 1))
        }
        result.identical = bitwiseEqual && x.encodingJSON == y.encodingJSON
        return result
    }

    /// Layer-level differences; a single entry when either architecture is not a graph laq reads.
    static func architectureChanges(_ x: JSONValue, _ y: JSONValue) -> [LayerChange] {
        guard let gx = try? KerasArchitecture.parse(x), let gy = try? KerasArchitecture.parse(y) else {
            return [LayerChange(layer: "(model)", kind: .changed, detail: "the architectures differ")]
        }
        var changes: [LayerChange] = []
        let byName = Dictionary(gy.layers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let namesA = Set(gx.layers.map(\.name))
        for layer in gx.layers {
            guard let other = byName[layer.name] else {
                changes.append(LayerChange(layer: layer.name, kind: .removed, detail: layer.className))
                continue
            }
            var details: [String] = []
            if layer.className != other.className { details.append("class \(layer.className) → \(other.className)") }
            if case let .object(cx) = layer.config, case let .object(cy) = other.config {
                let keys = Set(cx.keys).union(cy.keys).filter { cx[$0] != cy[$0] }.sorted()
                if !keys.isEmpty { details.append("config: \(keys.joined(separator: ", "))") }
            } else if layer.config != other.config {
                details.append("config")
            }
            if layer.inbound != other.inbound { details.append("inputs") }
            if !details.isEmpty { changes.append(LayerChange(layer: layer.name, kind: .changed, detail: details.joined(separator: "; "))) }
        }
        for layer in gy.layers where !namesA.contains(layer.name) {
            changes.append(LayerChange(layer: layer.name, kind: .added, detail: layer.className))
        }
        if changes.isEmpty {
            changes.append(LayerChange(layer: "(model)", kind: .changed, detail: "model-level settings differ (name, inputs or outputs)"))
        }
        return changes
    }
}

/// Compact JSON text of a value (sorted keys), for reporting changed fields.
func compactJSON(_ value: JSONValue) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "?"
}
