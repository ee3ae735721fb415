#!/usr/bin/env python3
"""Products with a 4096×4096 weight matrix (batch 1, or --batch 1…64): laq's packed ternary
kernels (float32 and int8 activations) and float32 OpenBLAS (`laq-bench --packed --json`)
against ONNX Runtime's int8 path, measured in one run.

ONNX Runtime: a float32 MatMul model quantized with `quantize_dynamic` (int8 weights, the
activations quantized per call: the MatMulInteger / DynamicQuantizeMatMul path ORT users deploy
for int8 weights on CPU), and the float32 MatMul model itself, 2 intra-op threads.

    tools/bench/compare_ort.py [--size 4096] [--batch 1] [--repeats 50]    (after `tools/setup --bench`)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_ms(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1, choices=[1, 2, 4, 8, 16, 32, 64],
                        help="rows of the input (laq-bench --packed measures these batches)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "laq-bench"))
    args = parser.parse_args()
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        sys.exit(f"compare_ort: {error}: run tools/setup --bench, then use .venv-bench/bin/python")

    n = args.size
    rng = np.random.default_rng(0)
    # Ternary weights like lat2a's: {−α, 0, +β}.
    weights = rng.choice(np.array([-0.05, 0.0, 0.06], np.float32), size=(n, n))
    batch = args.batch
    x = rng.standard_normal((batch, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    work = tempfile.mkdtemp(prefix="laq-ort-")
    fp32_path, int8_path = os.path.join(work, "fp32.onnx"), os.path.join(work, "int8.onnx")
    onnx.save(model, fp32_path)
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    results = {}
    for name, path in [("ORT float32", fp32_path), ("ORT int8 (dynamic)", int8_path)]:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        results[name] = median_ms(lambda: session.run(None, {"x": x}), args.repeats)

    laq = json.loads(subprocess.run([args.bench, "--packed", "--size", str(n), "--repeats", str(args.repeats), "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    for row in laq["results"]:
        if row["batch"] == batch and row["layout"] == "ternary (base 3, per tensor)":
            results["laq float32 (OpenBLAS)"] = row["f32_ms"]
            results["laq packed ternary"] = row["packed_ms"]
        if row["batch"] == batch and row["layout"] == "ternary, int8 activations":
            results["laq ternary, int8 act."] = row["packed_ms"]
        if row["batch"] == batch and row["layout"] == "ternary ±α (per channel)":
            results["laq ternary ±α"] = row["packed_ms"]
        if row["batch"] == batch and row["layout"] == "ternary ±α, int8 activations":
            results["laq ternary ±α, int8 act."] = row["packed_ms"]
    int8 = results["ORT int8 (dynamic)"]
    print(f"batch-{batch} product with a {n}×{n} matrix, median of {args.repeats} (ms), ORT {ort.__version__}, 2 threads; "
          f"laq kernels: {laq.get('kernels', '?')}")
    for name, ms in results.items():
        print(f"  {name:26s} {ms:8.3f} ms   {ms / int8:5.2f}× ORT int8")


if __name__ == "__main__":
    main()
