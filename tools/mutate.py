#!/usr/bin/env python3
"""Mutation tester for laq's readers of untrusted files (HDF5 .h5, Keras .keras archives, .npz).

Each run takes a real Keras file from testdata/keras (a "seed"), damages a copy of it with 1 to 4
random mutations, feeds the mutant to laq and classifies what laq did. Runs are deterministic:
run i with --seed S always makes the same mutant.

Usage:
    python3 tools/mutate.py --laq .build/release/laq --format h5 --runs 2000
    python3 tools/mutate.py --laq LAQ --format {h5,keras,npz} --runs N [--seed S] [--jobs J]
        [--timeout SECONDS] [--out DIR] [--compare-python PYTHON] [--keras-load]
        [--start I] [--source FILE ...] [--memory-limit MIB] [--keep-isolated]

    --format h5      seeds: k3_fmnist_mlp.h5, k3_tiny.h5, then tf2_*.h5 / tfk_*.h5 (tf.keras 2),
                     up to 5 under 2 MB that `laq import` accepts; command: laq import MUTANT -o x.laq
    --format keras   seeds: k3_tiny.keras, k3_fmnist_mlp.keras, then the smallest other *.keras
                     (up to 5, same rule); command: laq import MUTANT -o x.laq
    --format npz     seeds: fmnist_calibration.npz, k3_fmnist_mlp.io.npz; command:
                     laq eval OUT/model.laq --data MUTANT --y-key {labels|y} --json, where
                     OUT/model.laq is imported from k3_fmnist_mlp.h5 at start
    --source FILE    use these seeds instead (repeatable); bad seeds are still dropped
    --start I        first run index (re-run run I alone: --seed S --start I --runs 1)
    --jobs J         mutants run in parallel (default: the number of CPUs)
    --timeout S      per laq command (default 20 s); past it the process group is killed
    --out DIR        work and findings directory (default /tmp/mutate-FORMAT); OUT/work and
                     OUT/findings are emptied at start
    --compare-python the interpreter (with numpy, h5py; keras/tf_keras for --keras-load) that
                     checks accepted mutants; default .venv-zoo/bin/python if it exists.
                     "none" turns the checks off (accepted mutants are then only counted).
    --keras-load     also keras.saving.load_model (tf_keras for files written by Keras 2) every
                     accepted .h5/.keras mutant: laq accepting a file Keras refuses is a mismatch.
                     Slow (TensorFlow starts in each helper) and noisy: Keras also refuses config
                     fields laq does not use (a damaged initializer's class name, say).
    --memory-limit M run laq under an address-space limit of M MiB (ulimit -v; laq then isolates
                     every command and reports running out of memory as exit 2)
    --keep-isolated  also keep the mutants refused because laq's isolated HDF5 reader crashed

Mutations (each run picks a seed and 1-4 of these):
  - flip one bit; overwrite a byte with a random or boundary value (0x00, 0xFF, 0x7F, 0x80);
    overwrite 2/4/8 bytes with a boundary little-endian integer (0, 1, 0x7FFFFFFF, 0xFFFFFFFF,
    2^31, 2^63, 2^64-1, the file length +- a little, the old value +- 1 ...); truncate or extend.
  - .h5: half of the positions go to the first 4 KiB (superblock, root group) or to HDF5
    metadata: every byte that is not a dataset's raw data (object headers, B-trees, local and
    global heaps, symbol tables), found with h5py at start (signature windows around TREE, HEAP,
    GCOL, SNOD, OHDR, FRHP, FSHD, BTHD... when there is no comparison interpreter).
  - .keras/.npz: about a third of the runs hit only the ZIP structures readers trust (found by
    their signatures PK\x05\x06, PK\x01\x02, PK\x03\x04, PK\x06\x06, PK\x06\x07 where the archive
    puts them: end-of-central-directory record, central directory entries, local headers, ZIP64
    records; an integer field gets a boundary value or a near variant of its own, or any byte of
    the record changes); a third change only members' content and rewrite the archive with correct
    CRC-32s (so they reach the HDF5 reader inside .keras -- biased to its metadata --, the JSON
    parser, and the .npy header parser -- biased to the header); the rest mix those with raw byte
    mutations anywhere (mostly caught by the CRC-32s) and length changes.

Classes (environment SWIFT_BACKTRACE=enable=no, LAQ_HDF5_TIMEOUT=--timeout/4):
  crash     laq died of a signal, or exited with a status not in {0, 1, 2}, or its stderr contains
            "Program crashed", "Fatal error" or "Segmentation fault"; also a laq whose isolated
            HDF5 child died of SIGILL/SIGTRAP (a Swift runtime trap in laq's own code that
            isolation turned into an error message), and an export of an accepted file that
            crashed.
  hang      laq did not finish within --timeout.
  unclear   exit 1 or 2, but stderr does not start with "laq: error:" or does not name the
            mutant's path: laq must say which file is bad. (When laq reports that its isolated
            HDF5 reader crashed, the child's dying words -- glibc's "malloc(): ..." -- may come
            first; then that "laq: error:" line must name the mutant.)
  mismatch  laq accepted the mutant (exit 0) but the reference reader disagrees:
            .h5/.keras: `laq export x.laq --to npz` compared with what h5py reads from the mutant
            (legacy .h5: model_weights/<layer>/<weight_names...>, matched by layer and name
            suffix; .keras: zipfile + json + h5py on model.weights.h5, layers found by
            vars/@name as Keras 3 writes them, weights in vars order): h5py crashes or hangs on
            it, a weight is missing or extra, shapes differ, or values differ (bit for bit, NaN
            equals NaN); or h5py or zipfile cannot read it and what laq imported is not exactly
            the undamaged seed's weights; or laq cannot export what it imported.
            .npz: numpy.load cannot read the arrays laq used, their sample count differs from
            the one laq evaluated, or (for the Dense-only seed model) numpy's accuracy and loss
            computed from the same data and weights disagree with laq's.
            An error of the checker itself (traceback in the .txt) is filed as a mismatch too, to
            be seen.
  lenient   laq accepted the mutant, h5py (whose bundled HDF5 is newer and stricter than Debian's
            libhdf5 1.10.8, laq's) or zipfile refuses part of it (an attribute, a name list), and
            every weight laq imported equals what h5py reads from that weight's dataset (found by
            walking the groups where h5py refuses the name lists), or else the undamaged seed's
            weights: the damage is in metadata libhdf5 1.10 tolerates, and laq read the data
            that is there. Kept in OUT/findings/lenient/, not a failure.
  refused   exit 1 or 2 with a clean message naming the file (the expected answer for a damaged file).
  accepted  exit 0 (and the check found no difference).
A laq refusing a damaged file because its isolated HDF5 reader crashed (SIGSEGV, SIGBUS, SIGABRT
in libhdf5) is `refused`; the summary counts these separately.

Every crash, hang, unclear and mismatch mutant is kept as OUT/findings/<class>-<run>-<seed><ext>
with a .txt beside it (seed, mutations, command, exit status, stderr tail, classification, check
detail). Other mutants are deleted; OUT/runs.jsonl has one line per run (seed, mutations, class,
laq's last stderr line).

Exit status: 0 no crash, hang, unclear or mismatch; 1 some; 2 bad usage or no working seed.
The main process uses the standard library only; numpy and h5py run in one long-lived helper
process per job (the comparison interpreter, JSON lines over stdin/stdout).
"""
import argparse
import concurrent.futures
import glob
import io
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "testdata", "keras")
CLASSES = ["crash", "hang", "unclear", "mismatch", "lenient", "refused", "accepted"]
FAILURES = ("crash", "hang", "unclear", "mismatch")
CRASH_MARKERS = ("Program crashed", "Fatal error", "Segmentation fault")
MAX_SEED_BYTES = 2 << 20
MAX_SEEDS = 5
NPZ_MODEL = "k3_fmnist_mlp.h5"
H5_SIGNATURES = [b"OHDR", b"TREE", b"HEAP", b"GCOL", b"SNOD", b"FRHP", b"FSHD", b"BTHD",
                 b"OCHK", b"BTLF", b"BTIN", b"FHDB", b"FHIB", b"FSSE", b"SMTB", b"SMLI"]


