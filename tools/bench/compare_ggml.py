#!/usr/bin/env python3
"""Low-bit products with a 4096×4096 weight matrix beside ggml (llama.cpp's CPU kernels), both
with 8-bit activations, measured in one run.

ggml: `ggml_mul_mat.c` (this directory) built against a ggml source tree, the weights quantized
to Q2_K, Q3_K, Q4_K, TQ2_0 and Q1_0 by ggml itself, the activations quantized by ggml to its
8-bit type inside the product, a persistent threadpool; Q2_K and Q4_K also from the CPU
backend's repacked (interleaved) buffer, as llama.cpp loads them by default. laq:
`laq-bench --packed --json` (int8 activations). Pairs: laq 2-bit linear ↔ Q2_K, 3-bit linear ↔
Q3_K, 4-bit linear ↔ Q4_K, ternary ±α ↔ TQ2_0, binary ↔ Q1_0.

    git clone https://github.com/ggml-org/ggml /tmp/ggml          (or llama.cpp's ggml/ folder)
    tools/bench/compare_ggml.py --ggml /tmp/ggml [--batch 1 16 64] [--threads 2] [--repeats 50] [--rounds 3]

With --rounds R, laq and ggml take turns R times (a shared machine's speed drifts from minute
to minute): the times shown are each side's median over the rounds, the ratio the median of the
R per-round ratios, with their range.

Needs cmake (apt-get install cmake, or pip install cmake) and a C compiler; the release
laq-bench (swift build -c release --product laq-bench).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAIRS = [
    ("2-bit linear, int8 activations", "q2_K"),
    ("3-bit linear, int8 activations", "q3_K"),
    ("4-bit linear, int8 activations", "q4_K"),
    ("ternary ±α, int8 activations", "tq2_0"),
    ("binary, int8 activations", "q1_0"),
]
REPACKED = {"q2_K", "q4_K"}


def build_ggml(source, build, harness):
    cmake = shutil.which("cmake") or os.path.join(os.path.dirname(sys.executable), "cmake")
    if not os.path.exists(cmake) and not shutil.which(cmake):
        sys.exit("compare_ggml: cmake not found (apt-get install cmake, or pip install cmake)")
    subprocess.run([cmake, "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
                    "-DGGML_BUILD_TESTS=OFF", "-DGGML_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([cmake, "--build", build, "--target", "ggml", "ggml-cpu", "ggml-base", "-j", str(os.cpu_count() or 2)],
                   check=True, stdout=subprocess.DEVNULL)
    libraries = []
    for name in ["libggml.a", "libggml-cpu.a", "libggml-base.a"]:
        found = [os.path.join(folder, name) for folder, _, files in os.walk(build) if name in files]
        if not found:
            sys.exit(f"compare_ggml: {name} not built in {build}")
        libraries.append(found[0])
    flags = ["-lstdc++", "-lm", "-lpthread"]
    if "GGML_OPENMP:BOOL=ON" in open(os.path.join(build, "CMakeCache.txt")).read():
        flags.append("-fopenmp")
    binary = os.path.join(build, "ggml_mul_mat")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-march=native", "-I", os.path.join(source, "include"), harness,
                    *libraries, *flags, "-o", binary], check=True)
    return binary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ggml", required=True, help="a ggml source tree (ggml-org/ggml, or llama.cpp/ggml)")
    parser.add_argument("--build", default=os.path.join(ROOT, ".build", "ggml"))
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--batch", type=int, nargs="+", default=[1], choices=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="laq and ggml take turns this many times (median of per-round ratios)")
    parser.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "laq-bench"))
    args = parser.parse_args()
    binary = build_ggml(os.path.abspath(args.ggml), args.build, os.path.join(ROOT, "tools", "bench", "ggml_mul_mat.c"))

    environment = dict(os.environ, LAQ_NUM_THREADS=str(args.threads))

    def laq_round():
        run = subprocess.run([args.bench, "--packed", "--size", str(args.size), "--repeats", str(args.repeats), "--only", "int8",
                              "--batches", ",".join(map(str, args.batch)), "--json"],
                             capture_output=True, text=True, check=True, env=environment)
        return json.loads(run.stdout)

    def ggml_ms(kind, batch, repack):
        output = subprocess.run([binary, kind, str(args.size), str(args.size), str(batch), str(args.threads), str(args.repeats),
                                 str(int(repack))], capture_output=True, text=True)
        if output.returncode != 0:
            return None
        return json.loads(output.stdout.strip().splitlines()[-1])

    def ggml_best(kind, batch):
        """ggml's time, the better of its plain and (for REPACKED types) repacked buffers; None if it has no kind."""
        plain = ggml_ms(kind, batch, False)
        if plain is None:
            return None
        repacked = ggml_ms(kind, batch, True) if kind in REPACKED else None
        return dict(plain, median_ms=min(plain["median_ms"], repacked["median_ms"] if repacked else float("inf")),
                    repacked_ms=repacked["median_ms"] if repacked else None, plain_ms=plain["median_ms"])

    rounds = max(1, args.rounds)
    laq_ms, ggml_runs = {}, {}
    for _ in range(rounds):
        laq = laq_round()
        for row in laq["results"]:
            laq_ms.setdefault((row["layout"], row["batch"]), []).append(row["packed_ms"])
        for _, kind in PAIRS:
            for batch in args.batch:
                ggml_runs.setdefault((kind, batch), []).append(ggml_best(kind, batch))

    print(f"{args.size}×{args.size} products, 8-bit activations, {args.threads} threads, median of {args.repeats} (ms); "
          f"laq kernels: {laq.get('kernels', '?')}; {rounds} round(s): medians, and the median and range of the per-round "
          f"ratios; ratio > 1: laq is faster")
    print(f"{'laq layout':34s} {'ggml':6s} {'batch':>5s} {'laq ms':>8s} {'ggml ms':>8s} {'repacked':>9s} {'ratio':>6s} {'range':>11s} {'ggml bpw':>8s}")
    for layout, kind in PAIRS:
        for batch in args.batch:
            mine, theirs = laq_ms.get((layout, batch)), ggml_runs.get((kind, batch))
            if not mine or not theirs or None in theirs:
                print(f"{layout:34s} {kind:6s} {batch:5d}   (not measured: {'laq' if not mine else 'ggml has no ' + kind})")
                continue
            ratios = sorted(g["median_ms"] / l for l, g in zip(mine, theirs))
            repacked = [g["repacked_ms"] for g in theirs if g["repacked_ms"] is not None]
            print(f"{layout:34s} {kind:6s} {batch:5d} {statistics.median(mine):8.3f} {statistics.median(g['plain_ms'] for g in theirs):8.3f} "
                  f"{(statistics.median(repacked) if repacked else float('nan')):9.3f} {statistics.median(ratios):6.2f} "
                  f"{ratios[0]:5.2f}–{ratios[-1]:<5.2f} {theirs[0]['bits_per_weight']:8.3f}")


if __name__ == "__main__":
    main()
