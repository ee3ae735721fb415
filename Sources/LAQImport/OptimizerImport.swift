import LAQFormat
import LAQHDF5
import LAQEngine

/// Reads Adam-family optimizer state in the three naming schemes Keras has used
/// (keras-hdf5.md §4) and ties each slot to its weight, checking counts and shapes.
struct OptimizerImport {
    let path: String
    let className: String
    let config: JSONValue
    let outlet: TensorOutlet

    init(path: String, training: JSONValue, outlet: TensorOutlet = TensorOutlet()) throws {
        self.path = path
        self.outlet = outlet
        let optimizer = training["optimizer_config"] ?? training["optimizer"] ?? .null
        var name = optimizer["class_name"]?.stringValue ?? ""
        if let range = name.range(of: ">") { name = String(name[range.upperBound...]) }  // "Custom>Adam"
        className = name
        config = optimizer["config"] ?? .null
    }

    func fail(_ reason: String) -> ImportError { .optimizer(path: path, reason: reason) }

    /// The two per-weight slots: first moment `m`, and the second moment `v` (Adamax: the
    /// infinity norm `u`, which plays the role of √v).
    var slotNames: [String] { className == "Adamax" ? ["m", "u"] : ["m", "v"] }

    /// Nadam keeps one extra scalar (the running product of momentum factors, `u_product`).
    var extraScalars: Int { className == "Nadam" ? 1 : 0 }

    func number(_ key: String, default value: Double) -> Double {
        switch config[key] {
        case let .double(v)?: return v
        case let .int(v)?: return Double(v)
        default: return value
        }
    }

    /// The state, or nil with a notice when the optimizer has no second moment to use.
    func state(iterations: Int64?, learningRate: Double?, slots: [OptimizerSlot], scheme: String) -> OptimizerState {
        let rate: Double? = learningRate ?? { if case let .double(v)? = config["learning_rate"] { return v } else { return nil } }()
        return OptimizerState(
            className: className, config: config, iterations: iterations, learningRate: rate,
            beta1: number("beta_1", default: 0.9), beta2: number("beta_2", default: 0.999),
            epsilon: number("epsilon", default: 1e-7), slots: slots, scheme: scheme)
    }

    func notAdam() -> String {
        "optimizer \(className.isEmpty ? "(unknown)" : className) keeps no second moment: imported without a Hessian estimate; quantize with a calibration run, or one-shot with d = 1"
    }

    /// `optimizer_weights` of a legacy `.h5`: names from its `weight_names` attribute.
    func legacy(group: H5Group, model: Model, storedNames: [String: String]) throws -> (OptimizerState?, [String]) {
        guard OptimizerState.adamFamily.contains(className) else { return (nil, [notAdam()]) }
        let names = try group.stringsAttribute("weight_names") ?? []
        let trainable = model.weights.filter(\.trainable)
        // Variable name in the file → laq weight, in each scheme's spelling.
        var byStored: [String: Weight] = [:]
        var byFlattened: [String: Weight] = [:]
        for weight in trainable {
            guard let stored = storedNames[weight.name] else { continue }
            let bare = stored.hasSuffix(":0") ? String(stored.dropLast(2)) : stored
            byStored[bare] = weight
            byFlattened[bare.replacingOccurrences(of: "/", with: "_")] = weight
        }
        var iterations: Int64?
        var learningRate: Double?
        var moments: [String: [String: OptimizerSlot]] = [:]
        var scheme = ""
        for name in names {
            let dataset = try group.dataset(name)
            let bare = name.hasSuffix(":0") ? String(name.dropLast(2)) : name
            let parts = bare.split(separator: "/").map(String.init)
            if parts.last == "iteration" || parts.last == "iter" {
                iterations = try iterationCount(dataset)
                continue
            }
            if parts.last == "learning_rate" {
                learningRate = try dataset.read(as: Double.self).first
                continue
            }
            if className == "Nadam", dataset.shape.isEmpty, parts.last == "variable" || parts.last == "u_product" || parts.last == "momentum_cache" {
                continue  // Nadam's running momentum product: not a per-weight slot.
            }
            var weight: Weight?
            var slot = ""
            if parts.count >= 3, parts[1] == "m" || parts[1] == "v" || parts[1] == "u" {
                // tf.keras ≥ 2.11: Adam/m/<var>:0
                scheme = "tf.keras (Adam/m/<var>)"
                slot = parts[1]
                weight = byStored[parts[2...].joined(separator: "/")]
            } else if parts.count >= 3, parts.last == "m" || parts.last == "v" || parts.last == "u" {
                // tf.keras ≤ 2.10, optimizers.legacy: Adam/<var>/m:0
                scheme = "tf.keras legacy (Adam/<var>/m)"
                slot = parts.last!
                weight = byStored[parts[1..<(parts.count - 1)].joined(separator: "/")]
            } else if parts.count == 2, let suffix = ["_momentum": "m", "_velocity": "v", "_norm": "u"].first(where: { parts[1].hasSuffix($0.key) }) {
                // Keras 3: adam/<path with / → _>_momentum
                scheme = "keras 3 (adam/<path>_momentum)"
                slot = suffix.value
                weight = byFlattened[String(parts[1].dropLast(suffix.key.count))]
            } else {
                throw fail("slot '\(name)' is not an Adam moment (amsgrad, EMA and gradient accumulation slots are not supported)")
            }
            guard let weight else { throw fail("slot '\(name)' belongs to no trainable weight of the model") }
            guard dataset.shape == weight.shape else {
                throw fail("slot '\(name)' has shape \(dataset.shape), its weight '\(weight.name)' has \(weight.shape)")
            }
            guard moments[weight.name, default: [:]][slot] == nil else { throw fail("two '\(slot)' slots for weight '\(weight.name)'") }
            // A slot this class does not keep (Adamax's u beside Adam's m and v) is not read: the
            // state holds the class's slots only.
            guard slotNames.contains(slot) else { continue }
            moments[weight.name, default: [:]][slot] = try self.slot(slot, of: weight, values: dataset.read(as: Float.self))
        }
        if moments.isEmpty { return (nil, [untrained(iterations)]) }
        return (try assemble(trainable: trainable, moments: moments, iterations: iterations, learningRate: learningRate, scheme: scheme), [])
    }

