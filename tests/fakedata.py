"""Small MNIST-format datasets the tests write themselves, so they pass on a machine without the real files.

The images are synthetic digits (digitlab.bench.strokes) at random sizes, places and stroke widths, fitted to 28x28 the
way canvas drawings are: a model can really learn them, unlike noise.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import torch

from digitlab.preprocess import fit_digit, ink_image
from digitlab.bench.strokes import render_digit


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0, 0, ubyte, ndim), big-endian int32 sizes, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_digits(count_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = random.Random(seed)
    images, labels = [], []
    for _ in range(count_per_class):
        for digit in range(10):
            width, height = rng.uniform(20, 40), rng.uniform(40, 56)
            left, top = rng.uniform(2, 64 - width), rng.uniform(2, 64 - height)
            canvas = render_digit(digit, (left, top, left + width, top + height), rng.randint(3, 7), size=66)
            images.append((fit_digit(ink_image(canvas)) * 255).round().to(torch.uint8).numpy())
            labels.append(digit)
    return np.stack(images), np.array(labels, dtype=np.uint8)


MISLABELLED_EVERY = 25  # every 25th test image carries a wrong label, as a few of MNIST's own test labels do


def mislabel(labels: np.ndarray) -> np.ndarray:
    """A copy with every MISLABELLED_EVERY-th label moved on by 5: a model that reads those digits right is wrong on
    them, so every model, the shipped ones included, has misclassified test images for the Errors page to show."""
    labels = labels.copy()
    labels[MISLABELLED_EVERY - 1 :: MISLABELLED_EVERY] = (labels[MISLABELLED_EVERY - 1 :: MISLABELLED_EVERY] + 5) % 10
    return labels


def write_tiny_mnist(root: Path, train_per_class: int = 30, test_per_class: int = 10, seed: int = 0) -> Path:
    """Write MNIST/raw/ under ``root`` in torchvision's layout and return ``root``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(train_per_class, seed)
    test_x, test_y = synthetic_digits(test_per_class, seed + 1)
    test_y = mislabel(test_y)
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    return root
