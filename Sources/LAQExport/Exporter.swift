import Foundation
import LAQData
import LAQFormat
import LAQEngine

/// The formats `laq export` writes (spec/EXPORT.md).
public enum ExportFormat: String, CaseIterable, Sendable {
    /// NumPy `.npz`: one float32 `.npy` member per weight, named `<layer>/<weight>.npy`.
    case npz
    /// Keras' legacy full-model HDF5 layout (architecture + weights), loadable with
    /// `keras.models.load_model` and `Model.load_weights`.
    case h5
    /// safetensors: an 8-byte header length, a JSON header, then the raw little-endian data.
    case safetensors
}

/// One exported tensor: a weight's float32 values (codebook tensors dequantized).
public struct ExportedTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// What went wrong in an export, with what it concerned.
public enum ExportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A weight this laq cannot decode (an encoding or feature it does not know).
    case undecodable(tensor: String, reason: String)
    /// The file has no Keras architecture that a Keras file could be written for.
    case noArchitecture(reason: String)
    /// A limit of the target format.
    case unrepresentable(reason: String)

    public var description: String {
        switch self {
        case let .undecodable(tensor, reason): "tensor '\(tensor)' cannot be decoded: \(reason)"
        case let .noArchitecture(reason): "no Keras model to export as HDF5: \(reason)"
        case let .unrepresentable(reason): reason
        }
    }
}

/// What an export wrote.
public struct ExportSummary: Sendable {
    public var format: ExportFormat
    public var path: String
    public var tensors: Int
    public var parameters: Int
    public var bytes: UInt64
}

/// `laq export`: a `.laq` file's weights as float32 in formats other tools read. Optimizer state
/// is not exported. Every output is written atomically (temporary file, fsync, rename).
public enum Exporter {
    /// The file's model weights (not optimizer state), dequantized to float32, in table order.
    public static func weights(of file: LAQFile) throws -> [ExportedTensor] {
        try file.tensors.filter { $0.role == .weight }.map { tensor in
            if let reason = tensor.unsupportedReason { throw ExportError.undecodable(tensor: tensor.name, reason: reason) }
            return ExportedTensor(name: tensor.name, shape: tensor.shape, values: try file.floats(tensor))
        }
    }

    /// Writes `file`'s weights to `path` in `format`.
    @discardableResult
    public static func export(_ file: LAQFile, as format: ExportFormat, to path: String) throws -> ExportSummary {
        let tensors: [ExportedTensor]
        switch format {
        case .npz:
            tensors = try weights(of: file)
            let bytes = try Numpy.encodeArchive(tensors.map { ($0.name, $0.shape, $0.values) })
            try AtomicFile.write(bytes, to: path)
        case .safetensors:
            tensors = try weights(of: file)
            let bytes = try SafeTensors.encode(tensors, metadata: metadata(of: file))
            try AtomicFile.write(bytes, to: path)
        case .h5:
            for tensor in file.tensors where tensor.role == .weight {
                if let reason = tensor.unsupportedReason { throw ExportError.undecodable(tensor: tensor.name, reason: reason) }
            }
            let model: Model
            do { model = try Model(file: file, optimizerState: false) } catch let error as FormatError { throw error } catch {
                throw ExportError.noArchitecture(reason: "\(error)")
            }
            let bytes = try KerasH5Writer.image(model, name: path)
            try AtomicFile.write(bytes, to: path)
            tensors = model.weights.map { ExportedTensor(name: $0.name, shape: $0.shape, values: []) }
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
        return ExportSummary(format: format, path: path, tensors: tensors.count,
                             parameters: tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, bytes: bytes)
    }

    /// String metadata describing the source (safetensors' `__metadata__` is string → string).
    static func metadata(of file: LAQFile) -> [String: String] {
        var metadata = ["producer": "laq \(LAQVersion.string)", "source_sha256": SHA256.hex(file.storedSHA256)]
        if !file.manifest.model.name.isEmpty { metadata["model"] = file.manifest.model.name }
        let quantized = file.tensors.filter { $0.role == .weight && $0.encoding?.typeName == "codebook" }.map(\.name)
        if !quantized.isEmpty { metadata["dequantized"] = quantized.joined(separator: ",") }
        return metadata
    }
}
