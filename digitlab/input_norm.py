"""Input normalisation per image: the first layer of a model that reads every digit the same way whatever its
page's brightness, shading or contrast.

A model trained on MNIST's black pages reads a grey page (MNIST-C's brightness), a fogged one or one with bright
bars at its sides as a different image. These layers take that away before the first conv, for training and every
later prediction alike, so a checkpoint carries its own normalisation and no caller has to know of it:

- ``standardize``: each image shifted and scaled to mean 0 and standard deviation 1;
- ``strokes``: the background estimated by a grey-level opening (the image with every bright shape narrower than
  ``BACKGROUND_WINDOW`` pixels taken out, which keeps pen strokes, a few pixels wide, out of it) and subtracted
  (a white top-hat, as document scanners flatten a page's shading), then standardised.

Neither is an augmentation: nothing is learnt from a corrupted image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_NORMS = ("none", "standardize", "strokes")
# Wider than any pen stroke of MNIST or the Draw page once scaled to 28 x 28 px (2-6 px), narrower than a page's
# shading and than a bar at the image's side.
BACKGROUND_WINDOW = 11
# The smallest standard deviation divided by: a blank image stays blank instead of having its last bits blown up.
MIN_STD = 0.05


def _max_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """The maximum over a size x size window around each pixel of (B, C, H, W), as two 1-D passes (a square's
    maximum is separable). Pixels outside the image are ignored, not taken as black."""
    half = size // 2
    x = F.max_pool2d(x, (1, size), 1, (0, half))
    return F.max_pool2d(x, (size, 1), 1, (half, 0))


def background(x: torch.Tensor, size: int = BACKGROUND_WINDOW) -> torch.Tensor:
    """The grey-level opening of (B, 1, H, W): an erosion (minimum filter) then a dilation (maximum filter)."""
    return _max_filter(-_max_filter(-x, size), size)


class InputNormalization(nn.Module):
    """(B, 1, 28, 28) -> (B, 1, 28, 28), per image; no parameters. ``kind`` is one of INPUT_NORMS but "none"."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in INPUT_NORMS[1:]:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "strokes":
            x = x - background(x)
        mean = x.mean((1, 2, 3), keepdim=True)
        std = x.std((1, 2, 3), keepdim=True).clamp_min(MIN_STD)
        return (x - mean) / std

    def extra_repr(self) -> str:
        return self.kind
