"""MNIST held in memory as tensors: read once through torchvision, scaled once, moved to the device once.

Batches are drawn by indexing with a random permutation: no per-sample PIL work, no DataLoader workers.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# Pixel mean and std of the MNIST training set, on the 0..1 scale.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# How a run turns 0..1 pixels into model input: (x - mean) / std. The seeds differ, and a model only works on inputs
# scaled the way it was trained, so the scaling is part of a run's config.
INPUT_SCALINGS = {
    "mnist": (MNIST_MEAN, MNIST_STD),  # MNIST's own mean and std: seeds 000, 002 and 004
    "unit": (0.0, 1.0),  # ToTensor alone, pixels on 0..1: seed 001
    "half": (0.5, 0.5),  # Normalize((0.5,), (0.5,)), pixels on -1..1: seed 003
}
# The held-out validation images are drawn by this generator seed, never the run's: every run holds out the same ones.
VALIDATION_SEED = 20240601

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

AUGMENTATIONS = ("none", "shift", "shift_rotate", "distort", "elastic")
MAX_SHIFT_PX = 2.0
MAX_ROTATION_DEG = 10.0
# "distort": generic distortions of handwriting, each drawn per image, none at a setting of the MNIST-C benchmark
# (robustness.corruptions: rotation 23°, shear 0.4, shrinking to 0.7, a 3 px shift).
DISTORT_ROTATION_DEG = 12.0
DISTORT_ZOOM = 0.12  # scaled by 0.88 to 1.12
DISTORT_SHEAR = 0.15  # x += shear * y
DISTORT_STROKE_CHANGE = 0.4  # the share of images whose strokes are thickened (half) or thinned (half) by 1 px
# Gaussian noise on half the images, its standard deviation drawn per image up to this (pixels on 0..1): no
# benchmark corruption, but akin to its shot and impulse noise, so the note's robustness figures leave those out.
DISTORT_NOISE = 0.3
# "elastic": "distort" plus Simard et al.'s elastic field (2003), a random displacement per pixel smoothed by a
# Gaussian of this width, scaled to this standard deviation: strokes bend and wobble, no longer only as a whole.
ELASTIC_SIGMA_PX = 4.0
ELASTIC_STD_PX = 1.2


class DataNotFoundError(FileNotFoundError):
    pass


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The folder that holds MNIST/raw/: an explicit path, else DIGITLAB_DATA, else ./data.

    A path to MNIST/ or MNIST/raw/ itself is accepted too, since people point at the folder they can see.
    """
    root = Path(path or os.environ.get("DIGITLAB_DATA") or "data").expanduser()
    if root.name == "raw" and root.parent.name == "MNIST":
        return root.parent.parent
    if root.name == "MNIST" and (root / "raw").is_dir():
        return root.parent
    return root


@dataclass(frozen=True)
class MNIST:
    """uint8 images (N, 28, 28) and int64 labels (N,) of both splits."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    root: Path


def load_mnist(root: str | os.PathLike | None = None, download: bool = True) -> MNIST:
    """Read MNIST once per folder and process; later calls return the same tensors."""
    return _load_mnist(data_root(root).resolve(), download)


@functools.lru_cache(maxsize=4)
def _load_mnist(root: Path, download: bool) -> MNIST:
    from torchvision import datasets  # deferred: torchvision's import costs a second and only loading needs it

    try:
        train = datasets.MNIST(root, train=True, download=download)
        test = datasets.MNIST(root, train=False, download=download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError... depending on what failed
        raw = root / "MNIST" / "raw"
        missing = [name for name in RAW_FILES if not (raw / name).exists() and not (raw / f"{name}.gz").exists()]
        tried = "downloading them failed" if download else "download was turned off"
        raise DataNotFoundError(
            f"MNIST was not found in {raw} and {tried} ({type(err).__name__}: {err}). "
            f"Expected the files {', '.join(RAW_FILES)} there"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + ". Point DIGITLAB_DATA (or --data) at the folder that contains MNIST/raw/, or connect to the "
            "internet so torchvision can download it."
        ) from err
    return MNIST(train.data, train.targets, test.data, test.targets, root)


@dataclass(frozen=True)
class TestSplit:
    """MNIST's test split alone, held as MNIST holds it: uint8 images (N, 28, 28) and int64 labels (N,)."""

    test_images: torch.Tensor
    test_labels: torch.Tensor
    root: Path


