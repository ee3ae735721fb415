#!/usr/bin/env python3
"""Runs laq on the zoo that tools/zoo/make_zoo.py wrote and compares it with Keras.

    python3 tools/zoo/check_zoo.py [--zoo out/zoo] [--laq .build/debug/laq] [--ci] [--only NAME ...]
                                   [--tolerance 1e-4] [--quantize twn] [--every-command]

For every model of `zoo.json` (with --ci, the CI subset) and every layout present (`.keras`,
`.h5`, `.weights.h5` with `.config.json`): `laq import`, `laq run` on the stored inputs, the
largest difference from Keras' own predictions relative to the largest output magnitude (of
each output, for a model with named outputs), then
`laq quantize --method M --one-shot` and `laq run` of the quantized file; with --every-command,
for `.keras` files, one lat2a calibration epoch on the stored inputs against Keras' outputs and a
run of that file, its export to h5, npz and safetensors, `laq diff --data` against the float
file (exit 1: they differ), and `laq bench --json` of both files (the calibrated one with int8
activations). Prints a Markdown table
(model, parameters, layout, import seconds, max error, quantized size) and exits 1 when any
import fails or an error exceeds the tolerance. Needs numpy only (no Keras).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def run(command):
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    return result, time.monotonic() - started


def first_lines(text, count=3):
    return " / ".join(line.strip() for line in text.strip().splitlines()[:count])


def check(laq, zoo, model, file, tolerance, method, scratch, every=False):
    """One model file: its name is the file's without the layout (`tfk_` files are tf.keras 2's)."""
    layout = next(suffix for suffix in (".weights.h5", ".keras", ".h5") if file.endswith(suffix))
    name = file[: -len(layout)]
    source = os.path.join(zoo, file)
    if not os.path.exists(source):
        return None
    command = [laq, "import", source, "-o", os.path.join(scratch, "m.laq")]
    if layout == ".weights.h5":
        command += ["--config", os.path.join(zoo, name + ".config.json")]
    result, seconds = run(command)
    row = {"model": name, "layout": layout, "parameters": model.get("parameters", 0), "import_s": seconds}
    if result.returncode != 0:
        row["failure"] = "import: " + first_lines(result.stderr)
        return row
    io_path = os.path.join(zoo, name + ".io.npz")
    io = np.load(io_path)
    # The inputs: `x`, or arrays named after the model's inputs (laq run picks them by name).
    # Keras' outputs: `y`, or `y_<name>` for named outputs, which laq run writes as y.<name>.npy.
    expected = {"": io["y"]} if "y" in io else {key[2:]: io[key] for key in io.files if key.startswith("y_")}

    def outputs(stem):
        return {output: os.path.join(scratch, f"{stem}.npy" if output == "" else f"{stem}.{output}.npy") for output in expected}
    result, _ = run([laq, "run", os.path.join(scratch, "m.laq"), "--input", io_path, "-o", os.path.join(scratch, "y.npy")])
    if result.returncode != 0:
        row["failure"] = "run: " + first_lines(result.stderr)
        return row
    errors = []
    for output, path in outputs("y").items():
        y, keras = np.load(path), expected[output]
        if y.shape != keras.shape:
            row["failure"] = f"output {output or 'y'} shape {y.shape}, Keras {keras.shape}"
            return row
        errors.append(float(np.abs(y - keras).max() / max(np.abs(keras).max(), 1e-12)))
    row["error"] = max(errors)
    if row["error"] > tolerance:
        row["failure"] = f"max error {row['error']:.2e} > {tolerance:g}"
    if method:
        quantized = os.path.join(scratch, "q.laq")
        result, _ = run([laq, "quantize", os.path.join(scratch, "m.laq"), "-o", quantized, "--method", method, "--one-shot"])
        if result.returncode != 0:
            row["failure"] = "quantize: " + first_lines(result.stderr)
            return row
        result, _ = run([laq, "run", quantized, "--input", io_path, "-o", os.path.join(scratch, "q.npy")])
        if result.returncode != 0 or not all(np.isfinite(np.load(path)).all() for path in outputs("q").values()):
            row["failure"] = "quantized run: " + first_lines(result.stderr or "non-finite outputs")
            return row
        row["quantized_bytes"] = os.path.getsize(quantized)
        row["float_bytes"] = os.path.getsize(os.path.join(scratch, "m.laq"))
    if every and layout == ".keras":
        # One calibration epoch on the stored inputs against Keras' outputs: soft labels
        # (categorical cross-entropy) for a classifier, squared error for a backbone's first output.
        output = sorted(expected)[0]
        command = [laq, "quantize", os.path.join(scratch, "m.laq"), "-o", os.path.join(scratch, "c.laq"), "--method", "lat2a",
                   "--calib", io_path, "--batch", "2", "--y-key", "y" if output == "" else f"y_{output}"]
        command += ["--loss", "categorical_crossentropy"] if output == "" and model.get("family") not in ("keras_hub",) else ["--loss", "mse"]
        if len(expected) > 1:
            command += ["--loss-output", output]
        result, _ = run(command)
        if result.returncode != 0:
            row["failure"] = "calibrate: " + first_lines(result.stderr)
            return row
        result, _ = run([laq, "run", os.path.join(scratch, "c.laq"), "--input", io_path, "-o", os.path.join(scratch, "c.npy")])
        if result.returncode != 0 or not all(np.isfinite(np.load(path)).all() for path in outputs("c").values()):
            row["failure"] = "calibrated run: " + first_lines(result.stderr or "non-finite outputs")
            return row
        row["calibrated"] = True
        # Export every format, and diff the quantized file against the float one on the inputs.
        for kind in ("h5", "npz", "safetensors"):
            result, _ = run([laq, "export", os.path.join(scratch, "c.laq"), "--to", kind, "-o", os.path.join(scratch, f"c.{kind}")])
            if result.returncode != 0:
                row["failure"] = f"export {kind}: " + first_lines(result.stderr)
                return row
        result, _ = run([laq, "diff", os.path.join(scratch, "m.laq"), os.path.join(scratch, "c.laq"), "--data", io_path, "--json"])
        if result.returncode != 1:  # diff(1): 1 = the files differ
            row["failure"] = f"diff: exit {result.returncode}: " + first_lines(result.stderr)
            return row
        # laq bench --json on the float and the calibrated file (int8 activations), one sample.
        for path, activations in (("m.laq", "float32"), ("c.laq", "int8")):
            result, _ = run([laq, "bench", os.path.join(scratch, path), "--input", io_path, "--activations", activations,
                             "--warmup", "1", "--iterations", "3", "--json"])
            try:
                report = json.loads(result.stdout) if result.returncode == 0 else {}
            except json.JSONDecodeError:
                report = {}
            if not report.get("median_ms", 0) > 0 or not report.get("multiply_adds", 0) > 0:
                row["failure"] = f"bench {path}: exit {result.returncode}: " + first_lines(result.stderr or result.stdout)
                return row
            row[f"bench_{activations}_ms"] = report["median_ms"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="out/zoo")
    parser.add_argument("--laq", default=".build/debug/laq")
    parser.add_argument("--ci", action="store_true", help="only the CI subset")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--quantize", default="twn", help="method for the one-shot quantization ('' to skip)")
    parser.add_argument("--every-command", action="store_true",
                        help="also, for each .keras model: one lat2a calibration epoch and a run, export to h5, npz and safetensors, diff with data, bench")
    args = parser.parse_args()
    with open(os.path.join(args.zoo, "zoo.json")) as f:
        zoo = json.load(f)["models"]
    models = [m for key, m in zoo.items() if (not args.ci or m.get("ci")) and (not args.only or m["name"] in args.only or key in args.only)]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in sorted(models, key=lambda m: (m["family"], m["parameters"])):
            for file in sorted(model["files"]):
                if not file.endswith((".keras", ".h5")):
                    continue
                row = check(args.laq, args.zoo, model, file, args.tolerance, args.quantize, scratch, args.every_command)
                if row is None:
                    continue
                rows.append(row)
                status = row.get("failure") or f"max error {row['error']:.1e}"
                print(f"{file}: {status}", file=sys.stderr, flush=True)
    print("| model | parameters | layout | import s | max error | float32 .laq | quantized .laq |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        error = f"{row['error']:.1e}" if "error" in row else "—"
        sizes = [f"{row[k] / 2**20:.2f} MiB" if k in row else "—" for k in ("float_bytes", "quantized_bytes")]
        failure = f" **{row['failure']}**" if "failure" in row else ""
        print(f"| {row['model']} | {row['parameters']:,} | {row['layout']} | {row['import_s']:.2f} | {error}{failure} | {sizes[0]} | {sizes[1]} |")
    failed = [r for r in rows if "failure" in r]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
