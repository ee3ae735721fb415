#!/usr/bin/env python3
"""A Keras model's inference speed in laq (`laq bench`) beside ONNX Runtime and Keras, measured
one after the other in one run on the same inputs, batch and thread count.

laq: the model imported as float32, and quantized one-shot with --method (default lat2a) and run
with float32 and int8 activations. ONNX Runtime: the Keras model converted with tf2onnx (float32),
and that model through `quantize_dynamic` (int8 weights, activations quantized per call). Keras:
`predict_on_batch` (TensorFlow backend). Every runtime gets --threads intra-op threads, runs
--warmup untimed batches and reports the median of --iterations. Ratios are the peer's median
time over laq's (above 1: laq is faster).

With --rounds R, laq float32 and ONNX Runtime float32, then the quantized model with int8
activations and ONNX Runtime int8, run R more times, alternating (each a `laq bench` process,
then the loaded session, --iterations each): on a machine whose speed changes from minute to
minute, the median of the R per-round ratios compares each pair under the same conditions.

    tools/bench/compare_peers.py MODEL.keras|MODEL.h5 [--batch 1] [--threads 2] [--iterations 50]
        [--warmup 5] [--method lat2a] [--length 128] [--rounds 0] [--json]
                                                  (after `tools/setup --peers`: .venv-peers/bin/python)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_ms(function, warmup, iterations):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    times.sort()
    middle = len(times) // 2
    return 1000 * (times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2)


def laq(binary, *arguments):
    result = subprocess.run([binary, *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"compare_peers: laq {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


def inputs_for(model, batch, length, np):
    """laq bench's random inputs: floats uniform in [0, 1), integer inputs 1; open dims `length`."""
    rng = np.random.default_rng(1)
    arrays = {}
    for tensor in model.inputs:
        shape = [batch] + [length if d is None else d for d in tensor.shape[1:]]
        dtype = str(tensor.dtype)
        if "int" in dtype or dtype == "bool":
            arrays[tensor.name.split(":")[0]] = np.ones(shape, dtype=np.int32)
        else:
            arrays[tensor.name.split(":")[0]] = rng.random(shape, dtype=np.float32)
    return arrays


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--method", default="lat2a", help="laq quantize --method for the packed rows")
    parser.add_argument("--length", type=int, default=128, help="length of open input dimensions")
    parser.add_argument("--laq", default=os.path.join(ROOT, ".build", "release", "laq"))
    parser.add_argument("--rounds", type=int, default=0, help="then alternate laq and ONNX Runtime (float32, then int8) this many times")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import numpy as np
        import onnxruntime as ort
        import tensorflow as tf
        import keras
        import tf2onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        import keras_hub  # noqa: F401  (registers keras_hub's layers and backbones for loading)
    except ImportError as error:
        sys.exit(f"compare_peers: {error}: run tools/setup --peers, then use .venv-peers/bin/python")
    if not os.access(args.laq, os.X_OK):
        sys.exit(f"compare_peers: {args.laq} is not built: swift build -c release --product laq")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = keras.saving.load_model(args.model, compile=False)
        arrays = inputs_for(model, args.batch, args.length, np)
        names = list(arrays)
        data = os.path.join(scratch, "inputs.npz")
        np.savez(data, **({"x": arrays[names[0]]} if len(names) == 1 else arrays))

        # laq: float32, then the quantized model with float32 and int8 activations.
        imported, packed = os.path.join(scratch, "model.laq"), os.path.join(scratch, "packed.laq")
        laq(args.laq, "import", args.model, "-o", imported)
        laq(args.laq, "quantize", imported, "-o", packed, "--method", args.method, "--one-shot")
        common = ["--batch", str(args.batch), "--input", data, "--threads", str(args.threads),
                  "--warmup", str(args.warmup), "--iterations", str(args.iterations), "--json"]
        timings = {}
        for label, path, activations in [("laq float32", imported, "float32"),
                                          (f"laq {args.method} float32", packed, "float32"),
                                          (f"laq {args.method} int8", packed, "int8")]:
            result = json.loads(laq(args.laq, "bench", path, "--activations", activations, *common))
            timings[label] = result["median_ms"]
            rows.append({"runtime": label, "median_ms": result["median_ms"]})

        # Keras predict_on_batch, with the inputs in the structure the model was built with.
        try:
            structure = model.input
        except (AttributeError, ValueError):  # a Sequential model loaded from a file, never called
            structure = model.inputs[0] if len(model.inputs) == 1 else model.inputs

        def structured(values):
            if isinstance(structure, dict):
                return {key: values[tensor.name.split(":")[0]] for key, tensor in structure.items()}
            if isinstance(structure, (list, tuple)):
                return [values[tensor.name.split(":")[0]] for tensor in structure]
            return values[structure.name.split(":")[0]]

        keras_input = structured(arrays)
        rows.append({"runtime": "Keras predict_on_batch",
                     "median_ms": median_ms(lambda: model.predict_on_batch(keras_input), args.warmup, args.iterations)})

        # ONNX Runtime: tf2onnx's float32 model, and quantize_dynamic's int8 one.
        fp32, int8 = os.path.join(scratch, "model.onnx"), os.path.join(scratch, "model.int8.onnx")
        signature = [tf.TensorSpec([None] + list(arrays[name].shape[1:]), tf.as_dtype(arrays[name].dtype), name=name) for name in names]
        function = tf.function(lambda *xs: model(structured(dict(zip(names, xs))), training=False))
        tf2onnx.convert.from_function(function, input_signature=signature, opset=17, output_path=fp32)
        # Constants the function captures as tensors rather than variables (Keras 3's
        # Normalization statistics in EfficientNet) become graph inputs named as their
        # placeholders: they are fed their values.
        captured = {inner.name: outer.numpy() for outer, inner in function.get_concrete_function(*signature).graph.captures
                    if outer.dtype != tf.resource and hasattr(outer, "numpy")}
        models = [("ONNX Runtime float32", fp32)]
        try:
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
            models.append(("ONNX Runtime int8 (quantize_dynamic)", int8))
        except Exception as error:  # ORT's quantizer refuses some tf2onnx graphs (ConvNeXt's Tensordot)
            print(f"compare_peers: ONNX Runtime's quantize_dynamic failed ({str(error).splitlines()[0][:240]}): no int8 row",
                  file=sys.stderr)
        sessions = {}
        for label, path in models:
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            feeds = {i.name: arrays[n] for i, n in zip(session.get_inputs(), names)}
            feeds.update({i.name: captured[i.name] for i in session.get_inputs() if i.name in captured})
            sessions[label] = (session, feeds)
            rows.append({"runtime": label, "median_ms": median_ms(lambda: session.run(None, feeds), args.warmup, args.iterations)})

        # Alternating rounds: laq float32, then ONNX Runtime float32, then the int8 pair, under
        # the same conditions.
        rounds = []
        session, feeds = sessions["ONNX Runtime float32"]
        session8, feeds8 = sessions.get("ONNX Runtime int8 (quantize_dynamic)", (None, None))
        for _ in range(args.rounds):
            laq_ms = json.loads(laq(args.laq, "bench", imported, "--activations", "float32", *common))["median_ms"]
            ort_ms = median_ms(lambda: session.run(None, feeds), args.warmup, args.iterations)
            round_ = {"laq_float32_ms": laq_ms, "ort_float32_ms": ort_ms, "ort_over_laq": ort_ms / laq_ms}
            if session8 is not None:
                laq8_ms = json.loads(laq(args.laq, "bench", packed, "--activations", "int8", *common))["median_ms"]
                ort8_ms = median_ms(lambda: session8.run(None, feeds8), args.warmup, args.iterations)
                round_.update({"laq_int8_ms": laq8_ms, "ort_int8_ms": ort8_ms, "ort_int8_over_laq_int8": ort8_ms / laq8_ms})
            rounds.append(round_)

    best_laq = min(timings.values())
    for row in rows:
        row["samples_per_second"] = args.batch / (row["median_ms"] / 1000)
        row["time_over_laq_float32"] = row["median_ms"] / timings["laq float32"]
        row["time_over_best_laq"] = row["median_ms"] / best_laq
    report = {"model": args.model, "batch": args.batch, "threads": args.threads, "iterations": args.iterations,
              "warmup": args.warmup, "method": args.method, "runtimes": rows}
    def middle(values):
        values = sorted(values)
        return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
    if rounds:
        report["rounds"] = rounds
        report["rounds_median_ort_over_laq"] = middle([r["ort_over_laq"] for r in rounds])
        if "ort_int8_over_laq_int8" in rounds[0]:
            report["rounds_median_ort_int8_over_laq_int8"] = middle([r["ort_int8_over_laq_int8"] for r in rounds])
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.model}: batch {args.batch}, {args.threads} threads, median of {args.iterations} after {args.warmup} warm-up")
    print(f"{'runtime':40} {'median ms':>10} {'samples/s':>11} {'÷ laq float32':>14} {'÷ best laq':>11}")
    for row in rows:
        print(f"{row['runtime']:40} {row['median_ms']:10.3f} {row['samples_per_second']:11.1f} "
              f"{row['time_over_laq_float32']:14.2f} {row['time_over_best_laq']:11.2f}")
    if rounds:
        print(f"{len(rounds)} alternating rounds, laq float32 / ONNX Runtime float32 ms (ORT ÷ laq):")
        print("  " + "   ".join(f"{r['laq_float32_ms']:.2f} / {r['ort_float32_ms']:.2f} ({r['ort_over_laq']:.2f})" for r in rounds))
        print(f"  median of the rounds' ratios: {report['rounds_median_ort_over_laq']:.2f}; laq float32 "
              f"{middle([r['laq_float32_ms'] for r in rounds]):.2f} ms, ONNX Runtime float32 {middle([r['ort_float32_ms'] for r in rounds]):.2f} ms")
        if "ort_int8_over_laq_int8" not in rounds[0]:
            return
        print(f"laq {args.method} int8 / ONNX Runtime int8 ms (ORT ÷ laq):")
        print("  " + "   ".join(f"{r['laq_int8_ms']:.2f} / {r['ort_int8_ms']:.2f} ({r['ort_int8_over_laq_int8']:.2f})" for r in rounds))
        print(f"  median of the rounds' ratios: {report['rounds_median_ort_int8_over_laq_int8']:.2f}; laq int8 "
              f"{middle([r['laq_int8_ms'] for r in rounds]):.2f} ms, ONNX Runtime int8 {middle([r['ort_int8_ms'] for r in rounds]):.2f} ms")


if __name__ == "__main__":
    main()
