// `laq-bench --convolutions`: laq's float32 convolutions on panels (``MatrixKernel/convolve``,
// the kernel a Conv2D layer runs with, + bias and ReLU6 as it stores) on one thread, on the
// shapes of ResNet50's and MobileNetV2's layers (and a few 3×3 layers of DenseNet121, VGG16 and
// fewer channels) at batch 1 (stride 1, "same" padding), 3×3 kernels directly and by Winograd's
// transforms. Medians of the repeats, multiply-adds per second of the direct kernel.
import Foundation
import LAQEngine

func convolutionBenchmark(repeats: Int, json: Bool) {
    Parallel.configure(threads: 1)
    // (model, size, kernel, channels in, out)
    let shapes: [(String, Int, Int, Int, Int)] = [
        ("ResNet50", 56, 1, 64, 64), ("ResNet50", 56, 3, 64, 64), ("ResNet50", 56, 1, 64, 256), ("ResNet50", 56, 1, 256, 64),
        ("ResNet50", 28, 3, 128, 128), ("ResNet50", 28, 1, 128, 512), ("ResNet50", 28, 1, 512, 128),
        ("ResNet50", 14, 3, 256, 256), ("ResNet50", 14, 1, 256, 1024), ("ResNet50", 14, 1, 1024, 256),
        ("ResNet50", 7, 3, 512, 512), ("ResNet50", 7, 1, 512, 2048), ("ResNet50", 7, 1, 2048, 512),
        ("MobileNetV2", 112, 1, 16, 96), ("MobileNetV2", 56, 1, 24, 144), ("MobileNetV2", 56, 1, 144, 24),
        ("MobileNetV2", 28, 1, 32, 192), ("MobileNetV2", 28, 1, 192, 32), ("MobileNetV2", 14, 1, 64, 384),
        ("MobileNetV2", 14, 1, 384, 64), ("MobileNetV2", 14, 1, 96, 576), ("MobileNetV2", 14, 1, 576, 96),
        ("MobileNetV2", 7, 1, 160, 960), ("MobileNetV2", 7, 1, 960, 160), ("MobileNetV2", 7, 1, 960, 320),
        ("MobileNetV2", 7, 1, 320, 1280),
        // 3×3 layers of other families, and few channels (where the transforms start to pay).
        ("DenseNet121", 56, 3, 128, 32), ("DenseNet121", 7, 3, 128, 32), ("VGG16", 224, 3, 64, 64), ("small", 56, 3, 16, 16),
        ("small", 56, 3, 32, 32), ("small", 28, 3, 16, 64),
    ]
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func random() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int(state >> 40) % 2001 - 1000) / 1000
    }
    var rows: [[String: Any]] = []
    if !json {
        print("laq-bench --convolutions: one thread, batch 1, median of \(repeats), \(MatrixKernel.instructionSet) kernels")
    }
    for (model, size, kernel, channels, filters) in shapes {
        let k = kernel * kernel * channels
        let x = (0..<(size * size * channels)).map { _ in random() }, w = (0..<(k * filters)).map { _ in random() }
        let bias = (0..<filters).map { _ in random() }
        guard let panels = MatrixKernel(panels: w, rows: k, columns: filters, anyShape: true) else {
            print("laq-bench --convolutions: this CPU has no AVX2; convolutions multiply with OpenBLAS")
            return
        }
        var c = [Float](repeating: 0, count: size * size * filters)
        _ = panels.convolve(x, images: 1, size: (size, size), kernel: (kernel, kernel), bias: bias, into: &c)
        let time = median(repeats) { _ = panels.convolve(x, images: 1, size: (size, size), kernel: (kernel, kernel), bias: bias, into: &c) }
        let rate = Double(size * size * k * filters) / time
        var row: [String: Any] = ["model": model, "size": size, "kernel": kernel, "channels": channels, "filters": filters, "ms": time * 1000,
                                  "multiply_adds_per_second": rate]
        // A 3×3 kernel by Winograd's transforms too, as a layer runs it: its time, and the
        // direct kernel's time over it.
        var winogradText = ""
        if kernel == 3, let transformed = MatrixKernel(winograd: w, channels: channels, filters: filters) {
            var d = [Float](repeating: 0, count: size * size * filters)
            _ = transformed.convolve(x, images: 1, size: (size, size), kernel: (3, 3), bias: bias, into: &d)
            let fast = median(repeats) { _ = transformed.convolve(x, images: 1, size: (size, size), kernel: (3, 3), bias: bias, into: &d) }
            row["winograd_ms"] = fast * 1000
            row["winograd_speedup"] = time / fast
            winogradText = String(format: "   Winograd %8.3f ms (%.2f×)", fast * 1000, time / fast)
        }
        rows.append(row)
        if !json {
            print(String(format: "%-12@ %3d² %d×%d %4d → %4d   %8.3f ms   %5.1f G multiply-adds/s", model, size, kernel, kernel, channels,
                         filters, time * 1000, rate / 1e9) + winogradText)
        }
    }
    if json, let data = try? JSONSerialization.data(withJSONObject: ["threads": 1, "shapes": rows],
                                                    options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
