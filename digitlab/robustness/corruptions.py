"""Corruptions: the 15 of MNIST-C (Mu and Gilmer 2019), generated from the test set in code, deterministically
(CORRUPTIONS, corrupt), and cached in the cache folder keyed by CORRUPTIONS_VERSION and the test set's hash
(corrupted_test_set). A run's accuracy on each (corruption_benchmark) is cached beside the run keyed by its weights'
hash, or in the cache folder when the run's folder is read-only.

Each corruption takes images (N, 28, 28) float32 on 0..1 and a numpy Generator, and returns new images of that
shape, whose values it leaves to be clipped to 0..1. The parameters are MNIST-C's (the severity each function in its
corruptions.py defaults to, which the published data set was made with); where this code departs, it says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from digitlab.cache import CacheEntry, cached, is_cached, run_entry, shared_entry
from digitlab.data import MNIST, TestSplit, load_mnist, split_fingerprint
from digitlab.device import configure_cpu
from digitlab.inside import Progress
from digitlab.predict import predict, run_predictions
from digitlab.robustness.sweeps import RobustnessError, rotation_matrices, warp
from digitlab.store import LoadedRun

CACHE_PREFIX = "robustness"  # beside a run: robustness-corruptions.safetensors


def _gaussian(images: np.ndarray, sigma: float, across_columns: bool = True) -> np.ndarray:
    """skimage.filters.gaussian on each image (mode "nearest", truncated at 4σ), for the whole batch at once.
    across_columns=False blurs down the columns only: what MNIST-C's gaussian(image, sigma, multichannel=True)
    did to a 2-D image, scikit-image taking its last axis (the columns) for colour channels."""
    from scipy import ndimage

    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma if across_columns else 0), mode="nearest",
                                   truncate=4.0)


def _affine(images: np.ndarray, matrices: torch.Tensor, shifts: torch.Tensor | None = None) -> np.ndarray:
    return warp(torch.from_numpy(images), matrices, shifts).numpy()


def _signs(rng: np.random.Generator, shape) -> torch.Tensor:
    return torch.from_numpy(rng.choice([-1.0, 1.0], size=shape)).float()


def shot_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise at 3 photons for a white pixel (severity 5)."""
    return rng.poisson(x * 3.0) / 3.0


def impulse_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on 17% of the pixels (severity 4), by scikit-image."""
    from skimage.util import random_noise

    return random_noise(x, mode="s&p", amount=0.17, rng=rng)


def glass_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur (σ 0.7, vertical, as MNIST-C's call did), swap each pixel with a neighbour up to 1 px away at random,
    twice over, blur again (severity 1). The swaps go pixel by pixel in MNIST-C's order, for all images at once."""
    sigma, delta, iterations = 0.7, 1, 2
    # MNIST-C swaps uint8 pixels: np.uint8() truncates.
    x = np.floor(_gaussian(x, sigma, across_columns=False) * 255)
    n = len(x)
    rows = np.arange(n)
    for _ in range(iterations):
        for h in range(28 - delta, delta, -1):
            for w in range(28 - delta, delta, -1):
                swap = rng.random(n) < 0.5
                dx, dy = rng.integers(-delta, delta, size=(2, n))
                chosen, h2, w2 = rows[swap], h + dy[swap], w + dx[swap]
                here = x[chosen, h, w].copy()
                x[chosen, h, w] = x[chosen, h2, w2]
                x[chosen, h2, w2] = here
    return _gaussian(x / 255, sigma, across_columns=False)


