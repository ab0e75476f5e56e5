"""Perturbation sweeps: one transformation (TRANSFORMS) over a range of values (sweep_values), the steps made by
perturb and sent through each model as one batch (sweep).

Also what the robustness lab's other modules build on: RobustnessError, a run's probabilities on images on 0..1,
and the batched affine warp that MNIST-C's geometric corruptions use too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from digitlab.device import one_thread
from digitlab.inside import model_input
from digitlab.predict import predict
from digitlab.store import LoadedRun

_CENTRE = 13.5  # the middle of a 28-pixel axis, in pixel-centre coordinates (0 .. 27)


class RobustnessError(ValueError):
    """A sweep range, an ε or a method out of bounds; the message says which values are allowed."""


@dataclass(frozen=True)
class Transform:
    name: str
    label: str  # what the page calls it
    unit: str
    low: float  # the widest range a sweep may span
    high: float
    identity: float  # the value that leaves an image as it is

    def describe(self, value: float) -> str:
        return f"{value:+.3g}{self.unit}" if self.identity == 0 else f"{value:.3g}{self.unit}"


TRANSFORMS = {t.name: t for t in (
    Transform("rotation", "Rotation", "°", -60.0, 60.0, 0.0),  # positive: clockwise, as seen
    Transform("shift_x", "Shift in x", " px", -8.0, 8.0, 0.0),  # positive: to the right
    Transform("shift_y", "Shift in y", " px", -8.0, 8.0, 0.0),  # positive: down
    Transform("scale", "Scale", "×", 0.5, 1.5, 1.0),  # about the image's centre
    # Negative: that many erosions (thinner strokes), positive: dilations (thicker), each by a 3x3 cross (1 px off
    # or onto each side of a stroke); a fraction blends the two nearest whole steps.
    Transform("thickness", "Stroke thickness", " px", -2.0, 2.0, 0.0),
    Transform("blur", "Blur", " px σ", 0.0, 3.0, 0.0),  # Gaussian
    Transform("noise", "Noise", " σ", 0.0, 1.0, 0.0),  # one fixed Gaussian pattern, scaled by the value, clipped
)}
SWEEP_STEPS = 25
MAX_SWEEP_STEPS = 101
NOISE_SEED = 20190606


def sweep_errors(transform: str, low: float, high: float, steps: int = SWEEP_STEPS) -> dict[str, str]:
    """{field: message} for a sweep's settings ("transform", "low", "high", "steps"); empty when they are fine."""
    if transform not in TRANSFORMS:
        return {"transform": f"Unknown transformation {transform!r}; choose one of {', '.join(TRANSFORMS)}."}
    t, errors = TRANSFORMS[transform], {}
    for field, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            errors[field] = f"Enter a number, got {value!r}."
        elif not t.low <= value <= t.high:
            errors[field] = f"{t.label} runs from {t.low:g} to {t.high:g}{t.unit}; got {value:g}."
    if not errors and low >= high:
        errors["high"] = f"The end of the sweep ({high:g}) must be above its start ({low:g})."
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_SWEEP_STEPS:
        errors["steps"] = f"Steps must be a whole number from 2 to {MAX_SWEEP_STEPS}, got {steps!r}."
    return errors


def sweep_values(transform: str, low: float | None = None, high: float | None = None,
                 steps: int = SWEEP_STEPS) -> torch.Tensor:
    """(steps,) evenly spaced values from ``low`` to ``high`` (the transformation's whole range by default);
    RobustnessError for settings out of range. The default 25 steps pass through the identity value."""
    t = TRANSFORMS.get(transform)
    low = t.low if low is None and t else low
    high = t.high if high is None and t else high
    errors = sweep_errors(transform, low, high, steps)
    if errors:
        raise RobustnessError(" ".join(errors.values()))
    values = torch.linspace(low, high, steps, dtype=torch.float64)
    # linspace lands a rounding error off the identity (-8..8: 1e-16 for 0): snap it, so that step is exact.
    values[(values - t.identity).abs() < 1e-9] = t.identity
    return values.float()


def warp(images: torch.Tensor, matrices: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
    """skimage.transform.warp's inverse map with bilinear sampling and black outside, for a batch: output pixel
    p samples the input at matrices @ (p - centre) + centre + shifts, in (x, y) pixel coordinates.

    images (N, 28, 28); matrices (N, 2, 2); shifts (N, 2) or None."""
    n = images.shape[0]
    shifts = torch.zeros(n, 2) if shifts is None else shifts
    # affine_grid's coordinates with align_corners=True: -1 and 1 are the centres of the first and last pixels.
    theta = torch.cat([matrices, (shifts / _CENTRE).unsqueeze(2)], 2).float()  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, 1, 28, 28], align_corners=True)
    return F.grid_sample(images.float().unsqueeze(1), grid, align_corners=True).squeeze(1)


