"""Small renderings for the pages: digits as crisp enlarged PNGs, and a compact top-3 probability bar."""

from __future__ import annotations

import io

import torch
from PIL import Image

from digitlab.charts import PALETTE
from digitlab.data import MNIST_MEAN, MNIST_STD


def digit_png(image: torch.Tensor, scale: int = 4) -> bytes:
    """A (28, 28) uint8 image enlarged ``scale`` times with nearest-neighbour, so pixels stay crisp, as PNG."""
    big = image.to(torch.uint8).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    buffer = io.BytesIO()
    Image.fromarray(big.numpy(), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def normalized_png(batch: torch.Tensor, scale: int = 8) -> bytes:
    """What a model sees: a normalised (1, 1, 28, 28) batch back on 0..255, enlarged."""
    image = (batch[0, 0] * MNIST_STD + MNIST_MEAN).clamp(0, 1) * 255
    return digit_png(image.round(), scale)


def top_k_bar_html(top: list[tuple[int, float]], true_label: int) -> str:
    """A thin stacked bar of the top probabilities with their digits; the true digit's share is green."""
    segments, legend = [], []
    for rank, (digit, prob) in enumerate(top):
        colour = PALETTE[2] if digit == true_label else (PALETTE[3] if rank == 0 else "#b8c2cc")
        segments.append(f'<div style="width:{prob * 100:.1f}%;background:{colour}"></div>')
        legend.append(f'<span style="color:{colour};font-weight:600">{digit}</span>&nbsp;{prob:.0%}')
    return (
        '<div style="display:flex;height:6px;border-radius:3px;overflow:hidden;background:#eef1f4">'
        + "".join(segments)
        + '</div><div style="font-size:0.75rem;color:#555;margin-top:2px;white-space:nowrap">'
        + " · ".join(legend)
        + "</div>"
    )


def app_icon() -> Image.Image:
    """The favicon: a hand-drawn 7 on a dark tile, made here so the browser fetches nothing from the internet."""
    from digitlab.strokes import render_digit

    tile = Image.new("RGBA", (64, 64), (31, 78, 121, 255))
    ink = Image.fromarray(render_digit(7, box=(14, 10, 50, 54), stroke_width=7, size=64))
    return Image.alpha_composite(tile, ink)
