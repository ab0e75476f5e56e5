"""Small renderings for the pages: digits as crisp enlarged PNGs, a compact top-3 probability bar, and the Errors
gallery's cards."""

from __future__ import annotations

import base64
import io

import torch
from PIL import Image, ImageDraw

from digitlab.dashboard.charts import PALETTE

WRONG = PALETTE[3]  # the colour of a wrong answer


def digit_png(image: torch.Tensor, scale: int = 4) -> bytes:
    """A (28, 28) uint8 image enlarged ``scale`` times with nearest-neighbour, so pixels stay crisp, as PNG."""
    big = image.to(torch.uint8).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    buffer = io.BytesIO()
    Image.fromarray(big.numpy(), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_png(pixels: torch.Tensor, scale: int = 8) -> bytes:
    """A (28, 28) image on 0..1 (what preprocessing makes of a drawing), enlarged."""
    return digit_png((pixels.clamp(0, 1) * 255).round(), scale)


def top_k_bar_html(top: list[tuple[int, float]], true_label: int) -> str:
    """A thin stacked bar of the top probabilities with their digits; the true digit's share is green."""
    segments, legend = [], []
    for rank, (digit, prob) in enumerate(top):
        colour = PALETTE[2] if digit == true_label else (WRONG if rank == 0 else "#b8c2cc")
        segments.append(f'<div style="width:{prob * 100:.1f}%;background:{colour}"></div>')
        legend.append(f'<span style="color:{colour};font-weight:600">{digit}</span>&nbsp;{prob:.0%}')
    # Greys by transparency, so that they suit the light and the dark theme alike.
    return (
        '<div style="display:flex;height:6px;border-radius:3px;overflow:hidden;background:rgba(128,128,128,.18)">'
        + "".join(segments)
        + '</div><div style="font-size:0.75rem;opacity:.8;margin-top:2px;white-space:nowrap">'
        + " · ".join(legend)
        + "</div>"
    )


def error_card_html(image: torch.Tensor, true_label: int, predicted: int, confidence: float,
                    top: list[tuple[int, float]]) -> str:
    """One card of the Errors gallery as a single piece of HTML: the (28, 28) image, "true → predicted ·
    confidence", and the top-3 bar. One element instead of an image, a caption and a bar: the gallery shows 24 of
    them, and each element costs the browser time on every visit."""
    png = base64.b64encode(digit_png(image, scale=4)).decode("ascii")
    return (
        f'<figure data-true="{true_label}" data-predicted="{predicted}" style="margin:0">'
        f'<img src="data:image/png;base64,{png}" alt="test image of a {true_label}, read as {predicted}" '
        'style="width:100%;image-rendering:pixelated;border-radius:4px;display:block">'
        f'<figcaption style="margin:.35rem 0 .25rem"><b>{true_label}</b> → '
        f'<b style="color:{WRONG}">{predicted}</b> · {confidence:.0%}</figcaption>'
        + top_k_bar_html(top, true_label)
        + "</figure>"
    )


def app_icon() -> Image.Image:
    """The favicon: a hand-drawn 7 on a dark tile, made here so the browser fetches nothing from the internet."""
    tile = Image.new("RGBA", (64, 64), (31, 78, 121, 255))
    # A 7 as a pen would draw it: the bar, then the slanted stem, with round joints.
    ImageDraw.Draw(tile).line([(16, 14), (48, 14), (28, 52)], fill="white", width=7, joint="curve")
    return tile
