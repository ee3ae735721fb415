import LAQFormat
import LAQEngine

/// What an import does with each tensor's values once they are read and checked.
public enum TensorDelivery {
    /// They stay in the imported model.
    case keep
    /// Each tensor goes to the sink when read, as the record laq stores for it
    /// (``Model/record(of:layer:replacing:floatStorage:)``, ``Model/record(of:shape:)``), and the
    /// imported model keeps shapes only (`values` empty): memory holds one tensor at a time, not
    /// the model (with a `.keras` archive whose weights member is deflated, rather than stored as
    /// Keras stores it, that member is inflated into memory first). `laq import` streams into an ``LAQStreamWriter``, in whatever order the file
    /// holds the tensors; ``Model/tensorNames(includeOptimizer:)`` gives the file's order.
    case stream((TensorRecord) throws -> Void)
}

/// The readers' end of a ``TensorDelivery``: every weight and optimizer slot read goes through
/// here, with the bytes read reported to `progress`.
struct TensorOutlet {
    var delivery: TensorDelivery = .keep
    var progress: (@Sendable (Int) -> Void)?
    /// Runs after each tensor is read, with its bytes (the importer gives back the pages of the
    /// mapped source).
    var afterEach: (Int) -> Void = { _ in }

    var streams: Bool {
        if case .stream = delivery { return true }
        return false
    }

    /// `weight` of `layer` as the model keeps it.
    func deliver(_ weight: Weight, of layer: Layer) throws -> Weight {
        var kept = weight
        if try pass(weight.values.count, { Model.record(of: weight, layer: layer) }) { kept.values = [] }
        return kept
    }

    /// `slot` of a weight of shape `shape` as the model keeps it.
    func deliver(_ slot: OptimizerSlot, shape: [Int]) throws -> OptimizerSlot {
        var kept = slot
        if try pass(slot.values.count, { Model.record(of: slot, shape: shape) }) { kept.values = [] }
        return kept
    }

    /// Reports `count` values read, and hands the tensor's record to the sink when streaming;
    /// whether it did (the model then keeps no values).
    private func pass(_ count: Int, _ record: () -> TensorRecord) throws -> Bool {
        defer { afterEach(count * 4) }
        progress?(count * 4)
        guard case let .stream(sink) = delivery else { return false }
        try sink(record())
        return true
    }
}
