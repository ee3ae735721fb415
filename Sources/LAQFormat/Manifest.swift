import Foundation

/// The manifest (spec/FORMAT.md §4): everything in a `.laq` file except the payloads.
public struct Manifest: Codable, Equatable, Sendable {
    public var format: String = "laq"
    /// File-level features a reader must know to decode anything (§8).
    public var requiredFeatures: [String] = []
    public var model: ModelInfo = ModelInfo()
    /// One record per step that produced the file, oldest first (§4.5).
    public var provenance: [ProvenanceRecord] = []
    /// Free-form; laq never interprets it.
    public var metadata: [String: JSONValue] = [:]
    /// The tensor table, in payload order (§5).
    public var tensors: [TensorEntry] = []

    public init() {}

    enum CodingKeys: String, CodingKey {
        case format, model, provenance, metadata, tensors
        case requiredFeatures = "required_features"
    }
}

/// Model metadata (§4.4).
public struct ModelInfo: Codable, Equatable, Sendable {
    public var name: String = ""
    public var framework: String = ""
    /// The architecture graph as imported (Keras: `model_config`), unchanged.
    public var architecture: JSONValue = .null
    public var inputs: [TensorDescription] = []
    public var outputs: [TensorDescription] = []
    /// The training configuration as imported (loss, metrics, optimizer).
    public var training: JSONValue = .null

    public init(
        name: String = "", framework: String = "", architecture: JSONValue = .null,
        inputs: [TensorDescription] = [], outputs: [TensorDescription] = [], training: JSONValue = .null
    ) {
        self.name = name
        self.framework = framework
        self.architecture = architecture
        self.inputs = inputs
        self.outputs = outputs
        self.training = training
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        framework = try container.decodeIfPresent(String.self, forKey: .framework) ?? ""
        architecture = try container.decodeIfPresent(JSONValue.self, forKey: .architecture) ?? .null
        inputs = try container.decodeIfPresent([TensorDescription].self, forKey: .inputs) ?? []
        outputs = try container.decodeIfPresent([TensorDescription].self, forKey: .outputs) ?? []
        training = try container.decodeIfPresent(JSONValue.self, forKey: .training) ?? .null
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(framework, forKey: .framework)
        try container.encode(architecture, forKey: .architecture)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(outputs, forKey: .outputs)
        try container.encode(training, forKey: .training)
    }

    enum CodingKeys: String, CodingKey { case name, framework, architecture, inputs, outputs, training }
}

/// A model input or output: name, shape (nil entries are unknown, e.g. the batch) and dtype.
public struct TensorDescription: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [Int?]?
    public var dtype: String

    public init(name: String, shape: [Int?]?, dtype: String = "float32") {
        self.name = name
        self.shape = shape
        self.dtype = dtype
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(dtype, forKey: .dtype)
        if let shape {
            var dims = container.nestedUnkeyedContainer(forKey: .shape)
            for dim in shape {
                if let dim { try dims.encode(dim) } else { try dims.encodeNil() }
            }
        } else {
            try container.encodeNil(forKey: .shape)
        }
    }

    enum CodingKeys: String, CodingKey { case name, shape, dtype }
}

/// One step in a file's history (§4.5).
public struct ProvenanceRecord: Codable, Equatable, Sendable {
    /// `"laq <version>"`.
    public var tool: String
    /// The subcommand: `import`, `quantize`, `demo`, …
    public var command: String
    public var arguments: [String]?
    public var parameters: JSONValue?
    public var sources: [SourceFile]?
    /// ISO 8601 UTC, only when the user asked for a time stamp (§9).
    public var created: String?

    public init(
        tool: String, command: String, arguments: [String]? = nil, parameters: JSONValue? = nil,
        sources: [SourceFile]? = nil, created: String? = nil
    ) {
        self.tool = tool
        self.command = command
        self.arguments = arguments
        self.parameters = parameters
        self.sources = sources
        self.created = created
    }
}

/// A file an operation read: its role, base name, SHA-256 and size.
public struct SourceFile: Codable, Equatable, Sendable {
    public var role: String
    public var file: String
    public var sha256: String
    public var bytes: UInt64

    public init(role: String, file: String, sha256: String, bytes: UInt64) {
        self.role = role
        self.file = file
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// The tensor's purpose (§5: `role`, `of`, `slot`).
public enum TensorRole: Equatable, Hashable, Sendable {
    /// A model weight.
    case weight
    /// Optimizer state tied to the weight `of` (Adam: slot `m` or `v`).
    case optimizer(of: String, slot: String)
}

/// One row of the tensor table, as stored (§5).
public struct TensorEntry: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [UInt64]
    public var axes: [String]?
    public var dtype: String
    /// The encoding object, kept as JSON so unknown encodings survive and stay listable (§8).
    public var encoding: [String: JSONValue]
    public var compression: String
    public var offset: UInt64
    public var storedLength: UInt64
    public var decodedLength: UInt64
    public var crc32: UInt32
    public var role: String?
    public var of: String?
    public var slot: String?
    public var features: [String]?

    enum CodingKeys: String, CodingKey {
        case name, shape, axes, dtype, encoding, compression, offset, crc32, role, of, slot, features
        case storedLength = "stored_length"
        case decodedLength = "decoded_length"
    }
}

extension Manifest {
    /// The canonical JSON bytes (§4.2): sorted keys, no whitespace, unescaped slashes.
    public func canonicalJSON() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}
