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


def _heat(values: torch.Tensor) -> torch.Tensor:
    """(..., H, W) values -> uint8 grey levels, each map scaled to its own largest value (a dead map is black)."""
    top = values.flatten(-2).amax(-1).clamp(min=1e-12)[..., None, None]
    return (values.clamp(min=0) / top * 255).round().to(torch.uint8)


def map_grid_png(values: torch.Tensor, limit: int | None = 16, columns: int = 4, cell: int = 56) -> bytes:
    """A layer's output as one PNG: the first ``limit`` channels of a (C, H, W) map as a grid of tiles, or a
    vector (N,) (or (N, 1, 1)) as a row of squares, brightest where the value is largest. One image instead of a
    widget per channel: four models side by side stay readable and quick to draw (four tiles to a row: at eight, a
    28 x 28 map shrinks to about 20 screen pixels in a quarter of the page). A vector shows all its values."""
    if values.dim() == 1 or values.shape[-2:] == (1, 1):  # a vector: every value, 32 to a row
        # One map of N values, scaled together: as N maps of one value each, every positive value would be white.
        grey = _heat(values.float().reshape(1, 1, -1))
        return _grid_png(grey.reshape(-1, 1, 1), columns=32, cell=12, mode="L")
    shown = values[:limit] if limit else values
    return _grid_png(_heat(shown.float()), columns, cell, mode="L")


def kernel_grid_png(kernels: torch.Tensor, limit: int | None = 16, columns: int = 8, cell: int = 40) -> bytes:
    """Conv kernels (N, kh, kw) as a grid, signed: red where a weight is positive, blue where negative."""
    shown = kernels[:limit] if limit else kernels
    top = shown.flatten(1).abs().amax(1).clamp(min=1e-12)[:, None, None]
    scaled = shown / top  # (N, kh, kw) on -1..1
    red = (scaled.clamp(min=0) * 255).round().to(torch.uint8)
    blue = (-scaled.clamp(max=0) * 255).round().to(torch.uint8)
    rgb = torch.stack([red, torch.zeros_like(red), blue], -1)  # (N, kh, kw, 3)
    return _grid_png(rgb, columns, cell, mode="RGB")


def images_grid_png(images01: torch.Tensor, columns: int, cell: int = 56) -> bytes:
    """Images (N, 28, 28) on 0..1 as one PNG of tiles, ``columns`` to a row, each as bright as it is."""
    return _grid_png((images01.clamp(0, 1) * 255).round().to(torch.uint8), columns, cell, mode="L")


def _grid_png(tiles: torch.Tensor, columns: int, cell: int, mode: str) -> bytes:
    """uint8 tiles (N, h, w) for mode "L" or (N, h, w, 3) for "RGB", each enlarged to about ``cell`` pixels with
    nearest-neighbour, laid ``columns`` to a row on grey gutters (none between 1-pixel tiles), as one PNG."""
    count, height, width = tiles.shape[:3]
    scale = max(1, cell // max(height, width))
    tiles = tiles.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    columns = min(columns, count)
    rows = -(-count // columns)
    gap = 2 if scale > 1 else 0
    side_h, side_w = tiles.shape[1] + gap, tiles.shape[2] + gap
    canvas = torch.full((rows * side_h - gap, columns * side_w - gap, *tiles.shape[3:]), 96, dtype=torch.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * side_h : r * side_h + tile.shape[0], c * side_w : c * side_w + tile.shape[1]] = tile
    buffer = io.BytesIO()
    Image.fromarray(canvas.numpy(), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(image01: torch.Tensor, attribution: torch.Tensor, scale: int = 8) -> bytes:
    """An attribution (28, 28) over the input (28, 28, on 0..1): the digit in grey, positive evidence in red,
    negative in blue, each scaled to the map's largest magnitude."""
    top = attribution.abs().max().clamp(min=1e-12)
    positive, negative = (attribution / top).clamp(min=0), (-attribution / top).clamp(min=0)
    grey = image01 * 0.55
    rgb = torch.stack([grey + positive * (1 - grey), grey * (1 - positive) * (1 - negative),
                       grey + negative * (1 - grey)], -1).clamp(0, 1)
    big = (rgb * 255).round().to(torch.uint8).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    buffer = io.BytesIO()
    Image.fromarray(big.numpy(), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def neighbours_html(images: list[torch.Tensor], labels: list[int], similarities: list[float],
                    indices: list[int]) -> str:
    """The nearest training images as one piece of HTML: each (28, 28) uint8 image with its label and cosine
    similarity."""
    cells = []
    for image, label, similarity, index in zip(images, labels, similarities, indices):
        png = base64.b64encode(digit_png(image, scale=2)).decode("ascii")
        cells.append(
            f'<figure data-index="{index}" style="margin:0;text-align:center;font-size:0.75rem">'
            f'<img src="data:image/png;base64,{png}" alt="training image {index}, a {label}" '
            'style="width:100%;image-rendering:pixelated;border-radius:3px;display:block">'
            f'<figcaption><b>{label}</b> · {similarity:.2f}</figcaption></figure>'
        )
    return ('<div style="display:grid;grid-template-columns:repeat(4,1fr);gap:6px" data-testid="inside-neighbours">'
            + "".join(cells) + "</div>")
