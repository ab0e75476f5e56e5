"""The deletion test of an attribution method: does removing the pixels it ranks highest hurt the model's answer more
than removing as many pixels at random?

A map that looks plausible is not thereby faithful to the model; this asks the model itself (Samek et al. 2017,
"Evaluating the visualization of what a deep neural network has learned"). A pixel is removed by setting it to the
background, an empty MNIST pixel, on 0..1 before the run's input scaling. Most of a digit's pixels are background
already, so 10% drawn at random change few of them: the bar is low, and a map that merely follows the ink clears it
too. What fails it ranks first pixels the model does not rely on.
"""

from __future__ import annotations

import torch

from digitlab.inside import attributions, model_input
from digitlab.store import LoadedRun

BACKGROUND = 0.0  # an empty MNIST pixel on 0..1
PIXELS = 28 * 28


def deletion_drop(run: LoadedRun, images: torch.Tensor, method: str, fraction: float = 0.1) -> float:
    """The mean drop in the probability of the model's answer (its most probable class for each image) when the
    ``fraction`` of pixels that ``method`` ranks highest by |attribution| for that answer are removed.
    ``images``: (N, 28, 28) on 0..1, ink 1 and background 0."""
    images = _checked(images, fraction)
    scores = attributions(run, model_input(run, images), method).abs().reshape(len(images), PIXELS)
    # Stable, so that pixels of equal score (Grad-CAM's zeroed regions) go in a reproducible order.
    ranked = scores.argsort(dim=1, descending=True, stable=True)
    return _mean_drop(run, images, ranked[:, : _count(fraction)])


def random_deletion_drop(run: LoadedRun, images: torch.Tensor, fraction: float = 0.1, draws: int = 5,
                         seed: int = 0) -> float:
    """deletion_drop's baseline: the same drop when the pixels removed are drawn at random, averaged over ``draws``
    draws per image from a generator seeded with ``seed``."""
    images = _checked(images, fraction)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a whole number of at least 1, got {draws!r}")
    generator = torch.Generator().manual_seed(seed)
    shuffled = [torch.rand(len(images), PIXELS, generator=generator).argsort(dim=1) for _ in range(draws)]
    return sum(_mean_drop(run, images, order[:, : _count(fraction)]) for order in shuffled) / draws


def _checked(images: torch.Tensor, fraction: float) -> torch.Tensor:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a share of the pixels, above 0 and at most 1, got {fraction!r}")
    if images.dim() != 3 or images.shape[1:] != (28, 28) or len(images) == 0:
        raise ValueError(f"expected images (N, 28, 28) on 0..1 with N >= 1, got {tuple(images.shape)}")
    return images.float()


def _count(fraction: float) -> int:
    return max(1, round(fraction * PIXELS))


def _mean_drop(run: LoadedRun, images: torch.Tensor, removed: torch.Tensor) -> float:
    """images (N, 28, 28), removed (N, K): the flat indices of the pixels to set to the background in each."""
    deleted = images.reshape(len(images), PIXELS).scatter(1, removed, BACKGROUND).reshape(images.shape)
    with torch.inference_mode():
        before = torch.softmax(run.model(model_input(run, images)), dim=1)
        after = torch.softmax(run.model(model_input(run, deleted)), dim=1)
    answers = before.argmax(dim=1, keepdim=True)
    return (before.gather(1, answers) - after.gather(1, answers)).mean().item()
