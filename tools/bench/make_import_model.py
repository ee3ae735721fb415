#!/usr/bin/env python3
"""Writes a ~50 MB Keras 3 model with Adam state for `laq-bench --import` (run by hand).

    /opt/laq-venv/bin/python tools/bench/make_import_model.py /tmp/import-50mb.h5

An MLP 1024-1600-1600-10 (4.2 M weights) trained for three Adam steps on random data, saved
with `model.save(path)` (legacy full-model HDF5, weights + m + v: 50 MB). A `.keras` path writes
the Keras 3 archive instead. Needs the fixture environment of tools/fixtures (keras 3).
"""
import sys

import numpy as np
import keras

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/import-50mb.h5"
keras.utils.set_random_seed(7)
model = keras.Sequential([
    keras.Input((1024,)),
    keras.layers.Dense(1600, activation="relu"),
    keras.layers.Dense(1600, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(7).normal(size=(96, 1024)).astype("float32")
y = np.arange(96) % 10
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
model.save(path)
print(path, model.count_params(), "weights")
