#!/usr/bin/env python3
"""Training throughput: laq's engine (`laq-bench --train`) against TensorFlow/Keras on the same
model, batch and number of steps, measured one after the other in one run.

Models (`--model`, default all): `mlp` the reproduction's Fashion-MNIST MLP 784-256-256-10,
`mlp1024` an MLP 784-1024-1024-10, `cnn` a small Fashion-MNIST CNN (28×28×1 → Conv2D 32 3×3 ReLU →
MaxPooling 2 → Conv2D 64 3×3 ReLU → MaxPooling 2 → Flatten → Dense 128 ReLU → Dense 10 softmax).
Adam 1e-3, sparse categorical cross-entropy, on one batch of Fashion-MNIST training images
(scaled to [0, 1]) and labels from Debian's `dataset-fashion-mnist` when it is installed (random
inputs otherwise; the report says which); laq gets the same batch (`laq-bench --data`).
TensorFlow runs `train_on_batch` in a loop after a warm-up (graph traced once), 2 intra-op
threads like laq's two cores.

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
FASHION = "/usr/share/datasets/fashion-mnist"


def fashion_batch(np, count):
    """The first `count` Fashion-MNIST training images (count×28×28, [0, 1]) and labels, or None."""
    import gzip
    try:
        with gzip.open(f"{FASHION}/train-images-idx3-ubyte.gz") as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(f"{FASHION}/train-labels-idx1-ubyte.gz") as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8)
    except OSError:
        return None
    return images[:count].astype(np.float32) / 255, labels[:count].astype(np.int64)


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
    fashion = fashion_batch(np, args.batch)
    source = "Fashion-MNIST" if fashion is not None else "random inputs"
    print(f"training, batch {args.batch} of {source}, {args.steps} steps (TensorFlow {tf.__version__}, Keras {keras.__version__}, 2 threads)")
    for name in args.model or MODELS:
        keras.utils.set_random_seed(1)
        model = build(keras, name)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        path = os.path.join(tempfile.mkdtemp(prefix="laq-tf-"), f"{name}.h5")
        model.save(path)
        shape = (args.batch,) + tuple(model.inputs[0].shape[1:])
        if fashion is not None:
            x, y = fashion[0].reshape(shape), fashion[1]
        else:
            rng = np.random.default_rng(3)
            x, y = rng.random(shape, dtype=np.float32), rng.integers(0, 10, args.batch)
        batch_path = os.path.join(os.path.dirname(path), "batch.npz")
        np.savez(batch_path, x=x, y=y.astype(np.float32))
        for _ in range(5):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        tf_rate = args.steps * args.batch / (time.perf_counter() - start)
        laq = json.loads(subprocess.run([args.bench, "--train", path, "--batch", str(args.batch), "--steps", str(args.steps),
                                         "--data", batch_path, "--json"], capture_output=True, text=True, check=True).stdout)
        rate = laq["samples_per_second"]
        print(f"  {describe(name):26s} TensorFlow {tf_rate:9.0f} samples/s   laq {rate:9.0f} samples/s   {rate / tf_rate:.2f}× TensorFlow")


if __name__ == "__main__":
    main()