# ---------------------------------------------------------------------------------------------
# The comparison helper: runs in the comparison interpreter (numpy, h5py), one JSON line per
# request on stdin, one JSON line per answer on stdout.
# ---------------------------------------------------------------------------------------------

HELPER_SOURCE = r'''
import io, json, os, re, sys, traceback, zipfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import h5py

def same(detail="same"):
    return {"verdict": "same", "detail": detail}

def differ(detail):
    return {"verdict": "mismatch", "detail": detail}

def unreadable(detail, compared=0, total=-1):
    """The reference reader (h5py with its own, newer HDF5; zipfile) refuses part of what laq
    read; `compared` of laq's `total` weights still equal what it reads from their datasets."""
    return {"verdict": "unreadable", "detail": detail, "compared": compared, "total": total}

def verdict(problems, refusals, count, compared=0):
    if problems:
        return differ("; ".join(problems + refusals))
    if refusals:
        return unreadable("; ".join(refusals), compared, count)
    return same(f"{count} weights equal")

def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)

def attribute_list(obj, name):
    """Keras' load_attributes_from_hdf5_group: the attribute, or its chunks name0, name1, ..."""
    if name in obj.attrs:
        return [text(v) for v in np.atleast_1d(obj.attrs[name])]
    values, index = [], 0
    while f"{name}{index}" in obj.attrs:
        values += [text(v) for v in np.atleast_1d(obj.attrs[f"{name}{index}"])]
        index += 1
    return values

def as_float32(value, where):
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{where}: dtype {array.dtype} is not numeric")
    return np.ascontiguousarray(array.astype(np.float32))

def compare_arrays(name, laq, ref):
    laq = np.ascontiguousarray(laq, dtype=np.float32)
    if laq.shape != ref.shape:
        return f"{name}: laq shape {list(laq.shape)}, h5py {list(ref.shape)}"
    equal = (laq.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(laq) & np.isnan(ref))
    if not equal.all():
        bad = np.flatnonzero(~equal.reshape(-1))
        i = int(bad[0])
        return (f"{name}: {bad.size} of {laq.size} values differ, first at flat index {i}: "
                f"laq {laq.reshape(-1)[i]!r}, h5py {ref.reshape(-1)[i]!r}")
    return None

def strip(name):
    return re.sub(r":\d+$", "", name)

def suffix_score(key, name):
    a, b = strip(key).split("/"), strip(name).split("/")
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n

def compare_dataset(key, value, read, where, problems, refusals):
    """Compares one weight laq exported with the dataset h5py reads (`read()`, named `where`);
    a refusal of h5py's goes to `refusals`, a difference to `problems`. True when equal."""
    try:
        ref = as_float32(read(), where)
    except Exception as e:
        refusals.append(f"{key}: h5py cannot read {where}: {type(e).__name__}: {e}")
        return False
    problem = compare_arrays(f"{key} ({where})", value, ref)
    if problem:
        problems.append(problem)
        return False
    return True

def laq_weights(path):
    with np.load(path) as z:
        return [(k, z[k]) for k in z.files]

def compare_legacy(mutant, laq):
    try:
        f = h5py.File(mutant, "r")
    except Exception as e:
        return unreadable(f"h5py cannot open the mutant: {type(e).__name__}: {e}")
    with f:
        refusals = []
        try:
            weights = f["model_weights"] if "model_weights" in f else f
        except Exception as e:
            return unreadable(f"h5py cannot open model_weights: {type(e).__name__}: {e}")
        try:
            layer_names = attribute_list(weights, "layer_names") or list(weights.keys())
        except Exception as e:
            # The values can still be compared: the layers are model_weights' own children.
            refusals.append(f"h5py cannot read the layer list: {type(e).__name__}: {e}")
            try:
                layer_names = list(weights.keys())
            except Exception as e:
                return unreadable(f"h5py cannot read the layer list or model_weights' children: {type(e).__name__}: {e}")
        by_layer = {}
        for key, value in laq:
            by_layer.setdefault(key.split("/")[0], []).append((key, value))
        problems = []
        compared = 0
        for layer in layer_names:
            ours = by_layer.pop(layer, [])
            try:
                group = weights[layer]
            except Exception as e:
                refusals.append(f"layer {layer}: h5py cannot read it: {type(e).__name__}: {e}")
                continue
            try:
                names = attribute_list(group, "weight_names")
            except Exception as e:
                # The layer's datasets, found by walking its group, in name order.
                refusals.append(f"layer {layer}: h5py cannot read weight_names: {type(e).__name__}: {e}")
                found = []
                try:
                    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
                except Exception as e:
                    refusals.append(f"layer {layer}: h5py cannot walk it: {type(e).__name__}: {e}")
                    continue
                names = sorted(found)
            if len(names) != len(ours):
                problems.append(f"layer {layer}: the file lists {len(names)} weights {names}, laq exported {len(ours)} {[k for k, _ in ours]}")
                continue
            # Greedy assignment by the longest common path suffix (exact names first), ties by order.
            pairs = sorted(((-suffix_score(k, n), i, j) for i, (k, _) in enumerate(ours) for j, n in enumerate(names)))
            used_i, used_j, assignment = set(), set(), {}
            for negative, i, j in pairs:
                if negative < 0 and i not in used_i and j not in used_j:
                    used_i.add(i); used_j.add(j); assignment[i] = j
            rest = [j for j in range(len(names)) if j not in used_j]
            for i in range(len(ours)):
                if i not in assignment:
                    assignment[i] = rest.pop(0)
            for i, (key, value) in enumerate(ours):
                name = names[assignment[i]]
                compared += compare_dataset(key, value, lambda: group[name][()], f"model_weights/{layer}/{name}", problems, refusals)
        for layer, ours in by_layer.items():
            problems.append(f"laq exported weights of layer {layer} ({[k for k, _ in ours]}) that the file's layer_names {layer_names} lack")
    return verdict(problems, refusals, len(laq), compared)

UNREADABLE_NAMES = []   # vars/@name attributes h5py refused, in the current comparison

def vars_table(group):
    table = {}
    for child in group:
        try:
            node = group[child]
            if isinstance(node, h5py.Group) and "vars" in node and "name" in node["vars"].attrs:
                name = text(node["vars"].attrs["name"])
                table.setdefault(name, child)
        except Exception as e:
            UNREADABLE_NAMES.append(f"{group.name}/{child}/vars/@name: {type(e).__name__}: {e}")
            continue
    return table

def numeric(names):
    return sorted(names, key=lambda n: (0, int(n)) if n.isdigit() else (1, n))

def layer_datasets(node):
    """A layer group's variables: vars/0, 1, ... then those of its sub-objects (cell/vars ...)."""
    found = []
    if "vars" in node:
        vars_group = node["vars"]
        for key in numeric(list(vars_group.keys())):
            found.append(vars_group[key])
    for child in sorted(node.keys()):
        if child in ("vars", "layers"):
            continue
        sub = node[child]
        if isinstance(sub, h5py.Group):
            found += layer_datasets(sub)
    return found

def compare_archive(mutant, laq):
    UNREADABLE_NAMES.clear()
    try:
        archive = zipfile.ZipFile(mutant)
        config = json.loads(archive.read("config.json"))
        if "metadata.json" in archive.namelist():
            json.loads(archive.read("metadata.json"))
        weights_bytes = archive.read("model.weights.h5")
    except Exception as e:
        return unreadable(f"zipfile/json cannot read the archive: {type(e).__name__}: {e}")
    try:
        f = h5py.File(io.BytesIO(weights_bytes), "r")
    except Exception as e:
        return unreadable(f"h5py cannot open model.weights.h5: {type(e).__name__}: {e}")
    problems = []
    refusals = []
    compared = 0
    with f:
        try:
            layers = f["layers"]
        except Exception as e:
            return unreadable(f"h5py cannot read /layers: {type(e).__name__}: {e}")
        groups = {}
        order = []
        for key, value in laq:
            parts = key.split("/")
            current, node = layers, None
            try:
                while parts:
                    table = vars_table(current)
                    if parts[0] not in table:
                        break
                    node = current[table[parts[0]]]
                    parts = parts[1:]
                    if "layers" in node and isinstance(node["layers"], h5py.Group):
                        current = node["layers"]
                    else:
                        break
            except Exception as e:
                refusals.append(f"{key}: h5py cannot walk /layers: {type(e).__name__}: {e}")
                continue
            if node is None:
                # h5py refused a vars/@name on the way: the layer may be there, unreadable to it.
                (refusals if UNREADABLE_NAMES else problems).append(f"{key}: no group under /layers has vars/@name = {key.split('/')[0]!r}" + (f" (h5py refused {UNREADABLE_NAMES[0]})" if UNREADABLE_NAMES else ""))
                continue
            if node.name not in groups:
                groups[node.name] = (node, [])
                order.append(node.name)
            groups[node.name][1].append((key, value))
        for path in order:
            node, ours = groups[path]
            try:
                datasets = layer_datasets(node)
            except Exception as e:
                refusals.append(f"{path}: h5py cannot list its variables: {type(e).__name__}: {e}")
                continue
            if len(datasets) != len(ours):
                problems.append(f"{path}: the file has {len(datasets)} variables {[d.name for d in datasets]}, laq exported {len(ours)} {[k for k, _ in ours]}")
                continue
            shapes = []
            try:
                for d in datasets:
                    shapes.append(tuple(d.shape))
            except Exception as e:
                refusals.append(f"{path}: h5py cannot read a shape: {type(e).__name__}: {e}")
                continue
            used = set()
            for i, (key, value) in enumerate(ours):
                # The variable in vars order with the same shape, else the one at the same position.
                j = next((j for j in range(len(datasets)) if j not in used and shapes[j] == tuple(np.shape(value))), None)
                if j is None:
                    j = next(j for j in range(len(datasets)) if j not in used)
                used.add(j)
                compared += compare_dataset(key, value, lambda: datasets[j][()], datasets[j].name, problems, refusals)
    return verdict(problems, refusals, len(laq), compared)

def keras_load(mutant, kind):
    try:
        if kind == "legacy":
            with h5py.File(mutant, "r") as f:
                version = text(f.attrs.get("keras_version", ""))
        else:
            version = "3"
        if version.startswith("2."):
            import tf_keras
            tf_keras.models.load_model(mutant)
        else:
            import keras
            keras.saving.load_model(mutant)
    except Exception as e:
        return f"Keras refuses to load it: {type(e).__name__}: {str(e)[:500]}"
    return None

def compare_h5(request):
    laq = laq_weights(request["laq_npz"])
    if request["kind"] == "legacy":
        answer = compare_legacy(request["mutant"], laq)
    else:
        answer = compare_archive(request["mutant"], laq)
    if answer["verdict"] == "same" and request.get("keras_load"):
        problem = keras_load(request["mutant"], request["kind"])
        if problem:
            answer = differ(problem)
    return answer

def dense_chain(model_npz, layers):
    """[(kernel, bias, activation)] of a chain of Dense layers, from laq's export."""
    with np.load(model_npz) as z:
        return [(z[f"{name}/kernel"].astype(np.float64), z[f"{name}/bias"].astype(np.float64), activation)
                for name, activation in layers]

CHAINS = {}

def compare_npz(request):
    try:
        with np.load(request["mutant"], allow_pickle=False) as z:
            x = z[request["x_key"]]
            y = z[request["y_key"]]
    except Exception as e:
        return differ(f"numpy cannot read {request['x_key']!r}/{request['y_key']!r}: {type(e).__name__}: {e}")
    samples = request["samples"]
    if x.shape[:1] != (samples,) or y.shape[:1] != (samples,):
        return differ(f"laq evaluated {samples} samples; numpy reads x {list(x.shape)}, {request['y_key']} {list(y.shape)}")
    model = request.get("model")
    if not model or x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub" or y.ndim != 1:
        return same(f"{samples} samples")
    key = (model["npz"], json.dumps(model["layers"]))
    if key not in CHAINS:
        CHAINS[key] = dense_chain(model["npz"], model["layers"])
    chain = CHAINS[key]
    if x.ndim != 2 or x.shape[1] != chain[0][0].shape[0]:
        return same(f"{samples} samples (x shape {list(x.shape)}: value check skipped)")
    h = x.astype(np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        # Rows whose values leave float32's range (laq computes in float32) are not compared.
        extreme = ~np.isfinite(h).all(axis=1) | (np.abs(h) > 1e30).any(axis=1)
        for kernel, bias, activation in chain:
            h = h @ kernel + bias
            extreme |= ~np.isfinite(h).all(axis=1) | (np.abs(h) > 1e30).any(axis=1)
            if activation == "relu":
                h = np.maximum(h, 0)
            elif activation in ("linear", "softmax", None):
                pass
            else:
                return same(f"{samples} samples (activation {activation}: value check skipped)")
        classes = h.shape[1]
        labels = y.astype(np.float64)
        integral = np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 0) & (labels < classes)
        if not integral.all():
            return same(f"{samples} samples (labels outside 0..{classes - 1}: value check skipped)")
        labels = labels.astype(np.int64)
        ordered = np.sort(h, axis=1)
        top = ordered[:, -1]
        margin = top - ordered[:, -2] if classes > 1 else np.full(samples, np.inf)
        uncertain = extreme | (margin <= 1e-4 * (1 + np.abs(top)))
        correct = (np.argmax(h, axis=1) == labels) & ~uncertain
        laq_correct = int(round(request["accuracy"] * samples))
        low, high = int(correct.sum()), int(correct.sum() + uncertain.sum())
        if not low <= laq_correct <= high:
            return differ(f"laq's accuracy {request['accuracy']} ({laq_correct} of {samples}); numpy with the same weights gets {low}..{high} correct")
        loss = request.get("loss")
        if not extreme.any() and loss is not None and chain[-1][2] == "softmax":
            # Keras' sparse categorical cross-entropy on probabilities: clipped to [1e-7, 1 - 1e-7].
            shifted = h - top[:, None]
            probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            picked = np.clip(probabilities[np.arange(samples), labels], 1e-7, 1 - 1e-7)
            reference = float(-np.log(picked).mean())
            if np.isfinite(reference) and not abs(loss - reference) <= 1e-3 * abs(reference) + 1e-4:
                return differ(f"laq's loss {loss}; numpy with the same weights computes {reference}")
    return same(f"{samples} samples, accuracy and loss agree")

def extents(request):
    """[start, end) of every dataset's raw data (contiguous or chunked) in an HDF5 file."""
    found = []
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            try:
                offset = obj.id.get_offset()
                size = obj.id.get_storage_size()
                if offset is not None and size:
                    found.append((int(offset), int(offset) + int(size)))
                elif obj.chunks:
                    for i in range(obj.id.get_num_chunks()):
                        info = obj.id.get_chunk_info(i)
                        found.append((int(info.byte_offset), int(info.byte_offset) + int(info.size)))
            except Exception:
                pass
    with h5py.File(request["path"], "r") as f:
        f.visititems(visit)
    return {"verdict": "same", "extents": sorted(found)}

def main():
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints (TensorFlow, Keras) must not break the protocol
    for line in sys.stdin:
        try:
            request = json.loads(line)
            op = request["op"]
            if op == "ping":
                answer = {"verdict": "same", "numpy": np.__version__, "h5py": h5py.__version__}
            elif op == "compare_h5":
                answer = compare_h5(request)
            elif op == "compare_npz":
                answer = compare_npz(request)
            elif op == "extents":
                answer = extents(request)
            elif op == "same_npz":
                a, b = laq_weights(request["a"]), laq_weights(request["b"])
                problems = [f"{ka} / {kb}" for (ka, va), (kb, vb) in zip(a, b) if ka != kb or compare_arrays(ka, va, vb)]
                answer = same() if len(a) == len(b) and not problems else differ(f"{len(problems)} weights differ: {problems[:5]}")
            else:
                answer = {"verdict": "error", "detail": f"unknown op {op}"}
        except Exception:
            answer = {"verdict": "error", "detail": "checker error: " + traceback.format_exc()[-2000:]}
        out.write(json.dumps(answer) + "\n")
        out.flush()

main()
'''


