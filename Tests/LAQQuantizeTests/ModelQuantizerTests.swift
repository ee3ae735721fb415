import Foundation
import LAQFormat
import LAQImport
import LAQEngine
import LAQQuantize
import LAQTestSupport
import Testing

/// Quantizing whole models: which weights, which curvature, which layout.
@Suite struct ModelQuantizerTests {
    @Test("a model with a NaN or an infinity in any weight is refused, naming the weight")
    func nonFiniteWeights() throws {
        var model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_tiny.h5").path).model
        let index = try #require(model.weights.firstIndex { $0.shortName == "bias" })
        model.weights[index].values[1] = .infinity
        #expect(throws: QuantizeError.nonFinite(weight: model.weights[index].name, count: 1)) {
            try ModelQuantizer.quantize(model, settings: QuantizationSettings(method: .twn))
        }
    }

    static func weight(_ values: [Float], shape: [Int]) -> Weight {
        Weight(layer: "dense", shortName: "kernel", shape: shape, values: values, trainable: true)
    }

    @Test("per-channel quantization: one table per output channel, codes in place")
    func perChannel() {
        // 3 inputs × 2 outputs; column 0 large, column 1 small.
        let values: [Float] = [1, 0.01, -2, -0.02, 1.5, 0.015]
        let q = ModelQuantizer.quantize(Self.weight(values, shape: [3, 2]), method: .bwn, d: nil, perChannel: true)
        #expect(q.layout == .bits(1, levels: 2, axis: 1))
        #expect(q.levels.count == 4)
        #expect(abs(q.levels[1] - 1.5) < 1e-6)  // mean |w| of column 0
        #expect(abs(q.levels[3] - 0.015) < 1e-6)  // of column 1
        let decoded = CodebookTensor(layout: q.layout, shape: [3, 2], levels: q.levels, codes: q.codes).dequantized()
        #expect(decoded.enumerated().allSatisfy { ($0.element > 0) == (values[$0.offset] > 0) })
    }

    @Test("the curvature comes from v (√v + 1e-8), or u for Adamax; none without optimizer state")
    func curvature() {
        let w = Self.weight([1, 2], shape: [2, 1])
        let adam = OptimizerState(className: "Adam", config: .null, iterations: 3, learningRate: nil, beta1: 0.9, beta2: 0.999,
                                  epsilon: 1e-7, slots: [OptimizerSlot(weight: "dense/kernel", slot: "v", values: [4, 9])], scheme: "")
        let epsilon: Float = 1e-8
        #expect(ModelQuantizer.curvature(of: w, optimizer: adam) == [2 + epsilon, 3 + epsilon])
        var adamax = adam
        adamax.slots = [OptimizerSlot(weight: "dense/kernel", slot: "u", values: [0.5, 0.25])]
        #expect(ModelQuantizer.curvature(of: w, optimizer: adamax) == [0.5 + epsilon, 0.25 + epsilon])
        #expect(ModelQuantizer.curvature(of: w, optimizer: nil) == nil)
    }

    @Test("layouts: binary 1-bit, ternary base 3, m-bit codes with 2^m − 1 levels, DoReFa 2^m")
    func layouts() {
        #expect(ModelQuantizer.layout(for: .lab, axis: nil) == .bits(1, levels: 2))
        #expect(ModelQuantizer.layout(for: .late, axis: 1) == .base3(axis: 1))
        #expect(ModelQuantizer.layout(for: .laq(bits: 3, levels: .log, alpha: .exact), axis: nil) == .bits(3, levels: 7))
        #expect(ModelQuantizer.layout(for: .dorefa(bits: 2), axis: nil) == .bits(2, levels: 4))
    }
}

/// Recurrent kernels: one scale per gate matrix, as the paper's LSTM.
@Suite struct GateQuantizationTests {
    @Test("an LSTM kernel gets one α per gate (i, f, c, o column blocks), stored per column")
    func perGate() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_tiny.h5").path).model
        let kernel = try #require(model.weight(named: "lstm/kernel"))  // [24, 20]: 4 gates × 5 units
        #expect(ModelQuantizer.gateCount(of: kernel, in: model) == 4)
        let q = ModelQuantizer.quantize(kernel, method: .bwn, d: nil, perChannel: false, gates: 4)
        #expect(q.layout == .bits(1, levels: 2, axis: 1))
        #expect(q.levels.count == 20 * 2)
        for gate in 0..<4 {
            let values = (0..<kernel.values.count).filter { ($0 % 20) / 5 == gate }.map { abs(kernel.values[$0]) }
            let alpha = values.reduce(0, +) / Float(values.count)
            for column in (gate * 5)..<((gate + 1) * 5) {
                #expect(abs(q.levels[column * 2 + 1] - alpha) < 1e-6)
            }
        }
        #expect(ModelQuantizer.gateCount(of: try #require(model.weight(named: "dense/kernel")), in: model) == 1)
    }
}
