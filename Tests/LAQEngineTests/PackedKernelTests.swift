import Foundation
import LAQData
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing
@testable import LAQEngine

/// Packed kernels (issue 4): products computed from packed codes equal dequantize-then-multiply
/// for every encoding of spec/FORMAT.md, per tensor and per output channel, at odd sizes.
@Suite struct PackedKernelTests {
    static let layouts: [CodebookLayout] = (1...8).flatMap { bits in
        [CodebookLayout.bits(bits, levels: 1 << bits), .bits(bits, levels: max(1, (1 << bits) - 1))]
    } + [.base3(levels: 3), .base3(levels: 2)]

    static func random(_ layout: CodebookLayout, rows: Int, columns: Int, perColumn: Bool, seed: UInt64) -> PackedCodebook {
        var generator = SplitMix64(seed: seed)
        let axis = perColumn ? 1 : nil
        let layout = CodebookLayout(packing: layout.packing, bits: layout.bits, levelCount: layout.levelCount, axis: axis)
        let tables = perColumn ? columns : 1
        let levels = (0..<(tables * layout.levelCount)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 }
        let codes = (0..<(rows * columns)).map { _ in UInt8(generator.next() % UInt64(layout.levelCount)) }
        return PackedCodebook(layout: layout, shape: [rows, columns], levels: levels, packed: layout.pack(codes))
    }

