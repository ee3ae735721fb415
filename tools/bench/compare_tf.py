#!/usr/bin/env python3
"""Training throughput: laq's engine (`laq-bench --train`) against TensorFlow/Keras on the same
model, batch and number of steps, measured one after the other in one run.

Models (`--model`, default all): `mlp` the reproduction's Fashion-MNIST MLP 784-256-256-10,
`mlp1024` an MLP 784-1024-1024-10, `cnn` a small Fashion-MNIST CNN (28×28×1 → Conv2D 32 3×3 ReLU →
MaxPooling 2 → Conv2D 64 3×3 ReLU → MaxPooling 2 → Flatten → Dense 128 ReLU → Dense 10 softmax).
Adam 1e-3, sparse categorical cross-entropy, random inputs in [0, 1). TensorFlow runs
`train_on_batch` in a loop after a warm-up (graph traced once), 2 intra-op threads like laq's two
cores.

    tools/bench/compare_tf.py [--model mlp|mlp1024|cnn] [--batch 100] [--steps 200] (Python with TF)
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
MODELS = ["mlp", "mlp1024", "cnn"]


def build(keras, name):
    layers = keras.layers
    if name == "cnn":
        return keras.Sequential([keras.Input((28, 28, 1), name="image"), layers.Conv2D(32, 3, activation="relu", name="conv1"),
                                 layers.MaxPooling2D(2, name="pool1"), layers.Conv2D(64, 3, activation="relu", name="conv2"),
                                 layers.MaxPooling2D(2, name="pool2"), layers.Flatten(name="flat"),
                                 layers.Dense(128, activation="relu", name="hidden"),
                                 layers.Dense(10, activation="softmax", name="classes")], name="cnn")
    width = 1024 if name == "mlp1024" else 256
    return keras.Sequential([keras.Input((784,), name="pixels"), layers.Dense(width, activation="relu", name="hidden1"),
                             layers.Dense(width, activation="relu", name="hidden2"),
                             layers.Dense(10, activation="softmax", name="classes")], name=name)


def describe(name):
    return {"mlp": "MLP 784-256-256-10", "mlp1024": "MLP 784-1024-1024-10", "cnn": "CNN conv32-conv64-128-10"}[name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, action="append", help="repeatable; default: all")
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
    print(f"training, batch {args.batch}, {args.steps} steps (TensorFlow {tf.__version__}, Keras {keras.__version__}, 2 threads)")
    for name in args.model or MODELS:
        keras.utils.set_random_seed(1)
        model = build(keras, name)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        path = os.path.join(tempfile.mkdtemp(prefix="laq-tf-"), f"{name}.h5")
        model.save(path)
        rng = np.random.default_rng(3)
        x = rng.random((args.batch,) + tuple(model.inputs[0].shape[1:]), dtype=np.float32)
        y = rng.integers(0, 10, args.batch)
        for _ in range(5):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        tf_rate = args.steps * args.batch / (time.perf_counter() - start)
        laq = json.loads(subprocess.run([args.bench, "--train", path, "--batch", str(args.batch), "--steps", str(args.steps), "--json"],
                                        capture_output=True, text=True, check=True).stdout)
        rate = laq["samples_per_second"]
        print(f"  {describe(name):26s} TensorFlow {tf_rate:9.0f} samples/s   laq {rate:9.0f} samples/s   {rate / tf_rate:.2f}× TensorFlow")


if __name__ == "__main__":
    main()
