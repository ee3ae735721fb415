#!/usr/bin/env python3
"""MLP training throughput: laq's engine (`laq-bench --train`) against TensorFlow/Keras on the
same model, batch and number of steps, measured one after the other in one run.

The model is the reproduction's Fashion-MNIST MLP (784-256-256-10, ReLU, softmax), Adam 1e-3,
sparse categorical cross-entropy, random inputs in [0, 1). TensorFlow runs `train_on_batch` in a
loop after a warm-up (graph traced once), 2 intra-op threads like laq's two cores.

    tools/bench/compare_tf.py [--batch 100] [--steps 200] [--python PYTHON_WITH_TF]
Needs a Python with tensorflow (for example `pip install tensorflow-cpu` in a venv).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "laq-bench"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import numpy as np
        import tensorflow as tf
        import keras
    except ImportError as error:
        sys.exit(f"compare_tf: {error}: run with a Python that has tensorflow")
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((784,), name="pixels"), keras.layers.Dense(256, activation="relu", name="hidden1"),
                              keras.layers.Dense(256, activation="relu", name="hidden2"),
                              keras.layers.Dense(10, activation="softmax", name="classes")], name="mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    path = os.path.join(tempfile.mkdtemp(prefix="laq-tf-"), "mlp.h5")
    model.save(path)
    rng = np.random.default_rng(3)
    x = rng.random((args.batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    for _ in range(5):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    tf_rate = args.steps * args.batch / (time.perf_counter() - start)

    laq = json.loads(subprocess.run([args.bench, "--train", path, "--batch", str(args.batch), "--steps", str(args.steps), "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    print(f"MLP 784-256-256-10 training, batch {args.batch}, {args.steps} steps (TensorFlow {tf.__version__}, Keras {keras.__version__})")
    print(f"  TensorFlow train_on_batch  {tf_rate:10.0f} samples/s")
    print(f"  laq engine                 {laq['samples_per_second']:10.0f} samples/s   {laq['samples_per_second'] / tf_rate:.2f}× TensorFlow")


if __name__ == "__main__":
    main()