    /// A·W with W dequantized, accumulated in double.
    static func reference(_ a: [Float], _ w: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(w[p * n + j]) }
                c[i * n + j] = Float(sum)
            }
        }
        return c
    }

    @Test("decoding any range of elements equals the scalar reference dequantization, for every layout",
          arguments: [false, true])
    func decode(perColumn: Bool) throws {
        for (index, layout) in Self.layouts.enumerated() {
            for (rows, columns) in [(1, 1), (3, 7), (13, 5), (9, 33)] {
                let codebook = Self.random(layout, rows: rows, columns: columns, perColumn: perColumn, seed: UInt64(index * 100 + rows))
                let matrix = try #require(PackedMatrix(codebook))
                let expected = codebook.dequantized()
                for (start, count) in [(0, rows * columns), (1, rows * columns - 1), (rows * columns / 2, rows * columns - rows * columns / 2), (3, 0)]
                where start + count <= rows * columns {
                    var output = [Float](repeating: .nan, count: count)
                    output.withUnsafeMutableBufferPointer { matrix.decode(from: start, count: count, into: $0.baseAddress!) }
                    #expect(output == Array(expected[start..<(start + count)]), "\(layout) \(rows)×\(columns) [\(start), +\(count))")
                }
            }
        }
    }

    @Test("packed products equal dequantize-then-multiply: every layout, per tensor and per channel, odd sizes, batches 1, 3 and 17",
          arguments: [false, true])
    func products(perColumn: Bool) throws {
        for (index, layout) in Self.layouts.enumerated() {
            for (k, n) in [(1, 1), (7, 13), (33, 5), (130, 64)] {
                let codebook = Self.random(layout, rows: k, columns: n, perColumn: perColumn, seed: UInt64(1000 + index * 10 + k))
                let matrix = KernelMatrix.packed(try #require(PackedMatrix(codebook)))
                let w = codebook.dequantized()
                for m in [1, 3, 17] {
                    var generator = SplitMix64(seed: UInt64(m * 7 + k))
                    let a = (0..<(m * k)).map { _ in Float(Int(generator.next() % 2001) - 1000) / 500 }
                    var c = [Float](repeating: .nan, count: m * n)
                    a.withUnsafeBufferPointer { a in c.withUnsafeMutableBufferPointer { matrix.multiply(a.baseAddress!, m: m, k: k, n: n, into: $0.baseAddress!) } }
                    let expected = Self.reference(a, w, m: m, k: k, n: n)
                    let error = zip(c, expected).map { abs($0 - $1) }.max() ?? 0
                    #expect(error <= 1e-4 * Float(k), "\(layout) \(perColumn ? "per channel" : "per tensor") \(m)×\(k)·\(k)×\(n): max |Δ| \(error)")
                }
            }
        }
    }

    @Test("large products: the two-thread plane kernel and the row tiles, with A a column block (lda) and C accumulated",
          arguments: [false, true])
    func largeAndStrided(perColumn: Bool) throws {
        let (k, n) = (2100, 600)
        let codebook = Self.random(.base3(levels: 3), rows: k, columns: n, perColumn: perColumn, seed: 9)
        let packed = try #require(PackedMatrix(codebook))
        #expect(k * n >= 1 << 20 && k > packed.tileRows, "large: two threads for the planes, several tiles")
        let w = codebook.dequantized()
        for m in [1, 2, PackedMatrix.planeProductRows + 1] {
            var generator = SplitMix64(seed: 5)
            // A is the right k columns of an m × (k + 3) matrix.
            let wide = (0..<(m * (k + 3))).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 }
            var a: [Float] = []
            for row in 0..<m { a += wide[(row * (k + 3) + 3)..<((row + 1) * (k + 3))] }
            var c = [Float](repeating: 1, count: m * n)
            wide.withUnsafeBufferPointer { p in
                c.withUnsafeMutableBufferPointer { KernelMatrix.packed(packed).multiply(p.baseAddress! + 3, lda: k + 3, m: m, k: k, n: n, into: $0.baseAddress!, accumulate: true) }
            }
            let expected = Self.reference(a, w, m: m, k: k, n: n).map { $0 + 1 }
            let error = zip(c, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(error <= 1e-3, "m = \(m): max |Δ| \(error)")
        }
    }

    @Test("a quantized model run from its packed codes gives the dequantized model's outputs and keeps no float copy of its kernels",
          arguments: ["k3_fmnist_mlp.h5", "k3_fmnist_cnn.keras", "k3_char_lstm.h5", "k3_branches.h5", "k3_conv1d.h5"])
    func packedModel(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        for method in [Method.lat2a, .laq(bits: 3, levels: .log, alpha: .exact), .laq(bits: 3, levels: .linear, alpha: .exact)] {
            let perChannel = method != .lat2a
            let results = try ModelQuantizer.quantize(model, settings: QuantizationSettings(method: method, perChannel: perChannel))
            let writer = try model.laqWriter(provenance: [], includeOptimizer: false,
                                             replacing: Dictionary(uniqueKeysWithValues: results.map { ($0.weight, $0.tensorData) }))
            let file = try LAQFile(bytes: try writer.encoded())
            let unpacked = try Model(file: file)
            let packed = try Model(file: file, packed: true)
            let quantizedNames = Set(results.map(\.weight))
            // lat2a runs on one-hot planes, laq log on signed planes, laq linear on bit planes.
            let kind = method == .lat2a ? PlaneMatrix.oneHotPlanes : method == .laq(bits: 3, levels: .log, alpha: .exact) ? PlaneMatrix.signedPlanes : PlaneMatrix.bitPlanes
            for weight in packed.weights where quantizedNames.contains(weight.name) {
                #expect(weight.values.isEmpty && weight.packed != nil, "\(weight.name) stays packed")
                #expect(PackedMatrix(try #require(weight.packed))?.planes?.kind == kind, "\(fixture) \(method) \(weight.name)")
            }
            let io = try Numpy.load(path: TestPaths.testdata("keras/\(KerasParityTests.ioName(fixture))").path)
            let inputs = KerasParityTests.inputs(io)
            let expected = try Executor(model: unpacked).predict(inputs)[0].data
            let actual = try Executor(model: packed).predict(inputs)[0].data
            let scale = max(expected.map(abs).max() ?? 1, 1e-6)
            let error = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(error <= 1e-5 * scale, "\(fixture) \(method): max |Δ| \(error)")
            // Written back, a packed model keeps its codes; it cannot be trained.
            let rewritten = try LAQFile(bytes: try packed.laqWriter(provenance: [], includeOptimizer: false).encoded())
            for result in results { #expect(try rewritten.codebook(result.weight).codes == result.codes, "\(result.weight)") }
            var random = TrainingRandom(seed: 1)
            #expect(throws: EngineError.self) {
                try Backpropagation.run(model: packed, inputs: inputs, labels: [Float](repeating: 0, count: inputs[0].shape[0]),
                                        loss: .meanSquaredError, random: &random)
            }
        }
    }
}
