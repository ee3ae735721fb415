#!/usr/bin/env python3
"""Checks `laq export` against the tools that read its outputs (issue 6, spec/EXPORT.md).

For each bundled Keras 3 fixture: import it, quantize it (lat2a, one-shot, so the exported
weights are dequantized codes), export it as .h5, .npz and .safetensors, and run it with
`laq run`. Then, in Keras itself:

- `keras.models.load_model(exported.h5)` predicts what `laq run` predicts (max |diff| <= 1e-4 of
  the output scale);
- the original Keras model with `load_weights(exported.h5)` predicts the same;
- the .npz (numpy.load) and .safetensors (safetensors.numpy.load_file) hold the same arrays,
  bit for bit, as the .h5's datasets.

Usage: tools/check_export.py [--laq PATH] [--keep DIR]
Needs keras (any backend; KERAS_BACKEND=jax is what CI installs), h5py, numpy, safetensors.
Exit status: 0 all checks passed, 1 a check failed, 2 setup problem.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "testdata", "keras")
# Keras 3 fixtures of every graph kind: Sequential, Functional with two inputs and merges,
# recurrent, convolutional, nested models, from .h5 and from .keras archives.
FIXTURES = ["k3_tiny.h5", "k3_branches.h5", "k3_conv1d.h5", "k3_image.keras", "k3_fmnist_mlp.h5",
            "k3_fmnist_cnn.keras", "k3_char_lstm.h5", "k3_nested.h5", "k3_nested.keras",
            "k3_shared.h5", "k3_shared.keras", "k3_int8.keras", "k3_int8_weights.h5", "k3_int4.keras", "k3_int4_channel.h5"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--laq", default=os.path.join(ROOT, ".build", "debug", "laq"))
    parser.add_argument("--keep", help="keep the exported files in this directory")
    args = parser.parse_args()
    try:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import h5py
        import keras
        import numpy as np
        from safetensors.numpy import load_file
    except ImportError as error:
        print(f"check_export: {error}: install keras, jax, h5py, numpy, safetensors (tools/setup --export)", file=sys.stderr)
        return 2
    if not os.access(args.laq, os.X_OK):
        print(f"check_export: {args.laq} is not an executable laq (swift build first)", file=sys.stderr)
        return 2

    work = args.keep or tempfile.mkdtemp(prefix="laq-export-")
    os.makedirs(work, exist_ok=True)
    failures = []

    def laq(*arguments):
        result = subprocess.run([args.laq, *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"laq {' '.join(arguments)}: exit {result.returncode}: {result.stderr.strip()}")

    print(f"keras {keras.__version__} ({keras.backend.backend()} backend)")
    for fixture in FIXTURES:
        stem = fixture.replace(".", "_")
        source = os.path.join(TESTDATA, fixture)
        io_path = os.path.join(TESTDATA, fixture.rsplit(".", 1)[0] + ".io.npz")
        path = lambda suffix: os.path.join(work, stem + suffix)
        try:
            laq("import", source, "-o", path(".laq"))
            laq("quantize", path(".laq"), "-o", path(".q.laq"), "--method", "lat2a", "--one-shot")
            for kind, suffix in [("h5", ".h5"), ("npz", ".npz"), ("safetensors", ".safetensors")]:
                laq("export", path(".q.laq"), "--to", kind, "-o", path(suffix))
            laq("run", path(".q.laq"), "--input", io_path, "-o", path(".laq-run.npy"))
        except RuntimeError as error:
            failures.append(f"{fixture}: {error}")
            continue

        io = np.load(io_path)
        inputs = io["x"] if "x" in io else [io[f"x{i}"] for i in range(len([k for k in io if k.startswith("x")]))]
        expected = np.load(path(".laq-run.npy"))
        scale = max(float(np.abs(expected).max()), 1e-6)

        def compare(what, actual):
            error = float(np.abs(np.asarray(actual) - expected).max())
            ok = error <= 1e-4 * scale
            print(f"  {'ok  ' if ok else 'FAIL'} {fixture}: {what}: max |diff| {error:.3g} (output scale {scale:.3g})")
            if not ok:
                failures.append(f"{fixture}: {what}: max |diff| {error:.3g} > 1e-4 x {scale:.3g}")

        loaded = keras.models.load_model(path(".h5"), compile=False)
        compare("load_model(exported .h5) vs laq run", loaded.predict(inputs, verbose=0))
        original = keras.models.load_model(source, compile=False)
        original.load_weights(path(".h5"))
        compare("original model + load_weights(exported .h5) vs laq run", original.predict(inputs, verbose=0))

        with h5py.File(path(".h5"), "r") as h5:
            stored = {}
            group = h5["model_weights"]
            for layer in group.attrs["layer_names"]:
                for name in group[layer].attrs["weight_names"]:
                    stored[name[:-2] if name.endswith(":0") else name] = group[layer][name][()]
        npz = dict(np.load(path(".npz")))
        tensors = load_file(path(".safetensors"))
        same = (set(npz) == set(stored) == set(tensors)
                and all(np.array_equal(npz[k], stored[k]) and np.array_equal(tensors[k], stored[k])
                        and npz[k].dtype == tensors[k].dtype == np.float32 for k in stored))
        print(f"  {'ok  ' if same else 'FAIL'} {fixture}: .npz, .safetensors and .h5 hold the same {len(stored)} float32 arrays")
        if not same:
            failures.append(f"{fixture}: .npz {sorted(npz)} / .safetensors {sorted(tensors)} / .h5 {sorted(stored)} differ")

    if failures:
        print(f"check_export: {len(failures)} failure(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"check_export: all {len(FIXTURES)} fixtures pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