def motion_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur (radius 10, σ 3, severity 1) at an angle from -45° to 45°: a one-sided Gaussian
    kernel of 21 taps along that direction. MNIST-C calls ImageMagick; this is its kernel, written out."""
    radius, sigma = 10, 3.0
    taps = np.arange(2 * radius + 1)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    angle = np.deg2rad(rng.uniform(-45, 45, len(x)))
    # ImageMagick's offsets: ceil(i·cos θ - 0.5) in x and ceil(i·sin θ - 0.5) in y, per tap i; (N, taps)
    off_x = np.ceil(taps * np.cos(angle)[:, None] - 0.5).astype(int)
    off_y = np.ceil(taps * np.sin(angle)[:, None] - 0.5).astype(int)
    pad = len(taps)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    n = np.arange(len(x))[:, None, None]
    r, c = np.arange(28)[None, :, None] + pad, np.arange(28)[None, None, :] + pad
    out = np.zeros_like(x)
    for i, weight in enumerate(weights):
        out += weight * padded[n, r + off_y[:, i, None, None], c + off_x[:, i, None, None]]
    return out


def shear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shear by 0.4 (severity 2), left or right at random, about the centre: skimage's (0.15) AffineTransform
    matrix [[1, -sin s], [0, cos s]] as MNIST-C used it."""
    s = 0.4 * _signs(rng, len(x))
    matrices = torch.stack([torch.stack([torch.ones_like(s), -s.sin()], 1),
                            torch.stack([torch.zeros_like(s), s.cos()], 1)], 1)
    return _affine(x, matrices)


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shrunk to 0.7 of its size about the centre (severity 3)."""
    return _affine(x, torch.eye(2).expand(len(x), 2, 2) / 0.7)


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turned by 0.4 rad (23°) about the centre, either way at random (severity 2)."""
    return _affine(x, rotation_matrices(0.4 * _signs(rng, len(x))))


def brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on the HSV value (severity 5). MNIST-C goes grey -> RGB -> HSV and back; a grey pixel has no
    saturation and its value is its grey level, so that is the grey level plus 0.5."""
    return x + 0.5


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moved 3 px in x and 3 px in y (severity 3), each way at random."""
    return _affine(x, torch.eye(2).expand(len(x), 2, 2), 3.0 * _signs(rng, (len(x), 2)))


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 7 columns at each side inverted."""
    x = x.copy()
    x[:, :, :7] = 1 - x[:, :, :7]
    x[:, :, 21:] = 1 - x[:, :, 21:]
    return x


def _plasma_fractals(count: int, rng: np.random.Generator, size: int = 256, decay: float = 1.4) -> np.ndarray:
    """MNIST-C's plasma fractal (diamond-square), ``count`` maps (count, size, size) on 0..1 at once."""
    maps = np.zeros((count, size, size), dtype=np.float32)
    step, wibble = size, 100.0

    def wibbled_mean(values: np.ndarray) -> np.ndarray:
        return values / 4 + wibble * rng.uniform(-wibble, wibble, values.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled_mean(squares)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = wibbled_mean(top)
        step //= 2
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


FOG_MAPS = 200


def fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plasma fractal at strength 3 (decay 1.4, severity 5) added, then the image rescaled so its brightest
    pixel keeps its share. MNIST-C takes the top-left 28 x 28 of one 256 x 256 fractal per image; here each image
    takes a 28 x 28 crop at a random place of one of 200 fractals, the same texture at a 50th of the cost."""
    strength = 3.0
    maps = _plasma_fractals(FOG_MAPS, rng)
    n = len(x)
    which = rng.integers(0, FOG_MAPS, n)
    top, left = rng.integers(0, 256 - 28, (2, n))
    r = top[:, None, None] + np.arange(28)[None, :, None]
    c = left[:, None, None] + np.arange(28)[None, None, :]
    patches = maps[which[:, None, None], r, c]
    brightest = x.max(axis=(1, 2), keepdims=True)
    return (x + strength * patches) * brightest / (brightest + strength)


def spatter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blobs of mud (grey 63/255) from thresholded, blurred noise (severity 4: 0.65, 0.3, σ 1, threshold 0.65,
    σ 1.5)."""
    liquid = _gaussian(rng.normal(0.65, 0.3, x.shape).astype(np.float32), 1.0)
    liquid[liquid < 0.65] = 0
    mask = _gaussian((liquid > 0.65).astype(np.float32), 1.5)
    mask[mask < 0.8] = 0
    return x * (1 - mask) + 63 / 255 * mask


def _lines(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """MNIST-C's line_from_points for N lines at once: (N, 28, 28) on 0..1, a soft line through (c0, r0) and
    (c1, r1) that fades over 2.3 px (log(1 - d/2.3) + 1), cut to the columns floor(c0) .. ceil(c1); nothing for a
    vertical one."""
    c0, r0, c1, r1 = (np.asarray(v, dtype=np.float64)[:, None, None] for v in (c0, r0, c1, r1))
    cc, rr = np.arange(28)[None, None, :], np.arange(28)[None, :, None]
    vertical = c1 == c0
    slope = (r1 - r0) / np.where(vertical, 1, c1 - c0)
    distance = np.clip(np.abs(rr - (slope * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    outside = (cc < np.floor(c0)) | (cc >= np.ceil(c1)) | vertical
    return np.where(outside, 0.0, line)


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A line across the image from row r0 at the left to row r1 at the right, 2 columns drawn, 2 left out."""
    r0, r1 = rng.integers(0, 27, (2, len(x)))
    line = _lines(np.zeros(len(x)), r0, np.full(len(x), 27), r1)
    line[:, :, (np.arange(28) // 2) % 2 == 0] = 0
    return x + line


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag (teeth 2 px long and 2 px high) from column 2 to 25, tilted by up to 5 rows."""
    a, b, c0, c1 = 2.0, 2.0, 2, 25
    n = len(x)
    r0 = rng.integers(0, 27, n)
    r1 = r0 + rng.integers(-5, 5, n)
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    # For these tilts (|θ| < 13°) d lies in 23..23.6: six teeth and a last short segment for every image.
    teeth = int((d[0] - a) // (2 * a)) + 1
    assert np.all((d - a) // (2 * a) + 1 == teeth) and np.all(2 * a * (d // (2 * a)) != d)
    cols = [np.zeros(n)] + [np.full(n, (2 * i + 1) * a) for i in range(teeth)]
    rows = [np.zeros(n)] + [np.full(n, (-1.0) ** i * b) for i in range(teeth)]
    last_row = (-1.0) ** (teeth - 1) * b
    cols.append(d)
    rows.append(last_row / (2 * (d - 2 * a * (d // (2 * a)))))
    cols, rows = np.stack(cols, 1), np.stack(rows, 1)  # (N, points)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    cs, rs = cos * cols - sin * rows + c0, sin * cols + cos * rows + r0[:, None]
    for i in range(1, cs.shape[1]):
        x = np.clip(x + _lines(cs[:, i - 1], rs[:, i - 1], cs[:, i], rs[:, i]), 0, 1)
    return x


def canny_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The edges scikit-image's Canny detector finds (σ 1), white on black."""
    from skimage.feature import canny

    return np.stack([canny(image) for image in x]).astype(np.float32)


@dataclass(frozen=True)
class Corruption:
    name: str
    label: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]


CORRUPTIONS = {c.name: c for c in (
    Corruption("shot_noise", "Shot noise", shot_noise),
    Corruption("impulse_noise", "Impulse noise", impulse_noise),
    Corruption("glass_blur", "Glass blur", glass_blur),
    Corruption("motion_blur", "Motion blur", motion_blur),
    Corruption("shear", "Shear", shear),
    Corruption("scale", "Scale", scale),
    Corruption("rotate", "Rotate", rotate),
    Corruption("brightness", "Brightness", brightness),
    Corruption("translate", "Translate", translate),
    Corruption("stripe", "Stripe", stripe),
    Corruption("fog", "Fog", fog),
    Corruption("spatter", "Spatter", spatter),
    Corruption("dotted_line", "Dotted line", dotted_line),
    Corruption("zigzag", "Zigzag", zigzag),
    Corruption("canny_edges", "Canny edges", canny_edges),
)}
# Change it whenever any corruption's code changes: the corrupted sets and every run's results are then rebuilt.
CORRUPTIONS_VERSION = "mnist-c-digitlab-1"
CORRUPTION_SEED = 1906_02337  # the paper's arXiv number


def corrupt(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 images (N, 28, 28) under corruption ``name``: uint8 (N, 28, 28). Deterministic: the same images give
    the same result (each corruption draws from its own seeded generator)."""
    if name not in CORRUPTIONS:
        raise RobustnessError(f"Unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}.")
    rng = np.random.default_rng([CORRUPTION_SEED, list(CORRUPTIONS).index(name)])
    pixels = images.numpy().astype(np.float32) / 255
    out = CORRUPTIONS[name].apply(pixels, rng)
    return torch.from_numpy(np.clip(np.rint(np.asarray(out, dtype=np.float64) * 255), 0, 255).astype(np.uint8))


def _set_entry(data: MNIST, name: str) -> CacheEntry:
    test_sha256 = split_fingerprint(data, "test")
    return shared_entry(f"mnist-c/{test_sha256[:16]}/{name}.safetensors",
                        {"format": CORRUPTIONS_VERSION, "corruption": name, "test_sha256": test_sha256},
                        {"images": data.test_images.shape})


def corrupted_cached(data: MNIST, name: str) -> bool:
    return is_cached(_set_entry(data, name))


def corrupted_test_set(name: str, data: MNIST | None = None) -> torch.Tensor:
    """The test set under corruption ``name``, uint8 (N, 28, 28): read from the cache folder, or generated (and
    cached there). A file from another version of this code, or a damaged one, is generated again."""
    data = data or load_mnist()
    return cached(_set_entry(data, name), lambda: {"images": corrupt(data.test_images, name)})["images"]


@dataclass(frozen=True)
class CorruptionResult:
    clean: float  # accuracy on the test set as it is
    accuracy: dict[str, float]  # per corruption, in CORRUPTIONS order

    @property
    def mean(self) -> float:
        """The mean accuracy over the corruptions (the clean set not included)."""
        return sum(self.accuracy.values()) / len(self.accuracy)


def _benchmark_entry(run: LoadedRun, data: MNIST | TestSplit) -> CacheEntry:
    key = {"format": "digitlab-robustness-corruptions-1", "weights_sha256": run.weights_sha256,
           "test_sha256": split_fingerprint(data, "test"), "corruptions": CORRUPTIONS_VERSION,
           "names": ",".join(CORRUPTIONS), "input_scaling": run.config.input_scaling}
    return run_entry(run, "corruptions", key, {"clean": (), "accuracy": (len(CORRUPTIONS),)}, CACHE_PREFIX)


def _result(tensors: dict[str, torch.Tensor]) -> CorruptionResult:
    return CorruptionResult(tensors["clean"].item(), dict(zip(CORRUPTIONS, tensors["accuracy"].tolist())))


def benchmark_cached(run: LoadedRun, data: MNIST | TestSplit) -> CorruptionResult | None:
    """The run's corruption benchmark when it has been computed for these weights and test set, else None."""
    found = _benchmark_entry(run, data).read()
    return None if found is None else _result(found)


def corruption_benchmark(run: LoadedRun, data: MNIST | None = None, progress: Progress | None = None
                         ) -> CorruptionResult:
    """The run's accuracy on the clean test set and on each corruption of it: read from the cache, or computed
    (generating the corrupted sets first where they are not cached yet) and cached. ``progress`` is told
    (done, total) after each corrupted set generated and each evaluated."""
    data = data or load_mnist()

    def compute() -> dict[str, torch.Tensor]:
        configure_cpu()
        model = run.model.to(memory_format=torch.channels_last)  # as run_predictions: oneDNN's fastest conv layout
        to_generate = [name for name in CORRUPTIONS if not corrupted_cached(data, name)]
        total, done = len(to_generate) + len(CORRUPTIONS), 0
        accuracy = []
        for name in CORRUPTIONS:
            images = corrupted_test_set(name, data)
            if name in to_generate:
                done += 1
                if progress is not None:
                    progress(done, total)
            predicted = predict(model, run.input_from_image(images)).argmax(1)
            accuracy.append((predicted == data.test_labels).double().mean().item())
            done += 1
            if progress is not None:
                progress(done, total)
        return {"clean": torch.tensor(run_predictions(run, data).accuracy, dtype=torch.float64),
                "accuracy": torch.tensor(accuracy, dtype=torch.float64)}

    return _result(cached(_benchmark_entry(run, data), compute))


def format_table(results: dict[str, CorruptionResult]) -> str:
    """The benchmark as text: one row per corruption, one column per run, the clean accuracy first and the mean
    over corruptions last, accuracies in percent."""
    names = list(results)
    width = max(14, *(len(n) for n in names))
    header = f"{'corruption':14}" + "".join(f" {n:>{width}}" for n in names)

    def row(label: str, values: list[float]) -> str:
        return f"{label:14}" + "".join(f" {v:>{width}.2%}" for v in values)

    lines = [header, row("clean", [r.clean for r in results.values()])]
    lines += [row(name, [r.accuracy[name] for r in results.values()]) for name in CORRUPTIONS]
    lines.append(row("mean", [r.mean for r in results.values()]))
    return "\n".join(lines)
