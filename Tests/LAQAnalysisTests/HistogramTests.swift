import Foundation
import LAQAnalysis
import LAQExamples
import LAQFormat
import LAQEngine
import LAQTestSupport
import Testing

@Suite struct HistogramTests {
    @Test("bins: equal widths over [min, max], every finite value counted once, in the bin a direct count gives")
    func bins() {
        var random = SplitMix64(seed: 3)
        let values = (0..<1000).map { _ in Float(random.next() % 10_000) / 1000 - 5 } + [.nan, .infinity]
        let bins = TensorHistogram.bins(values, count: 7)
        #expect(bins.count == 7)
        #expect(bins.map(\.count).reduce(0, +) == 1000)
        let finite = values.filter { $0.isFinite }
        #expect(bins.first?.lower == finite.min() && bins.last?.upper == finite.max())
        for (index, bin) in bins.enumerated() {
            let last = index == bins.count - 1
            let direct = finite.filter { $0 >= bin.lower && (last ? $0 <= bin.upper : $0 < bin.upper) }.count
            #expect(abs(direct - bin.count) <= 1, "bin \(index): edges rounded in float")
        }
        #expect(TensorHistogram.bins([2, 2, 2], count: 5) == [.init(lower: 2, upper: 2, count: 3)])
        // Spans that overflow float32, or are subnormal, still bin every value.
        #expect(TensorHistogram.bins([-3e38, 0, 3e38], count: 4).map(\.count).reduce(0, +) == 3)
        #expect(TensorHistogram.bins([0, .leastNonzeroMagnitude, 2 * .leastNonzeroMagnitude], count: 1000).map(\.count).reduce(0, +) == 3)
        #expect(TensorHistogram.bins([], count: 5).isEmpty)
    }

    @Test("a codebook tensor's levels: per-tensor values, per-channel ranges, and how many elements use each code")
    func levels() throws {
        let file = try LAQFile(bytes: try ExampleModels.demoMLP().encoded())
        #expect(file.tensors.filter { $0.encoding?.typeName == "codebook" }.count >= 2)
        for tensor in file.tensors where tensor.encoding?.typeName == "codebook" {
            let histogram = try TensorHistogram.of(tensor, in: file)
            let codebook = try file.codebook(tensor)
            let levels = try #require(histogram.levels)
            #expect(levels.count == codebook.layout.levelCount)
            #expect(levels.map(\.count).reduce(0, +) == tensor.elementCount, "\(tensor.name)")
            for level in levels {
                #expect(level.count == codebook.codes.filter { Int($0) == level.code }.count)
                let tables = codebook.levels.count / codebook.layout.levelCount
                let values = (0..<tables).map { codebook.levels[$0 * codebook.layout.levelCount + level.code] }
                #expect(level.minimum == values.min() && level.maximum == values.max())
            }
        }
    }
}