class Helper:
    """One comparison process (HELPER_SOURCE in the comparison interpreter), restarted when it dies."""

    def __init__(self, python, log_path):
        self.python = python
        self.log_path = log_path
        self.process = None

    def start(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
        env.setdefault("KERAS_BACKEND", "tensorflow")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.python, "-u", "-c", HELPER_SOURCE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        self.buffer = b""

    def stop(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.process = None

    def request(self, message, timeout):
        """The helper's answer; a helper that dies or hangs is restarted and says so."""
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.start()
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            return self._died()
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                return {"verdict": "hung", "detail": f"the comparison interpreter did not answer within {timeout:.0f} s"}
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return self._died()
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def _died(self):
        code = self.process.wait()
        self.stop()
        how = f"signal {signal_name(-code)}" if code < 0 else f"exit {code}"
        return {"verdict": "died", "detail": f"the comparison interpreter died ({how}) reading the mutant"}


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# ---------------------------------------------------------------------------------------------
# Running laq
# ---------------------------------------------------------------------------------------------

class Outcome:
    def __init__(self, command, code, stdout, stderr, timed_out, seconds):
        self.command, self.code, self.stdout, self.stderr = command, code, stdout, stderr
        self.timed_out, self.seconds = timed_out, seconds


def run_laq(command, timeout, memory_limit):
    # laq ends a libhdf5 call that loops after LAQ_HDF5_TIMEOUT seconds (default 20): a quarter
    # of --timeout here, so that such a file is a clean refusal and a hang is laq's own.
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no", LAQ_HDF5_TIMEOUT=str(max(1, timeout // 4)))

    def limit():
        if memory_limit:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit << 20, memory_limit << 20))

    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, start_new_session=True, preexec_fn=limit if memory_limit else None)
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(process.pid, signal.SIGKILL)  # laq and its isolated child
        except OSError:
            pass
        stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    try:
        os.killpg(process.pid, signal.SIGKILL)  # an isolated child left behind
    except OSError:
        pass
    return Outcome(command, process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                   timed_out, seconds)


