/// Why a model cannot be represented or executed faithfully; every case names the layer.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The architecture config is not what Keras writes.
    case invalidConfig(path: String, reason: String)
    /// A layer class laq does not execute.
    case unsupportedLayer(layer: String, className: String)
    /// Every layer of an architecture that laq cannot execute, by class, module and reason.
    case unsupportedLayers([UnsupportedLayers])
    /// A layer option laq does not execute (channels_first, masking, stateful RNNs, …).
    case unsupportedOption(layer: String, className: String, option: String)
    /// An activation laq does not execute.
    case unsupportedActivation(layer: String, activation: String)
    /// A layer consumes a tensor no layer produces.
    case danglingInput(layer: String, input: String)
    /// Shapes that cannot go together.
    case shapeMismatch(layer: String, reason: String)
    /// A model class that is neither a Sequential or Functional graph nor a model laq rebuilds
    /// from its constructor arguments (``KerasHubBackbone``).
    case unsupportedModel(className: String, module: String?)

    public var description: String {
        switch self {
        case let .invalidConfig(path, reason):
            return "invalid model config at \(path): \(reason)"
        case let .unsupportedLayer(layer, className):
            return "layer '\(layer)' is a \(className), which laq cannot execute (supported: \(LayerRegistry.supportedClasses.joined(separator: ", ")))"
        case let .unsupportedLayers(groups):
            let total = groups.reduce(0) { $0 + $1.count }
            return "\(total) layer\(total == 1 ? "" : "s") laq cannot execute:\n" + groups.map { "  \($0)" }.joined(separator: "\n")
                + "\n(supported: \(LayerRegistry.supportedClasses.joined(separator: ", ")))"
        case let .unsupportedOption(layer, className, option):
            return "layer '\(layer)' (\(className)) uses \(option), which laq cannot execute faithfully"
        case let .unsupportedActivation(layer, activation):
            return "layer '\(layer)' uses activation '\(activation)', which laq cannot execute (supported: \(Activation.names.sorted().joined(separator: ", ")))"
        case let .danglingInput(layer, input):
            return "layer '\(layer)' consumes '\(input)', which no layer produces"
        case let .shapeMismatch(layer, reason):
            return "layer '\(layer)': \(reason)"
        case let .unsupportedModel(className, module):
            return "the model is a \(className)\(module.map { " (\($0))" } ?? ""), which laq cannot rebuild (it imports Sequential and Functional models, and keras_hub's \(LayerRegistry.backbones.keys.sorted().joined(separator: ", ")))"
        }
    }
}

extension ModelError {
    /// A weight that is missing or whose shape disagrees with its layer.
    static func weight(layer: String, _ reason: String) -> ModelError { .shapeMismatch(layer: layer, reason: reason) }
}
