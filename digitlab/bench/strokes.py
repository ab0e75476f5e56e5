"""Synthetic drawings: digits as pen strokes rendered onto an RGBA canvas like the dashboard's.

The tests and the benchmark use them to check the canvas path without a browser; the browser tests trace the
same strokes with the mouse.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from digitlab.preprocess import canvas_image


def _ellipse(cx: float, cy: float, rx: float, ry: float, start_deg: float = -90, sweep_deg: float = 360, n: int = 28):
    return [
        (cx + rx * math.cos(math.radians(start_deg + sweep_deg * i / n)),
         cy + ry * math.sin(math.radians(start_deg + sweep_deg * i / n)))
        for i in range(n + 1)
    ]


# Each digit is a list of strokes; each stroke a polyline in a unit box (x to the right, y down).
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.33, 0.46)],
    1: [[(0.55, 0.04), (0.47, 0.96)]],
    2: [[(0.18, 0.28), (0.3, 0.1), (0.5, 0.04), (0.7, 0.1), (0.8, 0.28), (0.72, 0.48), (0.18, 0.94),
         (0.86, 0.94)]],
    3: [[(0.18, 0.12), (0.45, 0.03), (0.72, 0.12), (0.75, 0.32), (0.45, 0.48), (0.76, 0.6), (0.8, 0.8),
         (0.55, 0.96), (0.18, 0.88)]],
    4: [[(0.62, 0.96), (0.62, 0.04), (0.14, 0.66), (0.88, 0.66)]],
    5: [[(0.8, 0.06), (0.3, 0.06), (0.25, 0.45), (0.55, 0.38), (0.78, 0.52), (0.8, 0.78), (0.55, 0.96),
         (0.2, 0.88)]],
    6: [[(0.72, 0.04), (0.4, 0.32), (0.26, 0.62), (0.3, 0.86), (0.5, 0.96), (0.7, 0.88), (0.76, 0.68),
         (0.6, 0.52), (0.38, 0.54), (0.27, 0.66)]],
    7: [[(0.14, 0.06), (0.86, 0.06), (0.4, 0.96)]],
    8: [_ellipse(0.5, 0.26, 0.24, 0.22, start_deg=90, sweep_deg=-360),
        _ellipse(0.5, 0.7, 0.3, 0.26, start_deg=-90, sweep_deg=360)],
    9: [_ellipse(0.48, 0.3, 0.27, 0.25, start_deg=0, sweep_deg=-360), [(0.75, 0.3), (0.66, 0.96)]],
}


def stroke_points(digit: int, box: tuple[float, float, float, float]) -> list[list[tuple[float, float]]]:
    """The digit's strokes in canvas pixels, fitted into box = (left, top, right, bottom)."""
    left, top, right, bottom = box
    return [[(left + x * (right - left), top + y * (bottom - top)) for x, y in stroke] for stroke in DIGIT_STROKES[digit]]


def render_strokes(strokes: list[list[tuple[float, float]]], stroke_width: int = 18, size: int = 280,
                   background: str = "transparent") -> np.ndarray:
    """A (size, size, 4) uint8 RGBA canvas with ``strokes`` (canvas pixels) in white ink, as streamlit-drawable-canvas
    returns it. background="transparent" leaves alpha 0 around the ink (the canvas's default); "black" fills it
    opaque."""
    fill = (0, 0, 0, 0) if background == "transparent" else (0, 0, 0, 255)
    image = Image.new("RGBA", (size, size), fill)
    pen = ImageDraw.Draw(image)
    radius = stroke_width / 2
    for stroke in strokes:
        pen.line(stroke, fill=(255, 255, 255, 255), width=stroke_width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round caps, as a brush leaves
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255, 255))
    return np.asarray(image).copy()


def render_digit(
    digit: int,
    box: tuple[float, float, float, float] = (70, 40, 210, 240),
    stroke_width: int = 18,
    size: int = 280,
    background: str = "transparent",
    strokes: int | None = None,
) -> np.ndarray:
    """The digit fitted into box, rendered as render_strokes does; strokes: only the first that many, as the canvas
    holds them after that many pen-ups (None: all)."""
    return render_strokes(stroke_points(digit, box)[:strokes], stroke_width, size, background)


def pen_digits(sizes: int = 3) -> torch.Tensor:
    """(sizes * 10, 28, 28) on 0..1, as the canvas hands drawings to the models (preprocess.canvas_image): the digits
    0 to 9 drawn ``sizes`` times, each round a little further right and in a thicker pen (14 px, 18, 22 ...), so
    image i shows the digit i % 10."""
    return torch.stack([canvas_image(render_digit(digit, (60 + 5 * step, 40, 200 + 5 * step, 240), 14 + 4 * step))
                        for step in range(sizes) for digit in range(10)])
