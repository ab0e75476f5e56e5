"""Drawn digits: canvas drawings in many hands, generated, to score models on Draw-like handwriting without a
class at hand.

Each drawing is a digit's pen strokes (digitlab.bench.strokes) varied the way people vary them on the canvas: its
size and place, its width against its height, a slant and a tilt, strokes that wobble, a 1 with or without its
flag, a 7 with or without its bar, and a pen from a thin mouse line to a thick brush. They are saved as a
drawings folder, so that ``python -m digitlab eval RUN --drawings FOLDER`` scores a run on them and My drawings
shows them:

    python -m digitlab.bench.drawn_digits FOLDER [--count 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator

import numpy as np

from digitlab.bench.strokes import DIGIT_STROKES, render_strokes
from digitlab.drawings import DrawingsError, DrawingStore

CANVAS = 280  # the Draw page's canvas, in pixels
HEIGHT_PX = (90, 250)  # the digit's height on the canvas
ASPECT = (0.45, 1.0)  # its width over its height
SLANT = 0.35  # x moves by up to this share of the height from the middle row up or down
TILT_DEG = 15.0
WOBBLE = 0.04  # strokes bend by up to this share of the height
PEN_PX = (5, 30)  # a mouse line to a thick brush
STEP = 0.04  # strokes are cut into segments this long (of the unit box) so that the wobble bends them

# Second forms, drawn by some hands: a 1 with its flag, a 7 with its bar (each in half the drawings of its digit).
VARIANTS = {
    1: [[(0.34, 0.2), (0.55, 0.04), (0.47, 0.96)]],
    7: DIGIT_STROKES[7] + [[(0.45, 0.52), (0.82, 0.5)]],
}


def _subdivided(stroke: list[tuple[float, float]]) -> np.ndarray:
    """(P, 2) points along the polyline, none further apart than STEP."""
    points = [np.asarray(stroke[0], dtype=float)]
    for start, end in zip(stroke, stroke[1:]):
        start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        pieces = max(1, math.ceil(np.linalg.norm(end - start) / STEP))
        points += [start + (end - start) * (i / pieces) for i in range(1, pieces + 1)]
    return np.stack(points)


def _wobble(rng: np.random.Generator):
    """A smooth random offset of the unit box: two waves across it per axis, up to WOBBLE in all."""
    frequency = rng.uniform(0.7, 2.0, size=(2, 2, 2))  # (axis, wave, x or y)
    phase = rng.uniform(0, 2 * math.pi, size=(2, 2))
    amplitude = rng.uniform(0, WOBBLE / 2, size=(2, 2))

    def offset(points: np.ndarray) -> np.ndarray:  # (P, 2) -> (P, 2)
        angle = 2 * math.pi * np.einsum("awc,pc->paw", frequency, points) + phase
        return (amplitude * np.sin(angle)).sum(2)

    return offset


def drawn_strokes(digit: int, rng: np.random.Generator) -> tuple[list[list[tuple[float, float]]], int]:
    """One hand's drawing of ``digit``: its strokes in canvas pixels and the pen width."""
    template = VARIANTS[digit] if digit in VARIANTS and rng.random() < 0.5 else DIGIT_STROKES[digit]
    height = rng.uniform(*HEIGHT_PX)
    width = height * rng.uniform(*ASPECT)
    slant, tilt = rng.uniform(-SLANT, SLANT), math.radians(rng.uniform(-TILT_DEG, TILT_DEG))
    wobble = _wobble(rng)
    shapes = []
    for stroke in template:
        unit = _subdivided(stroke)
        unit = unit + wobble(unit)
        x = (unit[:, 0] - 0.5) * width + slant * (0.5 - unit[:, 1]) * height
        y = (unit[:, 1] - 0.5) * height
        shapes.append(np.stack([x * math.cos(tilt) - y * math.sin(tilt), x * math.sin(tilt) + y * math.cos(tilt)], 1))
    pen = int(rng.integers(PEN_PX[0], PEN_PX[1] + 1))
    # Placed anywhere the whole digit and its pen fit on the canvas.
    every = np.concatenate(shapes)
    low, high = every.min(0) - pen, every.max(0) + pen
    room = np.maximum(CANVAS - (high - low), 0)
    corner = rng.uniform(0, 1, size=2) * room - low
    return [[(float(px), float(py)) for px, py in shape + corner] for shape in shapes], pen


def drawn_digits(count: int, seed: int = 0) -> Iterator[tuple[int, np.ndarray, int]]:
    """``count`` drawings, the digits 0-9 in turn: (digit, (280, 280, 4) uint8 RGBA, pen width) each, drawn as they
    are taken. A count below 1 is refused here, at the call, not at the first drawing taken."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return _drawings(count, np.random.default_rng(seed))


def _drawings(count: int, rng: np.random.Generator) -> Iterator[tuple[int, np.ndarray, int]]:
    for index in range(count):
        digit = index % 10
        strokes, pen = drawn_strokes(digit, rng)
        yield digit, render_strokes(strokes, pen, CANVAS), pen


def save_drawn_digits(folder, count: int, seed: int = 0) -> DrawingStore:
    """Adds ``count`` drawn digits to the drawings folder (made when missing)."""
    store = DrawingStore(folder)
    for digit, rgba, pen in drawn_digits(count, seed):
        store.save(rgba, digit, pen)
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digitlab.bench.drawn_digits", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a drawings folder to add them to (made when missing)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    try:
        store = save_drawn_digits(args.folder, args.count, args.seed)
    except DrawingsError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"added {args.count} drawn digits to {store.root}; score a run on them with "
          f"python -m digitlab eval RUN --drawings {store.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