    /// The notice for an optimizer that was compiled but never stepped (no moments saved).
    func untrained(_ iterations: Int64?) -> String {
        "the \(className) optimizer has no moments (t = \(iterations.map(String.init) ?? "0"): never trained): imported without a Hessian estimate"
    }

    /// The notice for a model Keras quantized (int8 codes, ``WeightSpec/integerCodes``), whose
    /// file's optimizer state is that of the float weights before `model.quantize` and fits no
    /// weight of the model; nil for any other model.
    static func quantizedByKeras(_ model: Model) -> String? {
        guard model.layers.contains(where: { $0.kind.weights.contains(where: \.integerCodes) }) else { return nil }
        return "Keras quantized this model after training: the optimizer state in the file belongs to the float weights it replaced and is not imported (no Hessian estimate; quantize with a calibration run, or one-shot with d = 1)"
    }

    /// Keras 3 `optimizer/vars`: 0 iteration, 1 learning rate, then (m, v) per trainable weight in model order.
    func keras3(variables: [H5Dataset], model: Model, optimizerName: String?) throws -> (OptimizerState?, [String]) {
        guard OptimizerState.adamFamily.contains(className) else { return (nil, [notAdam()]) }
        let trainable = model.weights.filter(\.trainable)
        if variables.count == 2 { return (nil, [untrained(try variables[0].read(as: Int64.self).first)]) }
        let expected = 2 + 2 * trainable.count + extraScalars
        guard variables.count == expected else {
            throw fail("\(variables.count) variables in optimizer/vars, \(className) has \(expected) for \(trainable.count) trainable weights (amsgrad, EMA and gradient accumulation add variables laq does not support)")
        }
        var moments: [String: [String: OptimizerSlot]] = [:]
        for (index, weight) in trainable.enumerated() {
            for (offset, slot) in slotNames.enumerated() {
                let dataset = variables[2 + 2 * index + offset]
                guard dataset.shape == weight.shape else {
                    throw fail("optimizer variable \(2 + 2 * index + offset) has shape \(dataset.shape), its weight '\(weight.name)' has \(weight.shape)")
                }
                moments[weight.name, default: [:]][slot] = try self.slot(slot, of: weight, values: dataset.read(as: Float.self))
            }
        }
        let iterations = try iterationCount(variables[0])
        let learningRate = try variables[1].read(as: Double.self).first
        return (try assemble(trainable: trainable, moments: moments, iterations: iterations, learningRate: learningRate, scheme: "keras 3 (optimizer/vars by position)"), [])
    }

    /// The step count `t` (Adam's bias correction divides by 1 − β^t): read as a number, it
    /// must be a whole number in 0…2^53 (a float NaN converted to an integer would be anything).
    func iterationCount(_ dataset: H5Dataset) throws -> Int64? {
        guard let value = try dataset.read(as: Double.self).first else { return nil }
        guard value.isFinite, value >= 0, value <= 9_007_199_254_740_992, value == value.rounded() else {
            throw fail("iteration count \(value) is not a whole number of steps")
        }
        return Int64(value)
    }

    /// The moment `slot` of `weight` once its values are checked (finite; a second moment also
    /// non-negative), as the outlet delivers it.
    func slot(_ slot: String, of weight: Weight, values: [Float]) throws -> OptimizerSlot {
        if slot == "m" {
            if values.contains(where: { !$0.isFinite }) { throw fail("first moment of '\(weight.name)' has non-finite values") }
        } else if values.contains(where: { $0 < 0 || !$0.isFinite }) {
            throw fail("second moment of '\(weight.name)' has negative or non-finite values")
        }
        return try outlet.deliver(OptimizerSlot(weight: weight.name, slot: slot, values: values), shape: weight.shape)
    }

    func assemble(trainable: [Weight], moments: [String: [String: OptimizerSlot]], iterations: Int64?, learningRate: Double?, scheme: String) throws -> OptimizerState {
        var slots: [OptimizerSlot] = []
        for weight in trainable {
            for slot in slotNames {
                guard let found = moments[weight.name]?[slot] else { throw fail("no '\(slot)' slot for weight '\(weight.name)'") }
                slots.append(found)
            }
        }
        if let learningRate, !(learningRate.isFinite && learningRate >= 0) {
            throw fail("learning rate \(learningRate) is not a finite, non-negative number")
        }
        return state(iterations: iterations, learningRate: learningRate, slots: slots, scheme: scheme)
    }
}
