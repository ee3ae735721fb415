import LAQFormat

/// Deterministic example models that exercise every encoding of the format.
///
/// These are not trained models and their codebooks do not come from laq's quantizers: levels
/// are round-to-nearest against max-|w| grids, just enough to give realistic payloads for
/// `laq demo`, tests, benchmarks and fuzz seeds.
public enum ExampleModels {
    /// A Fashion-MNIST-shaped MLP (784-128-64-10 with batch normalization) whose layers use
    /// 1-bit, ternary base-3 per channel and 3-bit codebooks, float32, float16 and bfloat16, plus
    /// Adam moments for one kernel. A few hundred KB.
    public static func demoMLP(seed: UInt64 = 1) throws -> LAQWriter {
        var random = SeededGenerator(seed: seed)
        var writer = LAQWriter(
            model: ModelInfo(
                name: "demo_mlp", framework: "keras", architecture: sequentialConfig(),
                inputs: [TensorDescription(name: "input", shape: [nil, 784])],
                outputs: [TensorDescription(name: "dense_3", shape: [nil, 10])],
                training: ["loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]]),
            provenance: [
                ProvenanceRecord(
                    tool: "laq \(LAQVersion.string)", command: "demo", parameters: ["seed": .int(Int64(seed))])
            ],
            metadata: ["description": "laq demo model: random weights in every encoding"])

        let kernel1 = random.normals(784 * 128, std: 0.05)
        try writer.add(TensorRecord(name: "dense_1/kernel", shape: [784, 128], axes: ["in", "out"], data: binary(kernel1)))
        try writer.add(TensorRecord(name: "dense_1/bias", shape: [128], data: .float(random.normals(128, std: 0.01), as: .float32)))
        try writer.add(
            TensorRecord(
                name: "dense_1/kernel/m", shape: [784, 128], role: .optimizer(of: "dense_1/kernel", slot: "m"),
                data: .float(random.normals(784 * 128, std: 1e-3), as: .float16)))
        try writer.add(
            TensorRecord(
                name: "dense_1/kernel/v", shape: [784, 128], role: .optimizer(of: "dense_1/kernel", slot: "v"),
                data: .float(random.normals(784 * 128, std: 1e-4).map { $0 * $0 }, as: .bfloat16)))
        for (name, value) in [("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0)] as [(String, Float)] {
            try writer.add(
                TensorRecord(name: "batch_normalization/\(name)", shape: [128],
                             data: .float((0..<128).map { _ in value + random.normal(std: 0.01) }, as: .float32)))
        }
        let kernel2 = random.normals(128 * 64, std: 0.1)
        try writer.add(
            TensorRecord(name: "dense_2/kernel", shape: [128, 64], axes: ["in", "out"],
                         data: ternaryPerChannel(kernel2, rows: 128, columns: 64)))
        try writer.add(TensorRecord(name: "dense_2/bias", shape: [64], data: .float(random.normals(64, std: 0.01), as: .float16)))
        let kernel3 = random.normals(64 * 10, std: 0.2)
        try writer.add(TensorRecord(name: "dense_3/kernel", shape: [64, 10], axes: ["in", "out"], data: linear(kernel3, bits: 3)))
        try writer.add(TensorRecord(name: "dense_3/bias", shape: [10], data: .float(random.normals(10, std: 0.01), as: .float32)))
        return writer
    }

    /// Two-scale ternary codes per output channel (last axis), base-3 packed: levels
    /// `[−mean|w⁻|, 0, +mean|w⁺|]` over weights above 0.7·mean|w| of the column.
    public static func ternaryPerChannel(_ values: [Float], rows: Int, columns: Int) -> TensorData {
        var levels: [Float] = []
        var codes = [UInt8](repeating: 1, count: values.count)
        for column in 0..<columns {
            let indices = (0..<rows).map { $0 * columns + column }
            let threshold = 0.7 * indices.map { abs(values[$0]) }.reduce(0, +) / Float(rows)
            let positive = indices.filter { values[$0] > threshold }
            let negative = indices.filter { values[$0] < -threshold }
            let alpha = positive.isEmpty ? 0 : positive.map { values[$0] }.reduce(0, +) / Float(positive.count)
            let beta = negative.isEmpty ? 0 : -negative.map { values[$0] }.reduce(0, +) / Float(negative.count)
            levels += [-beta, 0, alpha]
            for index in positive { codes[index] = 2 }
            for index in negative { codes[index] = 0 }
        }
        return .codebook(.base3(axis: 1), levels: levels, codes: codes)
    }

    /// Round to nearest of 2^bits evenly spaced levels over [−max|w|, max|w|], per tensor.
    public static func linear(_ values: [Float], bits: Int) -> TensorData {
        let top = values.map(abs).max() ?? 0
        let count = 1 << bits
        let step = count > 1 ? 2 * top / Float(count - 1) : 0
        let levels = (0..<count).map { -top + Float($0) * step }
        let codes = values.map { value -> UInt8 in
            guard step > 0 else { return 0 }
            return UInt8(max(0, min(Float(count - 1), ((value + top) / step).rounded())))
        }
        return .codebook(.bits(bits), levels: levels, codes: codes)
    }

    /// Sign codes with one scale mean|w| (BWN-style), 1 bit per weight.
    public static func binary(_ values: [Float]) -> TensorData {
        let scale = values.isEmpty ? 0 : values.map(abs).reduce(0, +) / Float(values.count)
        return .codebook(.bits(1), levels: [-scale, scale], codes: values.map { $0 >= 0 ? 1 : 0 })
    }

    static func sequentialConfig() -> JSONValue {
        func dense(_ name: String, _ units: Int, _ activation: String) -> JSONValue {
            ["class_name": "Dense", "config": ["name": .string(name), "units": .int(Int64(units)), "activation": .string(activation), "use_bias": true]]
        }
        return [
            "class_name": "Sequential",
            "config": [
                "name": "demo_mlp",
                "layers": [
                    ["class_name": "InputLayer", "config": ["name": "input", "batch_shape": [nil, 784], "dtype": "float32"]],
                    dense("dense_1", 128, "linear"),
                    ["class_name": "BatchNormalization", "config": ["name": "batch_normalization", "epsilon": 0.001, "momentum": 0.99]],
                    ["class_name": "Activation", "config": ["name": "activation", "activation": "relu"]],
                    dense("dense_2", 64, "relu"),
                    dense("dense_3", 10, "softmax"),
                ],
            ],
        ]
    }
}