def rotation_matrices(radians: torch.Tensor) -> torch.Tensor:
    """(N,) angles -> (N, 2, 2) [[cos, -sin], [sin, cos]] on (x, y), y pointing down."""
    cos, sin = radians.cos(), radians.sin()
    return torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _thickness_levels(image: np.ndarray, steps: int) -> dict[int, np.ndarray]:
    """The image eroded (negative) and dilated (positive) by a 3x3 cross, 0 to ``steps`` times each way."""
    from scipy import ndimage

    levels = {0: image}
    for direction, operation in ((-1, ndimage.grey_erosion), (1, ndimage.grey_dilation)):
        current = image
        for k in range(1, steps + 1):
            current = operation(current, footprint=_CROSS, mode="constant", cval=0.0)
            levels[direction * k] = current
    return levels


def perturb(image: torch.Tensor, transform: str, values: torch.Tensor) -> torch.Tensor:
    """The (28, 28) image on 0..1 under ``transform`` at each value: (S, 28, 28) on 0..1. At the identity value
    the image comes back exactly as it was."""
    from scipy import ndimage

    if transform not in TRANSFORMS:
        raise RobustnessError(f"Unknown transformation {transform!r}; choose one of {', '.join(TRANSFORMS)}.")
    image = image.float().reshape(28, 28)
    values = values.float().reshape(-1)
    s = len(values)
    batch = image.expand(s, 28, 28)
    identity = torch.eye(2).expand(s, 2, 2)
    if transform == "rotation":
        out = warp(batch, rotation_matrices(torch.deg2rad(-values)))  # sampling at -θ turns the digit by θ
    elif transform in ("shift_x", "shift_y"):
        axis = 0 if transform == "shift_x" else 1
        shifts = torch.zeros(s, 2)
        shifts[:, axis] = -values  # the digit moves by +value: each pixel samples from -value
        out = warp(batch, identity, shifts)
    elif transform == "scale":
        out = warp(batch, identity / values.clamp(min=1e-6)[:, None, None])
    elif transform == "thickness":
        levels = _thickness_levels(image.numpy(), math.ceil(values.abs().max().item()))
        out = torch.stack([_blend_levels(levels, v) for v in values.tolist()])
    elif transform == "blur":
        out = torch.stack([torch.from_numpy(ndimage.gaussian_filter(image.numpy(), sigma=v, mode="constant"))
                           for v in values.tolist()])
    else:  # noise
        pattern = torch.randn(28, 28, generator=torch.Generator().manual_seed(NOISE_SEED))
        out = batch + values[:, None, None] * pattern
    out = out.clamp(0, 1)
    at_identity = (values == TRANSFORMS[transform].identity)[:, None, None]
    return torch.where(at_identity, image, out)


def _blend_levels(levels: dict[int, np.ndarray], value: float) -> torch.Tensor:
    below, above = math.floor(value), math.ceil(value)
    weight = value - below
    return torch.from_numpy((1 - weight) * levels[below] + weight * levels[above]).float()


def probabilities(run: LoadedRun, images: torch.Tensor) -> torch.Tensor:
    """(N, 10) class probabilities of images (N, 28, 28) on 0..1, in one forward pass per 1,000."""
    return predict(run.model, model_input(run, images))


@dataclass(frozen=True)
class Sweep:
    """One run's answers along a sweep."""

    values: torch.Tensor  # (S,)
    probs: torch.Tensor  # (S, 10)

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(1)

    def confidence(self, digit: int) -> torch.Tensor:
        """(S,) the probability of ``digit`` at each step."""
        return self.probs[:, digit]

    def changes(self) -> list[int]:
        """The steps whose predicted digit differs from the step before."""
        predicted = self.predicted
        return (predicted[1:] != predicted[:-1]).nonzero().flatten().add(1).tolist()


def sweep(run: LoadedRun, images: torch.Tensor, values: torch.Tensor) -> Sweep:
    """The run's answers on the perturbed images (S, 28, 28) that perturb made at ``values`` (S,), in one forward
    pass on one thread: for 25 small images a second thread gains little, and on a busy machine every op would wait
    for it."""
    with one_thread():
        return Sweep(values, probabilities(run, images))
