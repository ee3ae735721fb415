#!/usr/bin/env python3
"""`laq import` of a Keras file beside Keras' own `load_model` of it: wall time and peak memory,
alternating, in one run.

laq: the whole command (`laq import MODEL -o OUT`: process start, reading libhdf5 in a child
process, writing the .laq file atomically with fsync), its peak RSS as the kernel reports it for
the process tree (wait4). Keras: `keras.saving.load_model(MODEL)` in a fresh Python process per
repeat, timing the call alone (not Python's start or importing TensorFlow), and that process's
peak RSS (TensorFlow included). Both read the file from a warm page cache (one untimed read
first), each after a sync(2), so that no writeback from the run before is pending. Ratios: laq's time over Keras' (below 1: laq is faster), laq's peak RSS over the file's
size.

    tools/bench/compare_import.py MODEL.keras [--repeats 5] [--json]    (after `tools/setup --peers`:
                                                                       .venv-peers/bin/python)

A 481 MiB model with Adam state: tools/bench/make_import_model.py --big.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KERAS = r"""
import sys, time, resource, json
import keras
start = time.perf_counter()
keras.saving.load_model(sys.argv[1], compile=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_laq(binary, model, output):
    # stderr to a file, not a pipe: wait4 must not wait on a child blocked writing to a full pipe.
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen([binary, "import", model, "-o", output], stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"compare_import: laq import failed: {errors.read().decode().strip()}")
    # ru_maxrss of a waited child: the largest of it and its waited descendants (laq's child).
    return seconds, usage.ru_maxrss * 1024


def run_keras(model):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", KERAS, model], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"compare_import: keras load_model failed: {result.stderr.strip()[-2000:]}")
    line = [l for l in result.stdout.splitlines() if l.startswith("{")][-1]
    measured = json.loads(line)
    return measured["seconds"], measured["peak_rss"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--laq", default=os.path.join(ROOT, ".build", "release", "laq"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = os.path.getsize(args.model)
    with open(args.model, "rb") as file:  # warm the page cache
        while file.read(1 << 24):
            pass
    directory = tempfile.mkdtemp(prefix="laq-compare-import-", dir=os.path.dirname(os.path.abspath(args.model)))
    try:
        output = os.path.join(directory, "model.laq")
        laq_runs, keras_runs = [], []
        for _ in range(args.repeats):
            # Each starts with no writeback pending from the one before.
            os.sync()
            laq_runs.append(run_laq(args.laq, args.model, output))
            os.sync()
            keras_runs.append(run_keras(args.model))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    laq_time = statistics.median(t for t, _ in laq_runs)
    keras_time = statistics.median(t for t, _ in keras_runs)
    laq_rss = max(r for _, r in laq_runs)
    keras_rss = max(r for _, r in keras_runs)
    report = {
        "model": os.path.basename(args.model), "file_bytes": size, "repeats": args.repeats,
        "laq_import_s": [round(t, 3) for t, _ in laq_runs], "keras_load_model_s": [round(t, 3) for t, _ in keras_runs],
        "laq_median_s": round(laq_time, 3), "keras_median_s": round(keras_time, 3),
        "time_ratio": round(laq_time / keras_time, 3),
        "laq_peak_rss": laq_rss, "keras_peak_rss": keras_rss, "laq_rss_over_file": round(laq_rss / size, 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    mib = lambda n: f"{n / 2**20:,.0f} MiB"
    print(f"{report['model']}: {mib(size)}, {args.repeats} repeats each, alternating")
    print(f"  laq import (whole command)      median {laq_time:.3f} s  {report['laq_import_s']}  peak RSS {mib(laq_rss)} ({report['laq_rss_over_file']}× the file)")
    print(f"  keras load_model (the call)     median {keras_time:.3f} s  {report['keras_load_model_s']}  peak RSS {mib(keras_rss)}")
    print(f"  laq time ÷ Keras time: {report['time_ratio']}")


if __name__ == "__main__":
    main()
