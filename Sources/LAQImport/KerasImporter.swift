import Foundation
import LAQFormat
import LAQHDF5
import LAQEngine

/// Imports Keras models from the files users have (keras-hdf5.md), recognised by content:
/// legacy full-model `.h5` (tf.keras 2.x and Keras 3), Keras 3 `.keras` archives, and weights-only
/// files (`.weights.h5`, tf.keras `save_weights`) with the architecture from `--config`.
public struct KerasImporter: Sendable {
    public var includeOptimizer: Bool
    /// Called with the bytes of tensor data (weights, optimizer slots) just read, as reading goes.
    public var progress: (@Sendable (Int) -> Void)?

    public init(includeOptimizer: Bool = true, progress: (@Sendable (Int) -> Void)? = nil) {
        self.includeOptimizer = includeOptimizer
        self.progress = progress
    }

    /// What kind of Keras file `path` holds.
    public enum FileKind: String, Sendable {
        case legacyModel = "keras-h5"
        case legacyWeights = "keras-legacy-weights-h5"
        case keras3Weights = "keras-weights-h5"
        case archive = "keras-archive"
    }

    /// Notices for the user: things imported with a caveat (no Hessian, ignored options, …).
    public struct Result: Sendable {
        public var model: Model
        public var kind: FileKind
        public var notices: [String]
    }

    /// Imports `path`; `configPath` gives the architecture for weights-only files. With
    /// `delivery` `.stream`, each weight and optimizer slot goes to the sink as it is read and the
    /// model keeps shapes only.
    ///
    /// The source is memory-mapped, and the pages read are given back as reading goes
    /// (``MappedFile/release(_:)``), so that the process holds little of the file at once.
    ///
    /// The source's SHA-256 (`source.sha256`, which the provenance records) is computed on
    /// another core while this one reads the file.
    public func importModel(
        path: String, configPath: String? = nil, delivery: TensorDelivery = .keep
    ) throws -> Result {
        let mapped: MappedFile
        do { mapped = try InputFile.mapFile(path) } catch { throw ImportError.io(path: path, reason: error.reasonWithoutPath) }
        let data = mapped.data
        // Hash the mapped file on another core while this one reads it (SHA-256 takes about as
        // long as reading every weight); sniff it here.
        let digest = BackgroundValue {
            let hasher = SHA256()
            mapped.scan { hasher.update($0) }
            return SHA256.hex(hasher.finalize())
        }
        // Joined on every path: a caller that exits on an error must not tear down OpenSSL while
        // the hash still runs.
        defer { _ = digest.wait() }
        let head = [UInt8](data.prefix(4096 + 8))
        let config = try configPath.map { try Self.readJSON(path: $0) }
        // The pages of the mapped source are given back after every 16 MiB of tensors read
        // (libhdf5 reads a stored .keras member where it lies in the mapping).
        var unreleased = 0
        let outlet = TensorOutlet(delivery: delivery, progress: progress) { bytes in
            unreleased += bytes
            guard unreleased >= 16 << 20 else { return }
            unreleased = 0
            mapped.release()
        }

        var result: Result
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            result = try KerasArchive(path: path, file: mapped, outlet: outlet).importModel(includeOptimizer: includeOptimizer, configOverride: config)
        } else if [0, 512, 1024, 2048, 4096].contains(where: { $0 < head.count && H5File.hasSignature(head[$0...]) }) {
            let file: H5File
            do { file = try H5File(path: path) } catch let error as HDF5Error {
                throw ImportError.unrecognizedFile(path: path, reason: "an HDF5 file libhdf5 cannot open (damaged or truncated?): \(error.stack.last ?? error.operation)")
            }
            // libhdf5's refusals while reading (a link out of the file, external storage, …) are
            // the file's fault: reported as import errors, which name the file.
            do { result = try Self.importHDF5(file, path: path, config: config, includeOptimizer: includeOptimizer, outlet: outlet) }
            catch let error as HDF5Error { throw ImportError.hdf5(error) }
        } else {
            throw ImportError.unrecognizedFile(path: path, reason: "neither a zip (.keras) nor an HDF5 file")
        }
        // The imported model must be one the engine can execute as Keras does.
        do { try result.model.validate(values: !outlet.streams) } catch { throw ImportError.model(path: path, error) }
        var source = ModelSource(file: URL(fileURLWithPath: path).lastPathComponent, bytes: UInt64(data.count))
        source.format = result.kind.rawValue
        source.kerasVersion = result.model.source.kerasVersion
        source.backend = result.model.source.backend
        result.model.source = source
        result.model.source.sha256 = digest.wait()
        return result
    }

    static func importHDF5(
        _ file: H5File, path: String, config: JSONValue?, includeOptimizer: Bool, outlet: TensorOutlet
    ) throws -> Result {
        let root = try file.root()
        if try root.kind(of: "model_weights") == .group {
            return try LegacyH5Reader(file: file, path: path, outlet: outlet).importModel(includeOptimizer: includeOptimizer, configOverride: config)
        }
        if try root.stringsAttribute("layer_names") != nil {
            guard let config else { throw ImportError.missingArchitecture(path: path) }
            return try LegacyH5Reader(file: file, path: path, outlet: outlet).importWeightsOnly(config: config)
        }
        if try root.kind(of: "layers") == .group {
            guard let config else { throw ImportError.missingArchitecture(path: path) }
            return try Keras3WeightsReader(file: file, path: path, outlet: outlet).importModel(config: config, includeOptimizer: includeOptimizer, kind: .keras3Weights)
        }
        throw ImportError.unrecognizedFile(path: path, reason: "an HDF5 file without model_weights, layer_names or layers: not written by Keras")
    }

    /// Deepest nesting accepted in a Keras JSON document: the manifest (limit 128) holds the
    /// architecture two levels down.
    static let maxJSONDepth = 120

    static func readJSON(path: String) throws -> JSONValue {
        let data: Data
        do { data = try InputFile.map(path) } catch { throw ImportError.io(path: path, reason: error.reasonWithoutPath) }
        return try parseJSON([UInt8](data), path: path, what: "config")
    }

    /// A Keras JSON document (`model_config`, `training_config`, `config.json`, `metadata.json`),
    /// read by the strict reader: a document Python's `json` would read differently (duplicate
    /// keys) or that is not JSON (NaN, trailing commas) is refused.
    static func parseJSON(_ bytes: [UInt8], path: String, what: String) throws -> JSONValue {
        do {
            return try StrictJSON.parse(bytes, maxDepth: maxJSONDepth, integralNumbersAsIntegers: true)
        } catch {
            throw ImportError.invalid(path: path, what: what, reason: "not valid JSON: \(error)")
        }
    }
}
