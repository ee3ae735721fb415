#!/usr/bin/env python3
"""Writes a Keras 3 model with Adam state for the import benchmarks (run by hand).

    .venv-peers/bin/python tools/bench/make_import_model.py /tmp/import-50mb.h5
    .venv-peers/bin/python tools/bench/make_import_model.py --big /tmp/big.keras

Default: an MLP 1024-1600-1600-10 (4.2 M weights) trained for three Adam steps on random data,
saved with `model.save(path)` (legacy full-model HDF5, weights + m + v: 50 MB), for
`laq-bench --import`. A `.keras` path writes the Keras 3 archive instead.

`--big`: an MLP 2048-4096-4096-4096-10 (42.0 M weights) trained one epoch of 4 Adam steps, a
481 MiB `.keras` (docs/PERFORMANCE.md, "A large .keras archive").

Needs keras 3 with a backend (the fixture or peer environment).
"""
import sys

import numpy as np
import keras

args = [a for a in sys.argv[1:] if a != "--big"]
big = "--big" in sys.argv[1:]
path = args[0] if args else ("/tmp/big.keras" if big else "/tmp/import-50mb.h5")
keras.utils.set_random_seed(7)
widths, inputs = ([4096, 4096, 4096], 2048) if big else ([1600, 1600], 1024)
model = keras.Sequential(
    [keras.Input((inputs,))]
    + [keras.layers.Dense(w, activation="relu") for w in widths]
    + [keras.layers.Dense(10, activation="softmax")]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
samples = 128 if big else 96
x = np.random.default_rng(7).normal(size=(samples, inputs)).astype("float32")
y = np.arange(samples) % 10
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
model.save(path)
print(path, model.count_params(), "weights")
