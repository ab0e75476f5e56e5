"""A drawing -> a 28x28 image the way MNIST's were made: crop to the ink, fit the longer side into 20 px keeping
the aspect ratio, centre the centre of mass in 28x28, then scale the pixels the way the model was trained
(a run's config.input_scaling; LoadedRun.input_from_canvas and input_from_image pass it)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from digitlab.data import normalize, scale_pixels

IMAGE_SIZE = 28
FIT_SIZE = 20  # MNIST digits were fitted into a 20x20 box inside the 28x28 image
INK_THRESHOLD = 0.1  # ink darker than this (on 0..1) is anti-aliasing dust, not drawing
MIN_INK_FRACTION = 0.001  # less ink than this share of the canvas counts as empty
MIN_EXTENT_FRACTION = 0.03  # a speck smaller than this share of the canvas side counts as empty


def ink_image(rgba) -> torch.Tensor:
    """(H, W, 4) or (H, W, 3) uint8, light ink on a dark or transparent background -> ink (H, W) on 0..1."""
    pixels = torch.as_tensor(np.array(rgba))  # a copy: the canvas hands over a read-only array
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 4) RGBA or (H, W, 3) RGB image, got shape {tuple(pixels.shape)}")
    pixels = pixels.float() / 255.0
    luminance = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
    return luminance * pixels[..., 3] if pixels.shape[2] == 4 else luminance


def fit_digit(ink: torch.Tensor) -> torch.Tensor | None:
    """Ink (H, W) on 0..1 -> a centred (28, 28) image on 0..1, or None when there is (almost) nothing drawn."""
    height, width = ink.shape
    mask = ink > INK_THRESHOLD
    if mask.sum() < MIN_INK_FRACTION * height * width:
        return None
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    top, bottom, left, right = rows[0].item(), rows[-1].item() + 1, cols[0].item(), cols[-1].item() + 1
    if max(bottom - top, right - left) < MIN_EXTENT_FRACTION * max(height, width):
        return None
    crop = ink[top:bottom, left:right]
    scale = FIT_SIZE / max(crop.shape)
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    # Antialiased resampling averages the strokes down as MNIST's scanner-and-scale pipeline did.
    small = F.interpolate(crop[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    small = (small / small.max()).clamp(0, 1)  # thin strokes fade when shrunk: bring the ink back to full strength
    ys = torch.arange(size[0], dtype=small.dtype)
    xs = torch.arange(size[1], dtype=small.dtype)
    total = small.sum()
    centre_y = (small.sum(1) * ys).sum() / total
    centre_x = (small.sum(0) * xs).sum() / total
    # Put the centre of mass on the image centre (13.5 in pixel-index coordinates), staying inside the image.
    offset_y = min(max(round((IMAGE_SIZE - 1) / 2 - centre_y.item()), 0), IMAGE_SIZE - size[0])
    offset_x = min(max(round((IMAGE_SIZE - 1) / 2 - centre_x.item()), 0), IMAGE_SIZE - size[1])
    image = torch.zeros(IMAGE_SIZE, IMAGE_SIZE)
    image[offset_y : offset_y + size[0], offset_x : offset_x + size[1]] = small
    return image


def canvas_image(rgba) -> torch.Tensor | None:
    """A canvas's (H, W, 4) uint8 RGBA -> the digit as a (28, 28) image on 0..1, or None for an empty canvas."""
    return fit_digit(ink_image(rgba))


def canvas_input(rgba, scaling: str = "mnist") -> torch.Tensor | None:
    """A canvas's (H, W, 4) uint8 RGBA -> a (1, 1, 28, 28) float batch scaled by ``scaling`` (a key of
    digitlab.data.INPUT_SCALINGS), or None for an empty canvas."""
    image = canvas_image(rgba)
    if image is None:
        return None
    return scale_pixels(image, scaling)[None, None]


def preprocess_canvas(rgba) -> torch.Tensor | None:
    """A canvas's (H, W, 4) uint8 RGBA -> an MNIST-scaled (1, 1, 28, 28) float batch, or None for an empty canvas.
    A run trained with another input scaling needs canvas_input(rgba, scaling), or LoadedRun.input_from_canvas."""
    return canvas_input(rgba, "mnist")


def image_input(images, scaling: str = "mnist") -> torch.Tensor:
    """uint8 MNIST-style images, (28, 28) or (N, 28, 28) -> a (N, 1, 28, 28) float batch scaled by ``scaling``."""
    images = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if images.dtype != torch.uint8 or images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE) or images.ndim not in (2, 3):
        raise ValueError(f"expected uint8 images of shape (28, 28) or (N, 28, 28), got {images.dtype} of shape "
                         f"{tuple(images.shape)}; MNIST's own images (data.test_images) are in this form")
    return normalize(images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), scaling)