ISOLATED_CRASH = re.compile(r"reading it crashed \((SIG[A-Z0-9]+)\)")


def classify(outcome, mutant, timeout):
    """(class, reason, isolated-crash signal or None) of one laq run on `mutant`."""
    if outcome.timed_out:
        return "hang", f"no exit within {timeout} s (process group killed)", None
    code, stderr = outcome.code, outcome.stderr
    if code < 0:
        return "crash", f"killed by {signal_name(-code)}", None
    if code not in (0, 1, 2):
        return "crash", f"exit status {code}", None
    for marker in CRASH_MARKERS:
        if marker in stderr:
            return "crash", f"stderr contains {marker!r}", None
    isolated = ISOLATED_CRASH.search(stderr)
    if code != 0 and isolated and isolated.group(1) in ("SIGILL", "SIGTRAP"):
        return "crash", f"the isolated child died of {isolated.group(1)} (a Swift runtime trap in laq)", None
    if code == 0:
        return "accepted", "exit 0", None
    if isolated:
        # The child's dying words (glibc's "malloc(): ...", HDF5-DIAG) may come first: the parent's
        # line is the message.
        line = next((l for l in stderr.splitlines() if ISOLATED_CRASH.search(l)), "")
        if line.startswith("laq: error:") and mutant in line:
            return "refused", f"exit {code} (the isolated HDF5 reader died of {isolated.group(1)})", isolated.group(1)
    if not stderr.startswith("laq: error:"):
        return "unclear", "stderr does not start with 'laq: error:'", None
    if mutant not in stderr:
        return "unclear", "the message does not name the mutant's path", None
    return "refused", f"exit {code}", isolated.group(1) if isolated else None


# ---------------------------------------------------------------------------------------------
# Seeds and their structure
# ---------------------------------------------------------------------------------------------

def u16(data, at):
    return struct.unpack_from("<H", data, at)[0]


def u32(data, at):
    return struct.unpack_from("<I", data, at)[0]


def merge(ranges):
    merged = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def complement(ranges, length):
    """[start, end) pieces of 0..length not covered by `ranges`."""
    gaps, at = [], 0
    for start, end in merge(ranges):
        start, end = max(0, min(start, length)), max(0, min(end, length))
        if start > at:
            gaps.append((at, start))
        at = max(at, end)
    if at < length:
        gaps.append((at, length))
    return gaps


def signature_windows(data):
    windows = []
    for signature in H5_SIGNATURES:
        for match in re.finditer(re.escape(signature), data):
            windows.append((match.start(), min(len(data), match.start() + 512)))
    return [tuple(w) for w in merge(windows)]


def h5_metadata_regions(data, helper, scratch):
    """Regions of an HDF5 image that are not raw dataset data (h5py), else signature windows."""
    if helper is not None:
        with open(scratch, "wb") as f:
            f.write(data)
        answer = helper.request({"op": "extents", "path": scratch}, 120)
        os.remove(scratch)
        if answer.get("verdict") == "same":
            return complement(answer["extents"], len(data)), "h5py"
    return signature_windows(data), "signatures"


