// `laq-bench --panels`: a convolution's product on packed panels (``MatrixKernel(panels:)``,
// laq's AVX-512 or AVX2 kernel, panels whatever the shape) against OpenBLAS' sgemm on the same matrices
// (``MatrixKernel(float:)``: laq's path for a float32 kernel, which takes laq's short-inner kernel
// for K ≤ 16, N ≤ 64), one thread each, on the im2col shapes of ResNet50 and MobileNetV2
// at batch 1 (M × K · K × N) and some larger ones. Medians of the repeats, GFLOP/s.
import Foundation
import LAQEngine

func panelBenchmark(repeats: Int, json: Bool) {
    Parallel.configure(threads: 1)
    let shapes = [(3136, 576, 64), (784, 1152, 128), (196, 2304, 256), (49, 4608, 512), (3136, 256, 64), (12544, 27, 32),
                  (12544, 16, 96), (3136, 144, 24), (12544, 32, 16), (4096, 256, 128), (6272, 128, 512), (12544, 128, 512),
                  (50176, 64, 256), (50176, 576, 64), (3136, 96, 40), (3136, 192, 48),
                  (67600, 9, 32), (12544, 9, 32), (3136, 16, 64)]
    var rows: [[String: Any]] = []
    if !json { print("laq-bench --panels: one thread, median of \(repeats), GFLOP/s (M × K · K × N)") }
    for (m, k, n) in shapes {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int(state >> 40) % 2001 - 1000) / 1000
        }
        let a = (0..<(m * k)).map { _ in random() }, w = (0..<(k * n)).map { _ in random() }
        guard let panels = MatrixKernel(panels: w, rows: k, columns: n, anyShape: true) else {
            print("laq-bench --panels: this CPU has no AVX2; convolutions multiply with OpenBLAS")
            return
        }
        let blas = MatrixKernel(float: w, rows: k, columns: n)
        var c = [Float](repeating: 0, count: m * n)
        blas.multiply(a, m: m, into: &c)
        panels.multiply(a, m: m, into: &c)
        let blasTime = median(repeats) { blas.multiply(a, m: m, into: &c) }
        let panelTime = median(repeats) { panels.multiply(a, m: m, into: &c) }
        let flops = 2.0 * Double(m * k * n)
        rows.append(["m": m, "k": k, "n": n, "float_path_gflops": flops / blasTime / 1e9, "panels_gflops": flops / panelTime / 1e9,
                     "ratio": blasTime / panelTime])
        if !json {
            print(String(format: "%6d × %5d · %5d × %4d   float path %6.1f   panels %6.1f   %.2f×", m, k, k, n,
                         flops / blasTime / 1e9, flops / panelTime / 1e9, blasTime / panelTime))
        }
    }
    if json, let data = try? JSONSerialization.data(withJSONObject: ["threads": 1, "shapes": rows], options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
