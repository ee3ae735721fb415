#!/usr/bin/env python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist) as .npz for laq: x float32 in [0, 1]
(n×784, or n×28×28×1 with --images), y uint8 labels.

    tools/data/fashion_mnist.py train.npz --split train [--count 6000] [--offset 0] [--images]
    tools/data/fashion_mnist.py test.npz --split test
"""
import argparse
import gzip
import sys

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist"


def read(split):
    prefix = "train" if split == "train" else "t10k"
    try:
        with gzip.open(f"{ROOT}/{prefix}-images-idx3-ubyte.gz") as f:
            images = f.read()
        with gzip.open(f"{ROOT}/{prefix}-labels-idx1-ubyte.gz") as f:
            labels = f.read()
    except FileNotFoundError:
        sys.exit(f"fashion_mnist: {ROOT} not found: apt-get install dataset-fashion-mnist")
    if images[:4] != b"\x00\x00\x08\x03" or labels[:4] != b"\x00\x00\x08\x01":
        sys.exit("fashion_mnist: unexpected IDX magic")
    n = int.from_bytes(images[4:8], "big")
    if len(images) != 16 + n * 784 or len(labels) != 8 + n:
        sys.exit("fashion_mnist: truncated IDX file")
    return np.frombuffer(images, np.uint8, offset=16).reshape(n, 784), np.frombuffer(labels, np.uint8, offset=8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--count", type=int)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--images", action="store_true", help="28×28×1 images instead of 784-vectors")
    args = parser.parse_args()
    x, y = read(args.split)
    end = len(x) if args.count is None else args.offset + args.count
    x, y = x[args.offset:end], y[args.offset:end]
    x = x.astype(np.float32) / 255
    if args.images:
        x = x.reshape(-1, 28, 28, 1)
    np.savez(args.output, x=x, y=y)
    print(f"wrote {args.output}: {len(x)} samples, x {x.shape}, y {y.shape}")


if __name__ == "__main__":
    main()