def zip_records(data):
    """(kind, offset, length) of the ZIP structures of a readable archive."""
    records = []
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if 0 <= at and at + 22 <= len(data):
        records.append(("eocd", at, 22 + u16(data, at + 20)))
    if at >= 20 and at + 22 <= len(data) and data[at - 20:at - 16] == b"PK\x06\x07":
        records.append(("zip64_locator", at - 20, 20))
        record64 = struct.unpack_from("<Q", data, at - 12)[0]
        if record64 + 56 <= len(data) and data[record64:record64 + 4] == b"PK\x06\x06":
            records.append(("zip64_eocd", record64, 56))
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            position = archive.start_dir
            for info in archive.infolist():
                if data[position:position + 4] != b"PK\x01\x02":
                    break
                length = 46 + u16(data, position + 28) + u16(data, position + 30) + u16(data, position + 32)
                records.append(("central", position, length))
                local = info.header_offset
                if data[local:local + 4] == b"PK\x03\x04":
                    records.append(("local", local, 30 + u16(data, local + 26) + u16(data, local + 28)))
                position += length
    except (zipfile.BadZipFile, OSError, ValueError, struct.error):
        pass
    if not any(kind == "central" for kind, _, _ in records):
        # Not walkable: every signature match (some may lie in member data).
        for signature, kind, length in ((b"PK\x01\x02", "central", 46), (b"PK\x03\x04", "local", 30)):
            records += [(kind, m.start(), length) for m in re.finditer(re.escape(signature), data)]
    return records


# (offset, width) of each integer field (APPNOTE.TXT 4.3).
ZIP_FIELDS = {
    "eocd": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
    "zip64_locator": [(4, 4), (8, 8), (16, 4)],
    "zip64_eocd": [(4, 8), (12, 2), (14, 2), (16, 4), (20, 4), (24, 8), (32, 8), (40, 8), (48, 8)],
    "central": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2), (16, 4), (20, 4), (24, 4), (28, 2),
                (30, 2), (32, 2), (34, 2), (36, 2), (38, 4), (42, 4)],
    "local": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
}


def npy_header_end(member):
    if member[:6] != b"\x93NUMPY" or len(member) < 12:
        return min(len(member), 128)
    if member[6] == 1:
        return min(len(member), 10 + u16(member, 8))
    return min(len(member), 12 + u32(member, 8))


class Seed:
    def __init__(self, path, fmt):
        self.path, self.fmt = path, fmt
        self.name = os.path.basename(path)
        self.ext = os.path.splitext(path)[1]
        with open(path, "rb") as f:
            self.data = f.read()
        self.regions = []          # h5: metadata regions of the file
        self.region_source = ""
        self.members = []          # zip: [(ZipInfo, bytes)]
        self.member_regions = {}   # zip: member name -> (regions, head) for inner mutations
        self.y_key = None          # npz
        self.kind = "legacy" if fmt == "h5" else "archive"
        self.reference_npz = None  # h5/keras: laq's export of the undamaged seed

    def analyse(self, helper, scratch):
        if self.fmt == "h5":
            self.regions, self.region_source = h5_metadata_regions(self.data, helper, scratch)
            return
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            self.members = [(info, archive.read(info)) for info in archive.infolist()]
        for info, member in self.members:
            if info.filename.endswith(".h5"):
                regions, source = h5_metadata_regions(member, helper, scratch)
                self.member_regions[info.filename] = (regions, 4096)
                self.region_source = source
            elif info.filename.endswith(".npy"):
                end = npy_header_end(member)
                self.member_regions[info.filename] = ([(0, end)], end)
        if self.fmt == "npz":
            names = [info.filename for info, _ in self.members]
            self.y_key = "labels" if "labels.npy" in names else "y"


def candidate_seeds(fmt):
    def existing(names):
        return [os.path.join(TESTDATA, n) for n in names if os.path.isfile(os.path.join(TESTDATA, n))]

    def by_size(paths):
        return sorted(paths, key=lambda p: (os.path.getsize(p), p))

    if fmt == "h5":
        first = existing(["k3_fmnist_mlp.h5", "k3_tiny.h5"])
        rest = sorted(glob.glob(os.path.join(TESTDATA, "tf2_*.h5")))
        rest += by_size(glob.glob(os.path.join(TESTDATA, "tfk_*.h5")))
        rest += by_size(glob.glob(os.path.join(TESTDATA, "k3_*.h5")))
        rest = [p for p in rest if not p.endswith(".weights.h5")]
    elif fmt == "keras":
        first = existing(["k3_tiny.keras", "k3_fmnist_mlp.keras"])
        rest = by_size(p for p in glob.glob(os.path.join(TESTDATA, "*.keras")) if not os.path.basename(p).startswith("bad_"))
    else:
        first = existing(["fmnist_calibration.npz", "k3_fmnist_mlp.io.npz"])
        rest = []
    seen, result = set(), []
    for path in first + rest:
        if path not in seen and os.path.getsize(path) < MAX_SEED_BYTES:
            seen.add(path)
            result.append(path)
    return result


# ---------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------

BOUNDARY_BYTES = [0x00, 0xFF, 0x7F, 0x80]


def boundary_int(rng, width, length, original=None):
    values = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 31, 1 << 32,
              1 << 63, (1 << 64) - 1]
    values += [length + delta for delta in (-8, -2, -1, 0, 1, 2, 8)]
    if original is not None:
        values += [original + delta for delta in (-1, 1, -2, 2)] + [original * 2, original + length]
    value = rng.choice(values)
    return value & ((1 << (8 * width)) - 1)


class Target:
    """A byte buffer's mutation sites: `bias` of the picks go to its first `head` bytes or to `regions`."""

    def __init__(self, regions=None, head=4096, bias=0.0, label=""):
        self.regions, self.head, self.bias, self.label = regions or [], head, bias, label

    def pick(self, rng, length, width=1):
        if length <= width:
            return 0, ""
        where = ""
        if self.bias and rng.random() < self.bias:
            if self.regions and rng.random() < 0.5:
                start, end = rng.choice(self.regions)
                position = rng.randrange(start, max(start + 1, end))
                where = f" ({self.label} metadata)"
            else:
                position = rng.randrange(min(self.head, length))
                where = f" (first {self.head} bytes)"
        else:
            position = rng.randrange(length)
        return min(position, length - width), where


def in_place_op(rng, buffer, target):
    """One bit flip, byte or integer overwrite of `buffer` (a bytearray); its description."""
    length = len(buffer)
    if length == 0:
        return "nothing to change (empty)"
    op = rng.choices(["bit", "byte", "int"], weights=[35, 30, 35])[0]
    if op == "bit":
        position, where = target.pick(rng, length)
        bit = rng.randrange(8)
        buffer[position] ^= 1 << bit
        return f"flip bit {bit} of byte {position:#x}{where}"
    if op == "byte":
        position, where = target.pick(rng, length)
        value = rng.choice(BOUNDARY_BYTES) if rng.random() < 0.6 else rng.randrange(256)
        old = buffer[position]
        buffer[position] = value
        return f"byte {position:#x}{where}: {old:#04x} -> {value:#04x}"
    width = rng.choice([2, 4, 8])
    if length < width:
        width = 1
    position, where = target.pick(rng, length, width)
    original = int.from_bytes(buffer[position:position + width], "little")
    value = boundary_int(rng, width, length, original)
    buffer[position:position + width] = value.to_bytes(width, "little")
    return f"{width} bytes at {position:#x}{where}: {original:#x} -> {value:#x} (LE)"


def length_op(rng, buffer, target):
    """Truncates or extends `buffer` in place; its description."""
    length = len(buffer)
    if rng.random() < 0.5 and length > 1:
        if rng.random() < 0.3:
            cut = length - rng.randint(1, min(64, length - 1))
            where = " (near the end)"
        else:
            cut, where = target.pick(rng, length)
        del buffer[cut:]
        return f"truncate to {cut:#x} bytes{where} (was {length:#x})"
    count = rng.choice([1, 2, 8, 64, 512, 4096, rng.randint(1, 8192)])
    fill = rng.choice(["zeros", "0xff", "random", "copy"])
    if fill == "zeros":
        extra = bytes(count)
    elif fill == "0xff":
        extra = b"\xff" * count
    elif fill == "random":
        extra = bytes(rng.randrange(256) for _ in range(count))
    else:
        start = rng.randrange(max(1, length))
        extra = bytes(buffer[start:start + count])
    buffer += extra
    return f"extend by {len(extra)} bytes ({fill})"


