import LAQFormat

extension ExampleModels {
    /// A small file (about 2 KB) with one tensor per encoding case: the three float encodings,
    /// a zlib-compressed payload, a scalar, an empty tensor, codebooks with k = 1…8 bits per
    /// tensor and per axis, base-3 per tensor and per axis (spec §6.6's worked example), and an
    /// optimizer slot. Pinned as `testdata/golden/every-encoding.laq`.
    public static func everyEncoding() throws -> LAQWriter {
        var writer = LAQWriter(
            model: ModelInfo(name: "every_encoding"),
            provenance: [ProvenanceRecord(tool: "laq \(LAQVersion.string)", command: "test-fixture")])
        try writer.add(TensorRecord(name: "float32/vector", shape: [3], data: .float([1.5, -2, 0], as: .float32)))
        try writer.add(
            TensorRecord(
                name: "float32/vector/v", shape: [3], role: .optimizer(of: "float32/vector", slot: "v"),
                data: .float([0.25, 1e-8, 0], as: .float32)))
        try writer.add(TensorRecord(name: "float16/matrix", shape: [2, 2], axes: ["in", "out"], data: .float([0.1, -65504, 1e-7, 3], as: .float16)))
        try writer.add(TensorRecord(name: "bfloat16/vector", shape: [5], data: .float([1, -1.00390625, 3.14159, -0.0, 1e30], as: .bfloat16)))
        try writer.add(TensorRecord(name: "zlib/zeros", shape: [16, 16], data: .float([Float](repeating: 0, count: 256), as: .float32)))
        try writer.add(TensorRecord(name: "scalar", shape: [], data: .float([42], as: .float32)))
        try writer.add(TensorRecord(name: "empty", shape: [0, 4], data: .float([], as: .float32)))
        for bits in 1...8 {
            let count = 7 + bits  // odd lengths: codes straddle bytes and leave padding
            let levels = min(1 << bits, 5 + bits)
            let codes = (0..<count).map { UInt8(($0 * 7 + bits) % levels) }
            let table = (0..<levels).map { Float($0) * 0.5 - Float(levels) * 0.25 }
            try writer.add(TensorRecord(name: "codebook/k\(bits)", shape: [count], data: .codebook(.bits(bits, levels: levels), levels: table, codes: codes)))
        }
        // Per-axis: 3 rows × 4 columns, one table per column, 2-bit codes, 3 levels.
        let perColumn: [Float] = [-1, 0, 1, -0.5, 0, 0.5, -0.25, 0, 0.25, -2, 0, 2]
        try writer.add(
            TensorRecord(
                name: "codebook/k2-axis1", shape: [3, 4], axes: ["in", "out"],
                data: .codebook(.bits(2, levels: 3, axis: 1), levels: perColumn, codes: [0, 1, 2, 0, 2, 2, 1, 1, 0, 0, 2, 1])))
        // Per-axis along the first dimension: 2 tables of 8 levels, 3-bit codes.
        try writer.add(
            TensorRecord(
                name: "codebook/k3-axis0", shape: [2, 3],
                data: .codebook(.bits(3, axis: 0), levels: (0..<16).map { Float($0) - 8 }, codes: [7, 0, 3, 5, 6, 1])))
        try writer.add(
            TensorRecord(name: "base3/vector", shape: [7], data: .codebook(.base3(), levels: [-0.75, 0, 0.75], codes: [2, 0, 1, 1, 2, 1, 0])))
        // spec/FORMAT.md §6.6, the complete worked example.
        try writer.add(
            TensorRecord(
                name: "base3/spec-example", shape: [2, 3], axes: ["in", "out"],
                data: .codebook(.base3(axis: 1), levels: [-1, 0, 2, -0.5, 0, 0.5, -3, 0, 1], codes: [2, 0, 1, 0, 2, 2])))
        return writer
    }
}
