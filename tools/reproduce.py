#!/usr/bin/env python3
"""Reproduces the LAB/LAT/LAQ comparison on real data with laq, and writes the tables of docs/REPRODUCTION.md.

Run it through `tools/reproduce` (sets up, builds laq in release mode). For each task:

1. the data: Fashion-MNIST from Debian's dataset-fashion-mnist (train 50,000 / validation 10,000
   from the 60,000 training images, test 10,000), and characters of Debian's fortunes (contiguous
   80/10/10 split, 40-character windows predicting the next character);
2. a full-precision model trained in Keras (jax backend) with Adam, saved as .h5 with its Adam state;
3. `laq import`, then `laq eval` on the test split;
4. for every method: `laq quantize --one-shot` (curvature from the imported Adam v) and
   `laq quantize --calib` (the loss-aware fine-tuning run) with several seeds; `laq eval` of each.

Results are cached in OUT/results.json, keyed by task, method, mode and seed: a rerun resumes.
--doc rewrites the section of docs/REPRODUCTION.md between `<!-- reproduce:begin -->` and
`<!-- reproduce:end -->` with the tables, the settings and the machine.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORTUNES = "/usr/share/games/fortunes"

# (label, laq arguments, group, nominal bits per weight)
METHODS = [
    ("bc", ["--method", "bc"], "binary", 1),
    ("bwn", ["--method", "bwn"], "binary", 1),
    ("lab", ["--method", "lab"], "binary", 1),
    ("twn", ["--method", "twn"], "ternary", 2),
    ("late", ["--method", "late"], "ternary", 2),
    ("lata", ["--method", "lata"], "ternary", 2),
    ("lat2e", ["--method", "lat2e"], "two-scale ternary", 2),
    ("lat2a", ["--method", "lat2a"], "two-scale ternary", 2),
    ("dorefa 3-bit", ["--method", "dorefa", "--bits", "3"], "3-bit", 3),
    ("laq 3-bit linear", ["--method", "laq", "--bits", "3", "--levels", "linear"], "3-bit", 3),
    ("laq 3-bit log", ["--method", "laq", "--bits", "3", "--levels", "log"], "3-bit", 3),
]

# Per task: full-precision training and calibration settings, full and --quick.
TASKS = {
    "mlp": {
        "title": "Fashion-MNIST MLP", "metric": "test error %",
        "architecture": "784-256-256-10 (ReLU, softmax)",
        "fp": {"epochs": 10, "batch": 100, "lr": 1e-3}, "fp_quick": {"epochs": 2, "batch": 100, "lr": 1e-3},
        "calib": {"samples": 20_000, "val": 5_000, "epochs": 2, "batch": 100, "lr": 1e-3},
        "calib_quick": {"samples": 5_000, "val": 2_000, "epochs": 1, "batch": 100, "lr": 1e-3},
    },
    "cnn": {
        "title": "Fashion-MNIST CNN", "metric": "test error %",
        "architecture": "conv 32×3×3 – maxpool 2 – conv 64×3×3 – maxpool 2 – dense 128 – 10 (ReLU, softmax)",
        "fp": {"epochs": 5, "batch": 100, "lr": 1e-3}, "fp_quick": {"epochs": 1, "batch": 100, "lr": 1e-3},
        "calib": {"samples": 10_000, "val": 2_000, "epochs": 1, "batch": 100, "lr": 1e-3},
        "calib_quick": {"samples": 2_000, "val": 1_000, "epochs": 1, "batch": 100, "lr": 1e-3},
    },
    "lstm": {
        "title": "char LSTM (fortunes)", "metric": "test cross-entropy (nats/char)",
        "architecture": "embedding 32 – LSTM 128 – softmax over the characters, 40 time steps",
        "fp": {"epochs": 3, "batch": 128, "lr": 2e-3}, "fp_quick": {"epochs": 1, "batch": 128, "lr": 2e-3},
        "calib": {"samples": 10_000, "val": 2_000, "epochs": 1, "batch": 128, "lr": 2e-3},
        "calib_quick": {"samples": 2_000, "val": 1_000, "epochs": 1, "batch": 128, "lr": 2e-3},
    },
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def fashion_mnist(split):
    """Images as float32 in [0, 1] (n×784) and int32 labels, read by tools/data/fashion_mnist.py."""
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "tools", "data"))
    from fashion_mnist import read
    x, y = read(split)
    return x.astype(np.float32) / 255, y.astype(np.int32)


def fortunes_windows(steps=40):
    """Contiguous 80/10/10 split of the fortunes text; windows of `steps` characters (stride 9 for
    training and validation, 8 for test) labelled with the next character."""
    import numpy as np
    if not os.path.isdir(FORTUNES):
        sys.exit(f"reproduce: {FORTUNES} not found: apt-get install fortunes (tools/setup --reproduce)")
    text = "".join(open(os.path.join(FORTUNES, name), encoding="utf-8", errors="ignore").read()
                   for name in sorted(os.listdir(FORTUNES)) if "." not in name)
    text = "".join(c for c in text if 32 <= ord(c) < 127 or c == "\n").replace("%\n", "")
    vocabulary = sorted(set(text))
    index = {c: i for i, c in enumerate(vocabulary)}
    ids = np.array([index[c] for c in text], np.int32)
    a, b = int(len(ids) * 0.8), int(len(ids) * 0.9)

    def windows(part, stride):
        starts = np.arange(0, len(part) - steps - 1, stride)
        return np.stack([part[s:s + steps] for s in starts]), part[starts + steps]

    return windows(ids[:a], 9), windows(ids[a:b], 9), windows(ids[b:], 8), vocabulary, len(text)


def prepare(task, out, quick):
    """Writes train/val/test/calib .npz files and trains the full-precision model (cached)."""
    import numpy as np
    directory = os.path.join(out, task)
    os.makedirs(directory, exist_ok=True)
    spec = TASKS[task]
    fp = spec["fp_quick" if quick else "fp"]
    calib = spec["calib_quick" if quick else "calib"]
    paths = {name: os.path.join(directory, f"{name}.npz") for name in ["train", "val", "test", "calib", "calib_val"]}
    paths["model"] = os.path.join(directory, "fp.h5")
    info_path = os.path.join(directory, "data.json")
    if all(os.path.exists(p) for p in paths.values()) and os.path.exists(info_path):
        return paths, json.load(open(info_path))

    rng = np.random.default_rng(0)
    if task in ("mlp", "cnn"):
        x, y = fashion_mnist("train")
        test_x, test_y = fashion_mnist("test")
        if task == "cnn":
            x, test_x = x.reshape(-1, 28, 28, 1), test_x.reshape(-1, 28, 28, 1)
        train, val, test = (x[:50_000], y[:50_000]), (x[50_000:], y[50_000:]), (test_x, test_y)
        info = {"data": "Fashion-MNIST (Debian dataset-fashion-mnist): train 50,000, validation 10,000, test 10,000"}
    else:
        train, val, test, vocabulary, characters = fortunes_windows()
        info = {"data": f"Debian fortunes, {characters:,} characters, vocabulary {len(vocabulary)}, contiguous 80/10/10: "
                        f"{len(train[0]):,} training / {len(val[0]):,} validation / {len(test[0]):,} test windows"}
    if quick:
        train = (train[0][:20_000], train[1][:20_000])
    for name, (xs, ys) in [("train", train), ("val", val), ("test", test)]:
        np.savez(paths[name], x=xs, y=ys)
    pick = rng.permutation(len(train[0]))[:calib["samples"]]
    np.savez(paths["calib"], x=train[0][pick], y=train[1][pick])
    np.savez(paths["calib_val"], x=val[0][:calib["val"]], y=val[1][:calib["val"]])

    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    keras.utils.set_random_seed(1)
    layers = keras.layers
    if task == "mlp":
        model = keras.Sequential([keras.Input((784,), name="pixels"), layers.Dense(256, activation="relu", name="hidden1"),
                                  layers.Dense(256, activation="relu", name="hidden2"), layers.Dense(10, activation="softmax", name="classes")],
                                 name="fmnist_mlp")
    elif task == "cnn":
        model = keras.Sequential([keras.Input((28, 28, 1), name="image"), layers.Conv2D(32, 3, activation="relu", name="conv1"),
                                  layers.MaxPooling2D(2, name="pool1"), layers.Conv2D(64, 3, activation="relu", name="conv2"),
                                  layers.MaxPooling2D(2, name="pool2"), layers.Flatten(name="flatten"),
                                  layers.Dense(128, activation="relu", name="dense"), layers.Dense(10, activation="softmax", name="classes")],
                                 name="fmnist_cnn")
    else:
        vocabulary_size = int(max(train[1].max(), val[1].max(), test[1].max(), train[0].max())) + 1
        model = keras.Sequential([keras.Input((40,), dtype="int32", name="chars"), layers.Embedding(vocabulary_size, 32, name="embed"),
                                  layers.LSTM(128, name="lstm"), layers.Dense(vocabulary_size, activation="softmax", name="next")],
                                 name="char_lstm")
    model.compile(optimizer=keras.optimizers.Adam(fp["lr"]), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    log(f"[{task}] training the full-precision model in Keras: {fp['epochs']} epochs on {len(train[0]):,} samples")
    start = time.time()
    model.fit(train[0], train[1], batch_size=fp["batch"], epochs=fp["epochs"], validation_data=val, verbose=0)
    info["fp_training_seconds"] = round(time.time() - start, 1)
    info["keras"] = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    model.save(paths["model"])
    json.dump(info, open(info_path, "w"), indent=1)
    return paths, info


class Runner:
    def __init__(self, laq, out, fresh, name="results.json"):
        self.laq = laq
        self.path = os.path.join(out, name)
        self.results = {} if fresh or not os.path.exists(self.path) else json.load(open(self.path))

    def save(self):
        tmp = self.path + ".tmp"
        json.dump(self.results, open(tmp, "w"), indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def call(self, *arguments):
        result = subprocess.run([self.laq, *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"reproduce: laq {' '.join(arguments)}: exit {result.returncode}\n{result.stderr}")
        return result.stdout

    def evaluate(self, model, test):
        report = json.loads(self.call("eval", model, "--data", test, "--json"))
        return {"accuracy": report.get("accuracy"), "loss": report.get("loss")}

    def run(self, key, produce):
        if key in self.results:
            return self.results[key]
        start = time.time()
        entry = produce()
        entry["seconds"] = round(time.time() - start, 1)
        self.results[key] = entry
        self.save()
        return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--laq", default=os.path.join(ROOT, ".build", "release", "laq"))
    parser.add_argument("--quick", action="store_true", help="small data and budgets, one seed: a few minutes")
    parser.add_argument("--seeds", type=int, help="calibration seeds (default 3, --quick 1)")
    parser.add_argument("--tasks", default="mlp,cnn,lstm")
    parser.add_argument("--methods", help="comma-separated labels (default: all)")
    parser.add_argument("--out", help="work and results directory (default out/reproduce[-quick])")
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    parser.add_argument("--doc", action="store_true", help="rewrite the tables of docs/REPRODUCTION.md between the reproduce markers")
    parser.add_argument("--quality", action="store_true",
                        help="the calibration-defaults sweep (lat2a under other learning rates, epochs, batch sizes and with the "
                             "first and last layers kept float) and the --target-bits rows beside uniform methods of the same size "
                             "(OUT/results-quality.json, OUT/quality.md; --doc writes docs/QUALITY.md)")
    parser.add_argument("--ablation", action="store_true",
                        help="only the MLP ablation: bwn/lab and twn/late under per-channel scales, no clipping, a lower "
                             "learning rate and twice the epochs (OUT/results-ablation.json, OUT/ablation.md)")
    args = parser.parse_args()
    out = args.out or os.path.join(ROOT, "out", "reproduce-quick" if args.quick else "reproduce")
    os.makedirs(out, exist_ok=True)
    seeds = args.seeds or (1 if args.quick else 3)
    tasks = [t for t in args.tasks.split(",") if t]
    methods = [m for m in METHODS if not args.methods or m[0] in args.methods.split(",")]
    if args.ablation:
        return ablation(args, out, seeds)
    if args.quality:
        return quality(args, out, seeds, tasks)
    runner = Runner(args.laq, out, args.fresh)
    total = len(tasks) * len(methods) * (1 + seeds)
    done = 0
    started = time.time()
    infos = {}
    for task in tasks:
        paths, info = prepare(task, out, args.quick)
        infos[task] = info
        directory = os.path.dirname(paths["model"])
        calib = TASKS[task]["calib_quick" if args.quick else "calib"]
        fp_laq = os.path.join(directory, "fp.laq")
        if not os.path.exists(fp_laq):
            runner.call("import", paths["model"], "-o", fp_laq)

        def fp_entry():
            entry = runner.evaluate(fp_laq, paths["test"])
            entry["bytes"] = os.path.getsize(fp_laq)
            entry["weights_float32_bytes"] = 4 * sum(t["elements"] for t in json.loads(runner.call("inspect", fp_laq, "--json"))["tensors"]
                                                     if not t["name"].startswith("optimizer/"))
            return entry
        runner.run(f"{task}|full precision|fp|0", fp_entry)
        for label, arguments, _, _ in methods:
            for mode, seed in [("one-shot", 0)] + [("calibrated", s) for s in range(1, seeds + 1)]:
                key = f"{task}|{label}|{mode}|{seed}"
                output = os.path.join(directory, f"{label.replace(' ', '_')}-{mode}-{seed}.laq")

                def produce():
                    extra = ["--one-shot"] if mode == "one-shot" else [
                        "--calib", paths["calib"], "--val", paths["calib_val"], "--epochs", str(calib["epochs"]),
                        "--batch", str(calib["batch"]), "--lr", str(calib["lr"]), "--seed", str(seed)]
                    runner.call("quantize", fp_laq, "-o", output, *arguments, *extra)
                    entry = runner.evaluate(output, paths["test"])
                    entry["bytes"] = os.path.getsize(output)
                    return entry
                cached = key in runner.results
                entry = runner.run(key, produce)
                done += 1
                elapsed = time.time() - started
                metric = entry["loss"] if task == "lstm" else 100 * (1 - entry["accuracy"])
                eta = "" if cached else f", ETA {elapsed / done * (total - done) / 60:.1f} min"
                took = " (cached)" if cached else " in %.1f s" % entry["seconds"]
                seed_text = f" seed {seed}" if seed else ""
                kind = "CE" if task == "lstm" else "error"
                log(f"[{done}/{total}] {task} {label} {mode}{seed_text}: {kind} {metric:.3f}{took}{eta}")
    tables = render(runner.results, tasks, methods, seeds, infos, args.quick)
    print(tables)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write(tables + "\n")
    if args.doc:
        write_section("REPRODUCTION.md", "reproduce", tables)


def write_section(name, marker, text):
    """Replaces what lies between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` in docs/NAME."""
    document = os.path.join(ROOT, "docs", name)
    content = open(document).read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in content or end not in content:
        sys.exit(f"reproduce: docs/{name} has no {marker} markers")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    open(document, "w").write(head + begin + "\n" + text + "\n" + end + tail)
    log(f"reproduce: docs/{name} updated")


def quantize_entry(runner, model, output, arguments, test, sized_like=None):
    """`laq quantize MODEL -o OUTPUT ARGUMENTS --json`, then `laq eval` on TEST: the test metric,
    the file's bytes, the stored bits per weight of the quantized (or planned) tensors, and the
    plan's choices. `--target-bits lat2a` is replaced by SIZED_LIKE's bits per weight, rounded up.
    A budget the model cannot meet gives {"impossible": smallest average}."""
    arguments = list(arguments)
    if "--target-bits" in arguments and "lat2a" in arguments:
        arguments[arguments.index("lat2a")] = f"{math.ceil(sized_like['bits_per_weight'] * 1e4) / 1e4:.4f}"
    result = subprocess.run([runner.laq, "quantize", model, "-o", output, *arguments, "--json"], capture_output=True, text=True)
    if result.returncode == 2 and "below the smallest plan" in result.stderr:
        # Recurrent kernels keep a table per column: some budgets cannot be met.
        return {"impossible": result.stderr.strip().split("smallest plan, ")[-1].split(" ")[0]}
    if result.returncode != 0:
        sys.exit(f"reproduce: laq quantize: exit {result.returncode}\n{result.stderr}")
    report = json.loads(result.stdout)
    names = {t["weight"] for t in report["plan"]["tensors"]} if "plan" in report else {t["name"] for t in report["tensors"]}
    tensors = [t for t in json.loads(runner.call("inspect", output, "--json"))["tensors"] if t["name"] in names]
    entry = runner.evaluate(output, test)
    entry["bytes"] = os.path.getsize(output)
    entry["bits_per_weight"] = sum(t["bits_per_element"] * t["elements"] for t in tensors) / sum(t["elements"] for t in tensors)
    if "plan" in report:
        entry["plan"] = {t["weight"]: t["choice"] for t in report["plan"]["tensors"]}
    return entry


def sweep_variants(task, calib):
    """(name, options replacing the task's calibration settings, extra flags) for the defaults sweep."""
    lr = calib["lr"]
    first, last = {"mlp": ("hidden1", "classes"), "cnn": ("conv1", "classes"), "lstm": ("embed", "next")}[task]
    return [
        (f"η = {lr:g} (the main table's)", {}, []),
        (f"η = {lr / 3:.2g}", {"--lr": f"{lr / 3:.2g}"}, []),
        (f"η = {lr / 10:g}", {"--lr": f"{lr / 10:g}"}, []),
        (f"η = {lr / 10:g}, {2 * calib['epochs']} epochs", {"--lr": f"{lr / 10:g}", "--epochs": str(2 * calib["epochs"])}, []),
        (f"η = {lr / 10:g}, batch {calib['batch'] // 2}", {"--lr": f"{lr / 10:g}", "--batch": str(calib["batch"] // 2)}, []),
        (f"η = {lr / 10:g}, first and last layers float", {"--lr": f"{lr / 10:g}"}, ["--skip", first, last]),
        (f"η = {lr / 3:.2g}, d refreshed every 10 steps", {"--lr": f"{lr / 3:.2g}", "--hessian-every": "10"}, []),
        (f"η = {lr / 3:.2g}, d refreshed every 100 steps", {"--lr": f"{lr / 3:.2g}", "--hessian-every": "100"}, []),
    ]


# The bit-budget rows: uniform methods and --target-bits at about their sizes.
BUDGET_ROWS = [
    ("lab", ["--method", "lab"]),
    ("--target-bits 1.3", ["--target-bits", "1.3"]),
    ("lat2a", ["--method", "lat2a"]),
    ("--target-bits 1.6", ["--target-bits", "1.6"]),
    # Exactly uniform lat2a's stored bits per weight on the task (from its seed-1 run, rounded up).
    ("--target-bits = lat2a's", ["--target-bits", "lat2a"]),
    ("--target-bits 2", ["--target-bits", "2"]),
    ("laq 2-bit linear", ["--method", "laq", "--bits", "2", "--levels", "linear"]),
    # Exactly uniform 2-bit's stored bits per weight on the task (from its seed-1 run, rounded up).
    ("--target-bits = laq 2-bit's", ["--target-bits", "laq 2-bit linear"]),
    ("laq 3-bit linear", ["--method", "laq", "--bits", "3", "--levels", "linear"]),
    ("--target-bits 3", ["--target-bits", "3"]),
]


def quality(args, out, seeds, tasks):
    """The calibration-defaults sweep and the bit-budget rows (docs/QUALITY.md)."""
    runner = Runner(args.laq, out, args.fresh, "results-quality.json")
    infos = {}
    started = time.time()
    runs = sum(len(sweep_variants(t, TASKS[t]["calib"])) + len(BUDGET_ROWS) for t in tasks) * seeds
    done = 0

    def metric(task, entry):
        return entry["loss"] if task == "lstm" else 100 * (1 - entry["accuracy"])

    for task in tasks:
        paths, info = prepare(task, out, args.quick)
        infos[task] = info
        calib = TASKS[task]["calib_quick" if args.quick else "calib"]
        directory = os.path.dirname(paths["model"])
        fp_laq = os.path.join(directory, "fp.laq")
        if not os.path.exists(fp_laq):
            runner.call("import", paths["model"], "-o", fp_laq)
        runner.run(f"{task}|full precision|fp|0", lambda: runner.evaluate(fp_laq, paths["test"]))
        base = ["--calib", paths["calib"], "--val", paths["calib_val"], "--epochs", str(calib["epochs"]), "--batch", str(calib["batch"])]
        jobs = [(f"sweep|{variant}", ["--method", "lat2a", *base, "--lr", str(calib["lr"])], options, flags)
                for variant, options, flags in sweep_variants(task, calib)]
        # The budget rows, uniform and planned alike, calibrate with η₀/10 (as the sweep's later variants).
        jobs += [(f"budget|{label}", [*arguments, *base, "--lr", f"{calib['lr'] / 10:g}"], {}, []) for label, arguments in BUDGET_ROWS]
        for name, arguments, options, flags in jobs:
            for seed in range(1, seeds + 1):
                key = f"{task}|{name}|{seed}"
                output = os.path.join(directory, "quality.laq")

                def produce():
                    merged = list(arguments)
                    for option, value in options.items():
                        if option in merged:
                            merged[merged.index(option) + 1] = value
                        else:
                            merged += [option, value]
                    # A budget named by a row: that row's stored bits per weight (seed 1), rounded up.
                    if "--target-bits" in merged and f"{task}|budget|{merged[merged.index('--target-bits') + 1]}|1" in runner.results:
                        at = merged.index("--target-bits") + 1
                        merged[at] = f"{math.ceil(runner.results[f'{task}|budget|{merged[at]}|1']['bits_per_weight'] * 1e4) / 1e4:.4f}"
                    return quantize_entry(runner, fp_laq, output, [*merged, *flags, "--seed", str(seed)], paths["test"])
                cached = key in runner.results
                entry = runner.run(key, produce)
                done += 1
                eta = "" if cached else f", ETA {(time.time() - started) / done * (runs - done) / 60:.1f} min"
                outcome = f"below the smallest plan ({entry['impossible']} bits)" if "impossible" in entry else f"{metric(task, entry):.3f}"
                log(f"[{done}/{runs}] {task} {name} seed {seed}: {outcome}{' (cached)' if cached else ''}{eta}")

    heldout = heldout_check(runner, out, seeds)
    mobilenet = mobilenet_check(runner, out, seeds)

    def cell(task, name):
        impossible = [v["impossible"] for k, v in runner.results.items() if k.startswith(f"{task}|{name}|") and "impossible" in v]
        if impossible:
            return f"below the smallest plan ({impossible[0]})"
        numbers = [metric(task, v) for k, v in runner.results.items() if k.startswith(f"{task}|{name}|")]
        digits = 3 if task == "lstm" else 2
        if not numbers:
            return "–"
        return f"{statistics.mean(numbers):.{digits}f} ± {statistics.stdev(numbers):.{digits}f}" if len(numbers) > 1 else f"{numbers[0]:.{digits}f}"

    def bits(task, name):
        entries = [v for k, v in runner.results.items() if k.startswith(f"{task}|{name}|") and "bits_per_weight" in v]
        return f"{entries[0]['bits_per_weight']:.3f}" if entries else "–"

    titles = [TASKS[t]["title"] + (" (nats/char)" if t == "lstm" else " (error %)") for t in tasks]
    lines = [f"Calibration defaults: `lat2a`, calibrated, test metric mean ± standard deviation over {seeds} seeds "
             f"(full precision: {', '.join(cell(t, 'full precision|fp') for t in tasks)}).", "",
             "| setting | " + " | ".join(titles) + " |", "|---|" + "---:|" * len(tasks)]
    for index in range(len(sweep_variants("mlp", TASKS["mlp"]["calib"]))):
        names = [sweep_variants(t, TASKS[t]["calib_quick" if args.quick else "calib"])[index][0] for t in tasks]
        label = {0: "η₀ (the main table's)", 1: "η₀/3", 2: "η₀/10", 3: "η₀/10, twice the epochs", 4: "η₀/10, half the batch",
                 5: "η₀/10, first and last layers float", 6: "η₀/3, d refreshed every 10 steps",
                 7: "η₀/3, d refreshed every 100 steps"}[index]
        lines.append(f"| {label} | " + " | ".join(cell(t, f"sweep|{n}") for t, n in zip(tasks, names)) + " |")
    lines += ["", "η₀: " + ", ".join(f"{TASKS[t]['title']} {TASKS[t]['calib_quick' if args.quick else 'calib']['lr']:g}" for t in tasks) + ".", ""]
    lines += [f"Bit budgets: calibrated with η₀/10, mean ± standard deviation over {seeds} seeds; "
              "bits per weight as stored (codes, scales and tables) over the quantized tensors, float ones at 32.", "",
              "| method | " + " | ".join(f"{t}: bits/w | {t}: metric" for t in tasks) + " |", "|---|" + "---:|---:|" * len(tasks)]
    for label, _ in BUDGET_ROWS:
        lines.append(f"| `{label}` | " + " | ".join(f"{bits(t, 'budget|' + label)} | {cell(t, 'budget|' + label)}" for t in tasks) + " |")
    lines += ["", heldout, "", mobilenet]
    lines += ["", f"Command: `tools/reproduce --quality{' --quick' if args.quick else ''}`; the settings and data are those of "
              f"docs/REPRODUCTION.md. Machine: {platform.machine()}, {os.cpu_count()} cores; measured {time.strftime('%Y-%m-%d')}."]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(out, "quality.md"), "w") as f:
        f.write(table + "\n")
    if args.doc:
        write_section("QUALITY.md", "quality", table)


# The bundled Fashion-MNIST MLP with laq's defaults: (label, laq arguments).
HELDOUT_ROWS = [
    ("lat2a", ["--method", "lat2a"]),
    ("lat2a, η = 0.001 (the former default)", ["--method", "lat2a", "--lr", "0.001"]),
    ("--target-bits = lat2a's", ["--target-bits", "lat2a"]),
    ("--target-bits 2", ["--target-bits", "2"]),
    ("laq 2-bit linear", ["--method", "laq", "--bits", "2"]),
]


def heldout_check(runner, out, seeds):
    """testdata/keras/k3_fmnist_mlp.h5 (784-64-10, one epoch on the 60,000 training images),
    calibrated on 3,000 training images with every option at laq's default (one epoch, 10% held
    out for validation), evaluated on the 10,000 test images: the newcomer's case."""
    import numpy as np
    directory = os.path.join(out, "heldout")
    os.makedirs(directory, exist_ok=True)
    model, calib, test = (os.path.join(directory, name) for name in ("mlp.laq", "calib.npz", "test.npz"))
    if not os.path.exists(calib):
        x, y = fashion_mnist("train")
        np.savez(calib, x=x[50_000:53_000], y=y[50_000:53_000])
        x, y = fashion_mnist("test")
        np.savez(test, x=x, y=y)
    if not os.path.exists(model):
        runner.call("import", os.path.join(ROOT, "testdata", "keras", "k3_fmnist_mlp.h5"), "-o", model)
    intro = ("The bundled Fashion-MNIST MLP (`testdata/keras/k3_fmnist_mlp.h5`), calibrated on 3,000 training images "
             "(50,000–52,999) with laq's defaults, one epoch; test accuracy on the 10,000 test images, mean ± standard "
             "deviation over {seeds} seeds (full precision {fp:.2f}%):")
    return rows_with_defaults(runner, "heldout", "held-out MLP", model, calib, test, HELDOUT_ROWS, seeds, intro)


def rows_with_defaults(runner, key, name, model, calib, test, rows, seeds, intro, expand=lambda arguments: arguments):
    """Each of ROWS (label, laq arguments, expanded by EXPAND) calibrated on CALIB with laq's
    defaults for SEEDS seeds, evaluated on TEST; the table of accuracy, Δ to full precision,
    bits per weight and file bytes, after INTRO (formatted with seeds and fp, the full
    precision accuracy in %). Results are cached under KEY|label|seed."""
    fp = runner.run(f"{key}|full precision|0", lambda: runner.evaluate(model, test))
    directory = os.path.dirname(model)
    for label, arguments in rows:
        for seed in range(1, seeds + 1):
            def produce():
                return quantize_entry(runner, model, os.path.join(directory, "q.laq"), [*expand(arguments), "--calib", calib, "--seed", str(seed)],
                                      test, runner.results.get(f"{key}|lat2a|1"))
            entry = runner.run(f"{key}|{label}|{seed}", produce)
            log(f"{name} {label} seed {seed}: accuracy {100 * entry['accuracy']:.2f}%")
    lines = [intro.format(seeds=seeds, fp=100 * fp["accuracy"]), "",
             "| run | accuracy % | Δ to full precision | bits/weight | file bytes |", "|---|---:|---:|---:|---:|"]
    for label, _ in rows:
        entries = [runner.results[f"{key}|{label}|{seed}"] for seed in range(1, seeds + 1)]
        accuracy = [100 * e["accuracy"] for e in entries]
        spread = f" ± {statistics.stdev(accuracy):.2f}" if len(accuracy) > 1 else ""
        lines.append(f"| `{label}` | {statistics.mean(accuracy):.2f}{spread} | {statistics.mean(accuracy) - 100 * fp['accuracy']:+.2f} | "
                     f"{entries[0]['bits_per_weight']:.3f} | {statistics.mean(e['bytes'] for e in entries):,.0f} |")
    return "\n".join(lines)


# MobileNetV2 on Fashion-MNIST with laq's defaults: (label, laq arguments); "DEPTHWISE" stands for
# the model's depthwise convolution layers.
MOBILENET_BASE_ROWS = [
    ("lat2a", ["--method", "lat2a"]),
    ("lata", ["--method", "lata"]),
    ("laq 2-bit linear", ["--method", "laq", "--bits", "2"]),
    ("lat2a, depthwise kernels float", ["--method", "lat2a", "--skip", "DEPTHWISE"]),
    ("--target-bits = lat2a's", ["--target-bits", "lat2a"]),
    ("--target-bits 2", ["--target-bits", "2"]),
    ("laq 3-bit linear", ["--method", "laq", "--bits", "3"]),
]
# Each as laq runs it (BatchNormalization statistics re-estimated for the quantized weights), then
# with the moving averages the calibration run leaves (--bn-batches 0).
MOBILENET_ROWS = MOBILENET_BASE_ROWS + [(f"{label}, --bn-batches 0", [*arguments, "--bn-batches", "0"]) for label, arguments in MOBILENET_BASE_ROWS]


def mobilenet_check(runner, out, seeds):
    """keras.applications.MobileNetV2 (α = 0.35, random initialisation, 32×32×1: Fashion-MNIST
    images padded by two pixels), trained in Keras for 3 epochs on 50,000 training images;
    calibrated by laq with its defaults (one epoch, 10% held out) on 5,000 other training images
    (50,000–54,999); test accuracy on the 10,000 test images. Depthwise convolutions have few
    weights per output channel, and are known to be hard to quantize."""
    import numpy as np
    directory = os.path.join(out, "mobilenet")
    os.makedirs(directory, exist_ok=True)
    keras_path, model, calib, test, info_path = (os.path.join(directory, name) for name in
                                                 ("fp.keras", "fp.laq", "calib.npz", "test.npz", "data.json"))

    def padded(x):
        return np.pad(x.reshape(-1, 28, 28, 1), ((0, 0), (2, 2), (2, 2), (0, 0)))
    if not os.path.exists(info_path):
        x, y = fashion_mnist("train")
        test_x, test_y = fashion_mnist("test")
        x, test_x = padded(x), padded(test_x)
        np.savez(calib, x=x[50_000:55_000], y=y[50_000:55_000])
        np.savez(test, x=test_x, y=test_y)
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras
        keras.utils.set_random_seed(1)
        network = keras.applications.MobileNetV2(input_shape=(32, 32, 1), alpha=0.35, weights=None, classes=10)
        # MobileNetV2's batch normalization averages its statistics with momentum 0.999, made for
        # fine-tuning: in 1,500 steps from scratch the averages lag the weights, and the trained
        # model scores 10% in inference mode (83% with batch statistics). Keras' default, 0.99.
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.99
        network.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        log("[mobilenet] training MobileNetV2 (α = 0.35) in Keras: 3 epochs on 50,000 images")
        start = time.time()
        network.fit(x[:50_000], y[:50_000], batch_size=100, epochs=3, verbose=0)
        network.save(keras_path)
        depthwise = [layer.name for layer in network.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
        json.dump({"fp_training_seconds": round(time.time() - start, 1), "parameters": network.count_params(),
                   "depthwise": depthwise, "keras": f"Keras {keras.__version__} ({keras.backend.backend()} backend)"},
                  open(info_path, "w"), indent=1)
    info = json.load(open(info_path))
    if not os.path.exists(model):
        runner.call("import", keras_path, "-o", model)
    intro = (f"MobileNetV2 (`keras.applications`, α = 0.35, {info['parameters']:,} parameters, 32×32×1 inputs: Fashion-MNIST padded "
             f"by two pixels), trained in {info['keras']} for 3 epochs on 50,000 training images; calibrated on 5,000 other training "
             f"images (50,000–54,999) with laq's defaults, one epoch; test accuracy on the 10,000 test images, mean ± standard "
             "deviation over {seeds} seeds (full precision {fp:.2f}%). Bits per weight over the quantized "
             "tensors (every convolution, depthwise and dense kernel; a plan's float tensors count at 32; with the depthwise "
             "kernels float, over the others):")
    return rows_with_defaults(runner, "mobilenet", "MobileNetV2", model, calib, test, MOBILENET_ROWS, seeds, intro,
                              lambda arguments: [item for argument in arguments
                                                 for item in (info["depthwise"] if argument == "DEPTHWISE" else [argument])])


ABLATION_METHODS = ["bwn", "lab", "twn", "late"]


def ablation_variants(calib):
    """(name, option overrides, extra flags)."""
    return [
        ("as in the main table", {}, []),
        ("per-channel scales", {}, ["--per-channel"]),
        ("no clipping to [−1, 1]", {}, ["--no-clip"]),
        (f"η = {calib['lr'] / 10:g}", {"--lr": str(calib["lr"] / 10)}, []),
        (f"{2 * calib['epochs']} epochs", {"--epochs": str(2 * calib["epochs"])}, []),
    ]


def ablation(args, out, seeds):
    """The MLP's binary and ternary pairs under other settings (docs/REPRODUCTION.md's analysis)."""
    task = "mlp"
    paths, _ = prepare(task, out, args.quick)
    calib = TASKS[task]["calib_quick" if args.quick else "calib"]
    runner = Runner(args.laq, out, args.fresh, "results-ablation.json")
    directory = os.path.dirname(paths["model"])
    fp_laq = os.path.join(directory, "fp.laq")
    if not os.path.exists(fp_laq):
        runner.call("import", paths["model"], "-o", fp_laq)
    arguments = {label: arguments for label, arguments, _, _ in METHODS}
    variants = ablation_variants(calib)
    for variant, overrides, flags in variants:
        options = {"--epochs": str(calib["epochs"]), "--lr": str(calib["lr"]), "--batch": str(calib["batch"]), **overrides}
        for label in ABLATION_METHODS:
            for seed in range(1, seeds + 1):
                key = f"{task}|{label}|{variant}|{seed}"
                output = os.path.join(directory, f"ablation-{label}-{seed}.laq")

                def produce():
                    pairs = [item for name, value in options.items() for item in (name, value)]
                    runner.call("quantize", fp_laq, "-o", output, *arguments[label], "--calib", paths["calib"], "--val", paths["calib_val"],
                                "--seed", str(seed), *pairs, *flags)
                    return runner.evaluate(output, paths["test"])
                entry = runner.run(key, produce)
                log(f"ablation {variant} {label} seed {seed}: error {100 * (1 - entry['accuracy']):.2f}")
    lines = [f"MLP test error %, calibrated, mean ± standard deviation over {seeds} seeds:", "",
             "| setting | " + " | ".join(f"`{m}`" for m in ABLATION_METHODS) + " |", "|---|" + "---:|" * len(ABLATION_METHODS)]
    for variant, _, _ in variants:
        cells = []
        for label in ABLATION_METHODS:
            numbers = [100 * (1 - v["accuracy"]) for k, v in runner.results.items() if k.startswith(f"{task}|{label}|{variant}|")]
            cells.append("–" if not numbers else f"{statistics.mean(numbers):.2f} ± {statistics.stdev(numbers):.2f}" if len(numbers) > 1 else f"{numbers[0]:.2f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write(table + "\n")


def render(results, tasks, methods, seeds, infos, quick):
    def values(task, label, mode):
        entries = [v for k, v in results.items() if k.startswith(f"{task}|{label}|{mode}|")]
        return [(e["loss"] if task == "lstm" else 100 * (1 - e["accuracy"])) for e in entries], entries

    def cell(task, label, mode, spread=True):
        numbers, _ = values(task, label, mode)
        if not numbers:
            return "–"
        digits = 3 if task == "lstm" else 2
        mean = statistics.mean(numbers)
        if not spread or len(numbers) == 1:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {statistics.stdev(numbers):.{digits}f}"

    def size(task, label, mode):
        _, entries = values(task, label, mode)
        if not entries:
            return "–"
        # Full precision: the float32 weights alone (its .laq file also holds Adam's m and v).
        return f"{entries[0].get('weights_float32_bytes', entries[0]['bytes']) / 1024:.1f} KiB"

    names = {t: TASKS[t]["title"] + (" (nats/char)" if t == "lstm" else " (error %)") for t in tasks}
    lines = [f"Test {'error % (Fashion-MNIST)' if 'lstm' not in tasks else 'error % (Fashion-MNIST) and cross-entropy (fortunes)'}, "
             f"calibrated: mean ± standard deviation over {seeds} calibration seed{'s' if seeds > 1 else ''}.", ""]
    lines.append("| group | method | bits/weight | " + " | ".join(names[t] for t in tasks) + " | file size (" + " / ".join(tasks) + "; full precision: float32 weights) |")
    lines.append("|---|---|---:|" + "---:|" * len(tasks) + "---:|")
    fp_row = "| full precision | — | 32 | " + " | ".join(cell(t, "full precision", "fp") for t in tasks) + " | " + \
             " / ".join(size(t, "full precision", "fp") for t in tasks) + " |"
    lines.append(fp_row)
    for label, _, group, bits in methods:
        lines.append(f"| {group} | `{label}` | {bits}{' (1.6 stored)' if bits == 2 else ''} | "
                     + " | ".join(cell(t, label, "calibrated") for t in tasks) + " | "
                     + " / ".join(size(t, label, "calibrated") for t in tasks) + " |")
    lines += ["", "One-shot (curvature from the imported Adam state, no training) against calibrated (mean over seeds):", ""]
    lines.append("| method | " + " | ".join(f"{TASKS[t]['title']}: one-shot | calibrated" for t in tasks) + " |")
    lines.append("|---|" + "---:|---:|" * len(tasks))
    for label, _, _, _ in methods:
        lines.append(f"| `{label}` | " + " | ".join(f"{cell(t, label, 'one-shot', False)} | {cell(t, label, 'calibrated', False)}" for t in tasks) + " |")
    lines += ["", "Settings:", ""]
    for task in tasks:
        spec = TASKS[task]
        fp = spec["fp_quick" if quick else "fp"]
        calib = spec["calib_quick" if quick else "calib"]
        seconds = [v["seconds"] for k, v in results.items() if k.startswith(f"{task}|") and "|calibrated|" in k]
        info = infos.get(task, {})
        lines.append(f"- **{spec['title']}**: {spec['architecture']}. {info.get('data', '')}. Full precision: "
                     f"{info.get('keras', 'Keras')}, Adam η = {fp['lr']}, batch {fp['batch']}, {fp['epochs']} epoch{'s' if fp['epochs'] > 1 else ''} "
                     f"({info.get('fp_training_seconds', '?')} s). Calibration: {calib['samples']:,} training samples, "
                     f"{calib['val']:,} validation samples, {calib['epochs']} epoch{'s' if calib['epochs'] > 1 else ''}, Adam η = {calib['lr']}, "
                     f"batch {calib['batch']}, weights clipped to [−1, 1], best validation epoch kept; "
                     f"{statistics.mean(seconds) if seconds else 0:.0f} s per calibrated run on average.")
    lines.append(f"- Command: `tools/reproduce{' --quick' if quick else ''}{'' if seeds == (1 if quick else 3) else f' --seeds {seeds}'}`. "
                 f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; measured {time.strftime('%Y-%m-%d')}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