def structure_op(rng, buffer, records):
    kinds = sorted({kind for kind, _, _ in records})
    kind = rng.choice(kinds)
    index, (kind, offset, length) = rng.choice([(i, r) for i, r in enumerate(r for r in records if r[0] == kind)])
    end = min(len(buffer), offset + length)
    if offset + 4 > len(buffer):
        return f"{kind} record {index} lies past the end: unchanged"
    if rng.random() < 0.65:
        field, width = rng.choice(ZIP_FIELDS[kind])
        at = offset + field
        if at + width > len(buffer):
            return f"{kind} record {index} field +{field}: past the end, unchanged"
        original = int.from_bytes(buffer[at:at + width], "little")
        value = boundary_int(rng, width, len(buffer), original)
        buffer[at:at + width] = value.to_bytes(width, "little")
        return f"{kind} record {index} at {offset:#x}, field +{field} ({width} bytes): {original:#x} -> {value:#x}"
    local = bytearray(buffer[offset:end])
    description = in_place_op(rng, local, Target())
    buffer[offset:end] = local
    return f"{kind} record {index} at {offset:#x} (relative): {description}"


def rebuild_zip(members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, data in members:
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type = info.compress_type
            copy.external_attr = info.external_attr
            copy.create_system = info.create_system
            archive.writestr(copy, data)
    return out.getvalue()


def mutate_seed(seed, rng):
    count = rng.randint(1, 4)
    descriptions = []
    if seed.fmt == "h5":
        buffer = bytearray(seed.data)
        target = Target(seed.regions, 4096, 0.5, "HDF5")
        changes = sorted(rng.random() < 0.12 for _ in range(count))  # length changes last
        for change in changes:
            descriptions.append((length_op if change else in_place_op)(rng, buffer, target))
        return bytes(buffer), descriptions
    # Zip archives: content changes (archive rewritten, CRC-32s right), then structure and raw
    # byte changes, length changes last.
    # A third of the runs change only members' content (so the ZIP layer stays valid and the
    # mutations reach the HDF5, JSON and .npy readers), a third only the ZIP structures, the rest mix.
    mode = rng.choices(["inner", "structure", "mixed"], weights=[35, 35, 30])[0]
    if mode == "mixed":
        kinds = [rng.choices(["inner", "structure", "raw", "length"], weights=[30, 30, 30, 10])[0] for _ in range(count)]
    else:
        kinds = [mode] * count
    kinds.sort(key=["inner", "structure", "raw", "length"].index)
    members = [(info, bytearray(data)) for info, data in seed.members]
    if "inner" in kinds:
        for _ in range(kinds.count("inner")):
            if seed.fmt == "keras":
                names = [info.filename for info, _ in members]
                wanted = rng.choices(["model.weights.h5", "config.json", "metadata.json"], weights=[70, 20, 10])[0]
                index = names.index(wanted) if wanted in names else rng.randrange(len(members))
            else:
                index = rng.randrange(len(members))
            info, data = members[index]
            regions, head = seed.member_regions.get(info.filename, ([], 4096))
            label = "HDF5" if info.filename.endswith(".h5") else "npy header"
            target = Target(regions, head, 0.5, label)
            description = (length_op if rng.random() < 0.1 else in_place_op)(rng, data, target)
            descriptions.append(f"member {info.filename}: {description} (archive rewritten with its CRC-32)")
        buffer = bytearray(rebuild_zip([(info, bytes(data)) for info, data in members]))
    else:
        buffer = bytearray(seed.data)
    records = zip_records(buffer)
    for kind in kinds:
        if kind == "structure" and records:
            descriptions.append(structure_op(rng, buffer, records))
        elif kind in ("structure", "raw"):
            descriptions.append(in_place_op(rng, buffer, Target()))
        elif kind == "length":
            descriptions.append(length_op(rng, buffer, Target()))
    return bytes(buffer), descriptions


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------

class Tester:
    def __init__(self, args, seeds, helper_python, npz_model):
        self.args, self.seeds = args, seeds
        self.helper_python = helper_python
        self.npz_model = npz_model  # npz: {"laq": path, "npz": path, "layers": [...] or None}
        self.local = threading.local()
        self.helpers = []
        self.lock = threading.Lock()
        self.findings_dir = os.path.join(args.out, "findings")
        self.work_dir = os.path.join(args.out, "work")

    def helper(self):
        if self.helper_python is None:
            return None
        helper = getattr(self.local, "helper", None)
        if helper is None:
            with self.lock:
                helper = Helper(self.helper_python, os.path.join(self.args.out, f"helper-{len(self.helpers)}.log"))
                self.helpers.append(helper)
            self.local.helper = helper
        return helper

    def close(self):
        for helper in self.helpers:
            helper.stop()

    def check(self, seed, mutant, directory, outcome):
        """(class, detail, seconds) of the comparison of an accepted mutant with the reference readers."""
        helper = self.helper()
        if helper is None:
            return "accepted", "not compared (no comparison interpreter)", 0.0
        started = time.monotonic()
        timeout = max(60.0, 3.0 * self.args.timeout) + (120.0 if self.args.keras_load else 0.0)
        if self.args.format == "npz":
            try:
                result = json.loads(outcome.stdout)
                request = {"op": "compare_npz", "mutant": mutant, "x_key": "x", "y_key": seed.y_key,
                           "samples": int(result["samples"]), "accuracy": float(result["accuracy"]),
                           "loss": result.get("loss")}
            except (ValueError, KeyError, TypeError) as error:
                return "mismatch", f"laq eval exited 0 but its JSON cannot be read ({error}): {outcome.stdout[-500:]!r}", 0.0
            if self.npz_model.get("layers"):
                request["model"] = {"npz": self.npz_model["npz"], "layers": self.npz_model["layers"]}
        else:
            exported = os.path.join(directory, "x.npz")
            export = run_laq([self.args.laq, "export", os.path.join(directory, "x.laq"), "--to", "npz", "-o", exported],
                             self.args.timeout, self.args.memory_limit)
            kind, reason, _ = classify(export, os.path.join(directory, "x.laq"), self.args.timeout)
            if kind in ("crash", "hang"):
                return kind, f"laq export of the imported file: {reason}: {export.stderr[-1500:]}", export.seconds
            if export.code != 0:
                return "mismatch", f"laq export cannot read what laq import wrote (exit {export.code}): {export.stderr[-1500:]}", export.seconds
            request = {"op": "compare_h5", "mutant": mutant, "kind": seed.kind, "laq_npz": exported,
                       "keras_load": self.args.keras_load}
        answer = helper.request(request, timeout)
        seconds = time.monotonic() - started
        verdict = answer.get("verdict")
        if verdict == "same":
            return "accepted", answer.get("detail", ""), seconds
        if verdict == "unreadable":
            # h5py's newer HDF5 (or zipfile) refuses metadata Debian's libhdf5 1.10 reads. When
            # every weight laq imported still equals what h5py reads from its dataset, or else the
            # undamaged seed's weights, the damage changed nothing laq reads (lenient); otherwise
            # laq read something else (mismatch).
            if answer.get("compared") == answer.get("total"):
                return "lenient", f"the reference reader refuses part of it ({answer.get('detail', '')}); every weight laq imported equals what it reads from the weight's dataset", seconds
            if seed.reference_npz and helper.request({"op": "same_npz", "a": exported, "b": seed.reference_npz}, timeout).get("verdict") == "same":
                return "lenient", f"the reference reader refuses it ({answer.get('detail', '')}); laq imported exactly the undamaged file's weights", seconds
            return "mismatch", answer.get("detail", ""), seconds
        if verdict == "mismatch":
            return "mismatch", answer.get("detail", ""), seconds
        if verdict in ("died", "hung"):
            return "mismatch", f"laq accepted a file on which {answer['detail'].replace('the comparison interpreter', 'the reference reader (h5py/numpy)')}", seconds
        return "mismatch", f"{answer.get('detail', answer)}", seconds

    def run(self, index):
        rng = random.Random(f"laq-mutate:{self.args.seed}:{index}")
        seed = rng.choice(self.seeds)
        data, descriptions = mutate_seed(seed, rng)
        directory = os.path.join(self.work_dir, f"run-{index:06d}")
        os.makedirs(directory, exist_ok=True)
        mutant = os.path.join(directory, "mutant" + seed.ext)
        with open(mutant, "wb") as f:
            f.write(data)
        if self.args.format == "npz":
            command = [self.args.laq, "eval", self.npz_model["laq"], "--data", mutant, "--y-key", seed.y_key, "--json"]
        else:
            command = [self.args.laq, "import", mutant, "-o", os.path.join(directory, "x.laq")]
        outcome = run_laq(command, self.args.timeout, self.args.memory_limit)
        kind, reason, isolated = classify(outcome, mutant, self.args.timeout)
        detail, check_seconds = "", 0.0
        if kind == "accepted":
            kind, detail, check_seconds = self.check(seed, mutant, directory, outcome)
            if kind != "accepted":
                reason = "laq accepted it (exit 0); " + ("the check: " if kind == "mismatch" else "") + detail.split("\n")[0][:300]
        kept = None
        if kind in FAILURES or kind == "lenient" or (isolated and self.args.keep_isolated):
            folder = self.findings_dir if kind in FAILURES else os.path.join(self.findings_dir, "lenient" if kind == "lenient" else "isolated")
            os.makedirs(folder, exist_ok=True)
            stem = f"{kind}-{index:06d}-{os.path.splitext(seed.name)[0]}"
            kept = os.path.join(folder, stem + seed.ext)
            shutil.copyfile(mutant, kept)
            with open(os.path.join(folder, stem + ".txt"), "w") as f:
                f.write(self.report(index, seed, descriptions, outcome, kind, reason, detail, kept))
        shutil.rmtree(directory, ignore_errors=True)
        message = outcome.stderr.strip().splitlines()[-1][:300] if outcome.stderr.strip() else ""
        return {"index": index, "class": kind, "reason": reason, "detail": detail, "isolated": isolated,
                "kept": kept, "laq_seconds": outcome.seconds, "check_seconds": check_seconds,
                "seed": seed.name, "mutations": descriptions, "message": message.replace(mutant, "MUTANT")}

    def report(self, index, seed, descriptions, outcome, kind, reason, detail, kept):
        args = self.args
        lines = [
            f"class: {kind}",
            f"reason: {reason}",
            f"check: {detail}" if detail else "check: -",
            f"seed file: {seed.path}",
            f"run: {index} (--seed {args.seed}); reproduce: python3 tools/mutate.py --laq {args.laq} --format {args.format} "
            f"--seed {args.seed} --start {index} --runs 1 --jobs 1",
            "mutations:",
            *[f"  - {d}" for d in descriptions],
            f"command: {' '.join(outcome.command)}",
            f"  (the mutant, since deleted from its work directory, is kept as {kept})",
            f"  rerun: SWIFT_BACKTRACE=enable=no {args.laq} "
            + (f"import {kept} -o /tmp/x.laq" if args.format != "npz" else f"eval {self.npz_model['laq']} --data {kept} --y-key {seed.y_key} --json"),
            f"exit status: {'timed out' if outcome.timed_out else outcome.code} after {outcome.seconds:.2f} s",
            "stderr (tail):",
            outcome.stderr[-4000:],
            "stdout (tail):",
            outcome.stdout[-1500:],
        ]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

def dense_layers(laq, model_laq, timeout, memory_limit):
    """[(name, activation)] when the model is a chain of Dense layers (for the npz value check)."""
    try:
        inspected = run_laq([laq, "inspect", model_laq, "--json"], timeout, memory_limit)
        architecture = json.loads(inspected.stdout)["model"]["architecture"]
        if architecture.get("class_name") != "Sequential":
            return None
        layers = []
        for layer in architecture["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                continue
            if layer["class_name"] != "Dense" or not layer["config"].get("use_bias", True):
                return None
            layers.append((layer["config"]["name"], layer["config"].get("activation", "linear")))
        return layers or None
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None


def prepare(args, helper):
    """The working seeds (validated: laq accepts them and the check agrees), and the npz model."""
    scratch = os.path.join(args.out, "seed-check")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    npz_model = None
    if args.format == "npz":
        source = os.path.join(TESTDATA, NPZ_MODEL)
        model_laq = os.path.join(args.out, "model.laq")
        outcome = run_laq([args.laq, "import", source, "-o", model_laq], args.timeout, args.memory_limit)
        if outcome.code != 0:
            print(f"mutate: laq import {source} failed (exit {outcome.code}): {outcome.stderr.strip()}", file=sys.stderr)
            return None, None
        model_npz = os.path.join(args.out, "model.npz")
        outcome = run_laq([args.laq, "export", model_laq, "--to", "npz", "-o", model_npz], args.timeout, args.memory_limit)
        layers = dense_layers(args.laq, model_laq, args.timeout, args.memory_limit) if outcome.code == 0 else None
        npz_model = {"laq": model_laq, "npz": model_npz, "layers": layers}
        print(f"model: {model_laq} (from {NPZ_MODEL}); value check: {'Dense chain ' + str(layers) if layers else 'off'}")

    paths = args.source or candidate_seeds(args.format)
    seeds = []
    for path in paths:
        if len(seeds) >= MAX_SEEDS and not args.source:
            break
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            print(f"  seed {path}: no such file, dropped")
            continue
        seed = Seed(path, args.format)
        try:
            seed.analyse(helper, os.path.join(scratch, "extents.h5"))
        except (zipfile.BadZipFile, OSError, ValueError, KeyError) as error:
            print(f"  seed {seed.name}: cannot analyse ({error}), dropped")
            continue
        tester = Tester(args, [seed], None, npz_model)
        if args.format == "npz":
            command = [args.laq, "eval", npz_model["laq"], "--data", path, "--y-key", seed.y_key, "--json"]
        else:
            command = [args.laq, "import", path, "-o", os.path.join(scratch, "x.laq")]
        outcome = run_laq(command, args.timeout, args.memory_limit)
        if outcome.code != 0:
            how = "timed out" if outcome.timed_out else f"exit {outcome.code}: {outcome.stderr.strip()[:200]}"
            print(f"  seed {seed.name}: laq refuses it unmodified ({how}), dropped")
            continue
        if args.format != "npz":
            seed.reference_npz = os.path.join(args.out, f"reference-{len(seeds)}.npz")
            export = run_laq([args.laq, "export", os.path.join(scratch, "x.laq"), "--to", "npz", "-o", seed.reference_npz],
                             args.timeout, args.memory_limit)
            if export.code != 0:
                seed.reference_npz = None
        if helper is not None:
            tester.helper = lambda: helper
            kind, detail, _ = tester.check(seed, path, scratch, outcome)
            if kind != "accepted":
                print(f"  seed {seed.name}: the check disagrees on the unmodified file ({kind}: {detail[:300]}), dropped")
                continue
        # The rewritten archive (inner mutations) must stay acceptable when nothing changed.
        if seed.members:
            rebuilt = os.path.join(scratch, "rebuilt" + seed.ext)
            with open(rebuilt, "wb") as f:
                f.write(rebuild_zip(seed.members))
            command[2 if args.format != "npz" else 4] = rebuilt
            outcome = run_laq(command, args.timeout, args.memory_limit)
            if outcome.code != 0:
                how = "timed out" if outcome.timed_out else f"exit {outcome.code}: {outcome.stderr.strip()[:200]}"
                print(f"  seed {seed.name}: laq refuses it once rewritten by zipfile ({how}), dropped")
                continue
        regions = sum(end - start for start, end in (seed.regions or [r for v in seed.member_regions.values() for r in v[0]]))
        print(f"  seed {seed.name}: {len(seed.data)} bytes" + (f", {regions} bytes of metadata in {len(seed.regions) or sum(len(v[0]) for v in seed.member_regions.values())} regions ({seed.region_source})" if seed.region_source else "")
              + (f", y key {seed.y_key!r}" if seed.y_key else ""))
        seeds.append(seed)
    shutil.rmtree(scratch, ignore_errors=True)
    return seeds, npz_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (head tools/mutate.py) for the mutations and classes.")
    parser.add_argument("--laq", required=True, help="the laq executable")
    parser.add_argument("--format", required=True, choices=["h5", "keras", "npz"])
    parser.add_argument("--runs", required=True, type=int)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="first run index (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per laq command (default 20)")
    parser.add_argument("--out", help="work directory (default /tmp/mutate-FORMAT)")
    parser.add_argument("--compare-python", help="interpreter with numpy and h5py for the checks, or 'none'")
    parser.add_argument("--keras-load", action="store_true", help="also load accepted mutants with Keras (slow)")
    parser.add_argument("--source", action="append", help="seed file (repeatable; default: the testdata selection)")
    parser.add_argument("--memory-limit", type=int, default=0, metavar="MIB", help="address-space limit for laq (MiB)")
    parser.add_argument("--keep-isolated", action="store_true", help="keep mutants refused after an isolated-reader crash")
    try:
        args = parser.parse_args()
    except SystemExit as exit:
        return 2 if exit.code else 0
    if args.runs < 0 or args.jobs < 1 or args.timeout <= 0 or args.start < 0:
        print("mutate: --runs, --start must be >= 0, --jobs >= 1, --timeout > 0", file=sys.stderr)
        return 2
    args.laq = os.path.abspath(args.laq)
    if not (os.path.isfile(args.laq) and os.access(args.laq, os.X_OK)):
        print(f"mutate: {args.laq} is not an executable laq", file=sys.stderr)
        return 2
    args.out = os.path.abspath(args.out or f"/tmp/mutate-{args.format}")
    os.makedirs(args.out, exist_ok=True)
    for name in ("work", "findings"):
        shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
    for log in glob.glob(os.path.join(args.out, "helper-*.log")):
        os.remove(log)
    os.makedirs(os.path.join(args.out, "work"))

    python = args.compare_python
    if python is None:
        default = os.path.join(ROOT, ".venv-zoo", "bin", "python")
        python = default if os.access(default, os.X_OK) else None
        if python is None:
            print("mutate: no .venv-zoo/bin/python: accepted mutants are not compared (--compare-python PYTHON)")
    elif python.lower() == "none":
        python = None
    helper = None
    if python is not None:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)) and shutil.which(python) is None:
            print(f"mutate: the comparison interpreter {python} is not an executable", file=sys.stderr)
            return 2
        helper = Helper(python, os.path.join(args.out, "helper-setup.log"))
        answer = helper.request({"op": "ping"}, 180)
        if answer.get("verdict") != "same":
            with open(helper.log_path, errors="replace") as log:
                tail = log.read()[-300:].strip()
            print(f"mutate: the comparison interpreter {python} does not work (needs numpy and h5py): {tail}", file=sys.stderr)
            helper.stop()
            return 2
        print(f"comparison: {python} (numpy {answer['numpy']}, h5py {answer['h5py']})" + (", with Keras loading" if args.keras_load else ""))

    print(f"laq: {args.laq}; format {args.format}; seeds:")
    seeds, npz_model = prepare(args, helper)
    if helper is not None:
        helper.stop()
    if not seeds:
        print("mutate: no working seed", file=sys.stderr)
        return 2

    tester = Tester(args, seeds, python, npz_model)
    counts = {name: 0 for name in CLASSES}
    isolated = {}
    findings = []
    laq_seconds = check_seconds = 0.0
    checked = 0
    done = 0
    step = max(1, args.runs // 20)
    started = time.monotonic()
    print(f"{args.runs} runs from index {args.start}, {args.jobs} jobs, timeout {args.timeout:g} s, out {args.out}", flush=True)

    def progress(final=False):
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        text = " ".join(f"{name} {counts[name]}" for name in CLASSES)
        print(f"{'done' if final else 'progress'}: {done}/{args.runs} runs, {elapsed:.1f} s, {rate:.2f} runs/s: {text}", flush=True)

    interrupted = False
    log = open(os.path.join(args.out, "runs.jsonl"), "w")  # one line per run: seed, mutations, class, message
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        pending = set()
        indices = iter(range(args.start, args.start + args.runs))
        # Keep at most 2 × jobs runs queued, so an interrupt stops promptly.
        for index in indices:
            pending.add(executor.submit(tester.run, index))
            if len(pending) >= 2 * args.jobs:
                break
        while pending:
            finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                log.write(json.dumps(result) + "\n")
                done += 1
                counts[result["class"]] += 1
                laq_seconds += result["laq_seconds"]
                if result["check_seconds"]:
                    check_seconds += result["check_seconds"]
                    checked += 1
                if result["isolated"]:
                    isolated[result["isolated"]] = isolated.get(result["isolated"], 0) + 1
                if result["class"] in FAILURES:
                    findings.append(result)
                    print(f"  {result['class']}: run {result['index']}: {result['reason'][:300]} -> {result['kept']}", flush=True)
                if done % step == 0 and done < args.runs:
                    progress()
                next_index = next(indices, None)
                if next_index is not None:
                    pending.add(executor.submit(tester.run, next_index))
    except KeyboardInterrupt:
        interrupted = True
        print("mutate: interrupted", file=sys.stderr)
        executor.shutdown(wait=False, cancel_futures=True)
    finally:
        executor.shutdown(wait=not interrupted)
        tester.close()
        log.close()
    elapsed = time.monotonic() - started
    progress(final=True)
    print("summary:")
    print(f"  runs: {done} in {elapsed:.1f} s ({elapsed / max(done, 1):.3f} s per mutant with {args.jobs} jobs; "
          f"laq {laq_seconds / max(done, 1):.3f} s per run, check {check_seconds / max(checked, 1):.3f} s per accepted mutant)")
    for name in CLASSES:
        print(f"  {name}: {counts[name]}")
    if isolated:
        print("  of the refused, the isolated HDF5 reader crashed: " + ", ".join(f"{k} {v}" for k, v in sorted(isolated.items())))
    if findings:
        print("  findings:")
        for result in sorted(findings, key=lambda r: r["index"]):
            print(f"    {result['kept']} ({result['class']}: {result['reason']})")
    else:
        print("  findings: none")
    shutil.rmtree(os.path.join(args.out, "work"), ignore_errors=True)
    if interrupted:
        return 130
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