def load_test_split(root: str | os.PathLike | None = None, download: bool = True) -> TestSplit | MNIST:
    """MNIST's test split, for what reads no training image (test predictions, the corruption benchmark's cached
    results). Read from the raw files in ~0.1 s, where load_mnist imports torchvision and reads all 70,000 images
    (~1.5 s on a first page visit); where the raw files are not there, load_mnist's MNIST (it downloads them, or
    says what is missing)."""
    return _load_test_split(data_root(root).resolve(), download)


@functools.lru_cache(maxsize=4)
def _load_test_split(root: Path, download: bool) -> TestSplit | MNIST:
    raw = root / "MNIST" / "raw"
    images_file, labels_file = RAW_FILES[2:]
    try:
        images = _read_idx(raw / images_file, dims=3)
        labels = _read_idx(raw / labels_file, dims=1).long()
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"{raw} holds {len(labels)} labels for test images of shape {tuple(images.shape)}")
    except (OSError, ValueError):
        return _load_mnist(root, download)
    return TestSplit(images, labels, root)


def _read_idx(path: Path, dims: int) -> torch.Tensor:
    """An IDX file of unsigned bytes with ``dims`` dimensions, as torchvision reads it (its magic 0x08 0x0<dims>)."""
    data = path.read_bytes()
    if data[:4] != bytes((0, 0, 8, dims)):
        raise ValueError(f"{path} is not an IDX file of {dims}-D unsigned bytes")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    body = data[4 + 4 * dims :]
    if len(body) != math.prod(shape):
        raise ValueError(f"{path} holds {len(body)} bytes for a shape of {shape}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _scaling(name: str) -> tuple[float, float]:
    try:
        return INPUT_SCALINGS[name]
    except KeyError:
        raise ValueError(f"unknown input scaling {name!r}; choose one of {', '.join(INPUT_SCALINGS)}") from None


def scale_pixels(pixels: torch.Tensor, scaling: str = "mnist") -> torch.Tensor:
    """Pixels on 0..1 (any shape) -> model input under ``scaling`` (a key of INPUT_SCALINGS)."""
    return _scale_in_place(pixels.clone(), scaling)


def _scale_in_place(pixels: torch.Tensor, scaling: str) -> torch.Tensor:
    """scale_pixels on ``pixels`` itself: (x - mean) / std, the same bits without a new tensor per step."""
    mean, std = _scaling(scaling)
    return pixels.sub_(mean).div_(std)


def background(scaling: str = "mnist") -> float:
    """A black pixel under ``scaling``."""
    mean, std = _scaling(scaling)
    return (0.0 - mean) / std


BACKGROUND = background("mnist")


def normalize(images: torch.Tensor, scaling: str = "mnist") -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 model input (N, 1, 28, 28) under ``scaling``."""
    # scale_pixels(images / 255) in place on one copy: a new 188 MB tensor per step would triple the time scaling
    # the training set takes, the longest wait before a first batch.
    return _scale_in_place(images.unsqueeze(1).to(torch.float32, copy=True).div_(255.0), scaling)


def validation_indices(train_size: int, validation_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held_out) indices into the training set: ``validation_size`` images held out by a fixed permutation
    (VALIDATION_SEED, whatever the run's seed), so every run of any config holds out the same images."""
    if not 0 <= validation_size < train_size:
        raise ValueError(f"validation_size must be between 0 and {train_size - 1} for a training set of "
                         f"{train_size} images, got {validation_size}; hold out fewer images")
    order = torch.randperm(train_size, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    held_out = order[:validation_size].sort().values
    kept = order[validation_size:].sort().values
    return kept, held_out


@functools.lru_cache(maxsize=8)
def split_fingerprint(data: MNIST | TestSplit, split: str) -> str:
    """SHA-256 of one split's images and labels ("train" or "test"): what caches of a model's outputs over that
    split are keyed by, beside its weights."""
    images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    digest = hashlib.sha256(images.numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Split:
    """Scaled images (N, 1, 28, 28) and labels (N,), both on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DeviceData:
    train: Split  # the images trained on: the training set less the validation images
    test: Split
    validation: Split | None = None  # held out of the training set; None when validation_size is 0


def to_device(mnist: MNIST, device: torch.device, scaling: str = "mnist", validation_size: int = 0) -> DeviceData:
    """Scale and copy the splits to ``device``, once per (data, device, scaling, validation size) in this process."""
    return _to_device(mnist, str(device), scaling, validation_size)


@functools.lru_cache(maxsize=2)
def _to_device(mnist: MNIST, device: str, scaling: str, validation_size: int) -> DeviceData:
    def split(images: torch.Tensor, labels: torch.Tensor) -> Split:
        # Scale on the device: the uint8 copy is 4x smaller to transfer than floats.
        images = images.to(device, non_blocking=True)
        return Split(normalize(images, scaling), labels.to(device, non_blocking=True))

    test = split(mnist.test_images, mnist.test_labels)
    if not validation_size:
        return DeviceData(split(mnist.train_images, mnist.train_labels), test)
    kept, held_out = validation_indices(len(mnist.train_labels), validation_size)
    return DeviceData(split(mnist.train_images[kept], mnist.train_labels[kept]), test,
                      split(mnist.train_images[held_out], mnist.train_labels[held_out]))


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches; the last one may be smaller. The permutation is drawn on the CPU generator so a
    seed gives the same order on every device."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(split.labels.device, non_blocking=True)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def batch_count(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def elastic_field(count: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, size, size, 2) displacements in affine_grid's [-1, 1] units: white noise blurred by a Gaussian of
    ELASTIC_SIGMA_PX, scaled so that each pixel moves ELASTIC_STD_PX in each direction on average (its std)."""
    taps = torch.arange(size, dtype=torch.float32)
    blur = torch.exp(-(taps.view(-1, 1) - taps) ** 2 / (2 * ELASTIC_SIGMA_PX ** 2))  # (size, size), row i blurs pixel i
    blur = blur / blur[size // 2].norm()  # rows of unit energy: blurred white noise keeps std 1 inside the image
    noise = torch.randn(count, 2, size, size, generator=generator)
    blurred = blur @ noise @ blur.T  # down the columns, then along the rows
    return (blurred * ELASTIC_STD_PX * 2 / size).permute(0, 2, 3, 1)


def augment(images: torch.Tensor, mode: str, generator: torch.Generator | None = None, scaling: str = "mnist"
            ) -> torch.Tensor:
    """Random shifts of up to 2 px, and with "shift_rotate" rotations of up to 10 degrees, per image; "distort"
    also zooms, shears and rotates further (DISTORT_*), thickens or thins the strokes of some images, and adds
    Gaussian noise to half of them; "elastic" bends the distorted image by a smooth random field (ELASTIC_*).

    images: (B, 1, 28, 28) scaled by ``scaling``, on any device; one affine resample for the whole batch.
    """
    if mode == "none":
        return images
    b = images.shape[0]
    # affine_grid works in [-1, 1] coordinates: one pixel of a 28-wide image is 2/28.
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * MAX_SHIFT_PX * 2 / 28
    angle = torch.zeros(b)
    distort = mode in ("distort", "elastic")
    if mode == "shift_rotate" or distort:
        most = DISTORT_ROTATION_DEG if distort else MAX_ROTATION_DEG
        angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(most)
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    if distort:  # the grid maps output to input points, so dividing by the zoom enlarges the digit
        zoom = 1 + (torch.rand(b, generator=generator) * 2 - 1) * DISTORT_ZOOM
        shear = (torch.rand(b, generator=generator) * 2 - 1) * DISTORT_SHEAR
        ones, zeros = torch.ones(b), torch.zeros(b)
        sheared = torch.stack([torch.stack([ones, shear], 1), torch.stack([zeros, ones], 1)], 1)
        matrix = matrix @ sheared / zoom.view(b, 1, 1)
    theta = torch.cat([matrix, shift.unsqueeze(2)], 2).to(images.device, images.dtype, non_blocking=True)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, 28, 28, 2)
    if mode == "elastic":
        grid = grid + elastic_field(b, images.shape[-1], generator).to(grid.device, grid.dtype, non_blocking=True)
    # Resample the offset from the background so the uncovered border comes out black, not grey.
    black = background(scaling)
    moved = F.grid_sample(images - black, grid, align_corners=False) + black
    if not distort:
        return moved
    # Thicker strokes: each pixel the brightest of its 3 x 3 neighbourhood; thinner: the darkest.
    pick = torch.rand(b, generator=generator).to(images.device).view(b, 1, 1, 1)
    thicker = F.max_pool2d(moved, 3, 1, 1)
    thinner = -F.max_pool2d(-moved, 3, 1, 1)
    restroked = torch.where(pick < DISTORT_STROKE_CHANGE / 2, thicker,
                            torch.where(pick < DISTORT_STROKE_CHANGE, thinner, moved))
    noisy = torch.rand(b, generator=generator) < 0.5
    sigma = torch.rand(b, generator=generator) * DISTORT_NOISE / _scaling(scaling)[1] * noisy
    noise = torch.randn(images.shape, generator=generator) * sigma.view(b, 1, 1, 1)
    return restroked + noise.to(images.device, images.dtype, non_blocking=True)
