import LAQHDF5
import LAQEngine

/// Why a Keras file could not be imported: what was wrong, where (file, layer, weight), and,
/// where it helps, what to do.
public enum ImportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file cannot be read at all (missing, permission): an I/O error, not a bad file.
    case io(path: String, reason: String)
    case unrecognizedFile(path: String, reason: String)
    case missingArchitecture(path: String)
    case missing(path: String, what: String)
    case invalid(path: String, what: String, reason: String)
    case weightCount(path: String, layer: String, expected: [String], found: [String])
    case weightName(path: String, layer: String, expected: String, found: String)
    case weightShape(path: String, weight: String, expected: [Int], found: [Int])
    case optimizer(path: String, reason: String)
    case archive(path: String, reason: String)
    case hdf5(HDF5Error)
    case model(path: String, ModelError)

    public var description: String {
        switch self {
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .unrecognizedFile(path, reason):
            return "\(path): not a Keras model file laq can read: \(reason)"
        case let .missingArchitecture(path):
            return "\(path): has weights but no architecture: pass the model's config with --config config.json (model.to_json())"
        case let .missing(path, what):
            return "\(path): \(what) is missing"
        case let .invalid(path, what, reason):
            return "\(path): \(what): \(reason)"
        case let .weightCount(path, layer, expected, found):
            return "\(path): layer '\(layer)' should have weights [\(expected.joined(separator: ", "))] but the file has [\(found.joined(separator: ", "))]"
        case let .weightName(path, layer, expected, found):
            return "\(path): layer '\(layer)': expected weight '\(expected)', found '\(found)'"
        case let .weightShape(path, weight, expected, found):
            return "\(path): weight '\(weight)' has shape \(found), the layer's config implies \(expected)"
        case let .optimizer(path, reason):
            return "\(path): optimizer state: \(reason) (use --no-optimizer to import without it)"
        case let .archive(path, reason):
            return "\(path): .keras archive: \(reason)"
        case let .hdf5(error):
            return error.description
        case let .model(path, error):
            return "\(path): \(error)"
        }
    }
}
