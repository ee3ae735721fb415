// `laq-bench --packed [--size 4096] [--repeats 30] [--batches 1,16,64] [--only TEXT] [--json]`
// (`--only`: the layouts whose name contains TEXT, e.g. "int8", on the same data): products with
// a quantized N×N matrix executed from its packed codes against the same matrix in float32
// through OpenBLAS (the engine's path: sgemv at batch 1, sgemm above), measured side by side in
// one run. Layouts:
// binary, ternary with three random levels (base 3, per tensor; per channel) and with α·{−1, 0, 1}
// per channel (lat's, twn's), 2-bit per channel,
// 3-bit linear per channel and 4-bit linear per tensor (bit planes), 3-bit logarithmic per
// channel (signed planes), 3-bit with random levels (packed bytes); binary, both ternaries and
// 2-, 3- and 4-bit linear per channel with int8 activations.
// Plane matrices run on SIMD kernels: on the planes for small batches (and one plane, and int8
// activations, at any batch), on panels decoded from them for larger ones (AVX-512).
import Foundation
import LAQEngine
import LAQExamples
import LAQFormat

struct PackedCase {
    var name: String
    var layout: CodebookLayout
    var activations: ActivationPrecision = .float32
    /// Levels α·(2c/(L − 1) − 1), as `laq` linear and `rtn` write them (bit planes); otherwise random.
    var linear = false
    /// Levels α·{0, ±¼, ±½, ±1}, as `laq --levels log` writes them (signed planes).
    var log = false
    /// Ternary levels α·{−1, 0, 1}, as `lat` and `twn` write them (with int8 activations: one
    /// signed dot product per word pair).
    var symmetric = false
}

func packedBenchmark(size: Int, repeats: Int, batches: [Int] = [1, 2, 4, 8, 16, 32, 64], only: String? = nil, json: Bool) {
    let cases = [
        PackedCase(name: "binary (per tensor)", layout: .bits(1, levels: 2)),
        PackedCase(name: "ternary (base 3, per tensor)", layout: .base3(levels: 3)),
        PackedCase(name: "ternary (base 3, per channel)", layout: .base3(levels: 3, axis: 1)),
        PackedCase(name: "binary, int8 activations", layout: .bits(1, levels: 2), activations: .int8),
        PackedCase(name: "ternary, int8 activations", layout: .base3(levels: 3), activations: .int8),
        PackedCase(name: "ternary ±α (per channel)", layout: .base3(levels: 3, axis: 1), symmetric: true),
        PackedCase(name: "ternary ±α, int8 activations", layout: .base3(levels: 3, axis: 1), activations: .int8, symmetric: true),
        PackedCase(name: "2-bit (per channel)", layout: .bits(2, levels: 3, axis: 1)),
        PackedCase(name: "3-bit linear (per channel)", layout: .bits(3, levels: 7, axis: 1), linear: true),
        PackedCase(name: "2-bit linear, int8 activations", layout: .bits(2, levels: 4, axis: 1), activations: .int8, linear: true),
        PackedCase(name: "3-bit linear, int8 activations", layout: .bits(3, levels: 7, axis: 1), activations: .int8, linear: true),
        PackedCase(name: "4-bit linear, int8 activations", layout: .bits(4, levels: 15, axis: 1), activations: .int8, linear: true),
        PackedCase(name: "4-bit linear (per tensor)", layout: .bits(4, levels: 15), linear: true),
        PackedCase(name: "3-bit log (per channel)", layout: .bits(3, levels: 7, axis: 1), log: true),
        PackedCase(name: "3-bit, random levels", layout: .bits(3, levels: 7)),
    ]
    var random = SeededGenerator(seed: 7)
    var rows: [[String: Any]] = []
    if !json {
        print("packed \(size)×\(size) products against float32 OpenBLAS, median of \(repeats) (ms; ratio > 1: packed is faster); kernels: \(MatrixKernel.instructionSet)")
        print("layout                          batch   f32 ms  packed ms  f32/packed   f32 MiB  packed MiB")
    }
    for item in cases {
        let tables = item.layout.axis == nil ? 1 : size
        var levels = (0..<(tables * item.layout.levelCount)).map { _ in Float(Int(random.next() % 2001) - 1000) / 10_000 }
        if item.log {
            let units: [Float] = [-1, -0.5, -0.25, 0, 0.25, 0.5, 1]
            for table in 0..<tables {
                let alpha = Float(1 + random.next() % 1000) / 10_000
                for code in 0..<7 { levels[table * 7 + code] = alpha * units[code] }
            }
        }
        if item.symmetric {
            for table in 0..<tables {
                let alpha = Float(1 + random.next() % 1000) / 10_000
                for code in 0..<3 { levels[table * 3 + code] = alpha * Float(code - 1) }
            }
        }
        if item.linear {
            let top = Double(item.layout.levelCount - 1)
            for table in 0..<tables {
                let alpha = Double(1 + random.next() % 1000) / 10_000
                for code in 0..<item.layout.levelCount { levels[table * item.layout.levelCount + code] = Float(alpha * (2 * Double(code) / top - 1)) }
            }
        }
        let codes = (0..<(size * size)).map { _ in UInt8(random.next() % UInt64(item.layout.levelCount)) }
        let codebook = PackedCodebook(layout: item.layout, shape: [size, size], levels: levels, packed: item.layout.pack(codes))
        if let only, !item.name.contains(only) { continue }
        let packed = MatrixKernel(packed: codebook, activations: item.activations)!
        let dense = MatrixKernel(float: codebook.dequantized(), rows: size, columns: size)
        for batch in batches {
            let a = (0..<(batch * size)).map { _ in Float(Int(random.next() % 2001) - 1000) / 1000 }
            var c = [Float](repeating: 0, count: batch * size)
            let count = batch >= 64 ? max(3, repeats / 5) : repeats
            // Interleaved warm-up, then each measured in turn.
            dense.multiply(a, m: batch, into: &c)
            packed.multiply(a, m: batch, into: &c)
            let f32 = median(count) { dense.multiply(a, m: batch, into: &c) }
            let codesTime = median(count) { packed.multiply(a, m: batch, into: &c) }
            let f32MiB = Double(size * size * 4) / 1_048_576
            let packedMiB = Double(packed.residentBytes) / 1_048_576
            rows.append(["layout": item.name, "activations": item.activations.rawValue, "batch": batch, "f32_ms": f32 * 1000, "packed_ms": codesTime * 1000,
                         "ratio": f32 / codesTime, "f32_mib": f32MiB, "packed_mib": packedMiB])
            if !json {
                print(item.name.padding(toLength: 32, withPad: " ", startingAt: 0)
                      + String(format: "%5d %8.3f %10.3f %11.2f %9.1f %11.2f", batch, f32 * 1000, codesTime * 1000, f32 / codesTime, f32MiB, packedMiB))
            }
        }
    }
    if json, let data = try? JSONSerialization.data(withJSONObject: ["size": size, "repeats": repeats, "kernels": MatrixKernel.instructionSet, "results": rows], options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
