"""A drawing as a file: one PNG per drawing, the canvas's raw RGBA, lossless, with its label, the time it was saved
and the stroke width in a text chunk."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from digitlab.preprocess import canvas_image

DRAWINGS_ENV = "DIGITLAB_DRAWINGS"
SUFFIX = ".png"
META_KEY = "digitlab"  # the PNG text chunk holding a drawing's label, time and stroke width, as JSON
DIGITS = range(10)
MAX_SIDE = 2000  # pixels, either side of an imported image
ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{12}-[0-9a-f]{16}")



class DrawingsError(Exception):
    """A drawing, folder or archive that cannot be used; the message says what was wrong and what to do."""


class DrawingsFolderError(DrawingsError):
    """The drawings folder cannot be written (or read); the message names it."""


class InvalidDrawingError(DrawingsError, ValueError):
    """An empty canvas, a label outside 0-9, or pixels that are not a canvas's RGBA."""


class UnknownDrawingError(DrawingsError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ArchiveRefusedError(DrawingsError):
    """A whole archive refused before anything was written: unsafe names, links, too many members or bytes."""


def drawings_root(path: str | os.PathLike | None = None) -> Path:
    """An explicit folder, else DIGITLAB_DRAWINGS, else ./drawings (beside ./data, in the working directory)."""
    return Path(path or os.environ.get(DRAWINGS_ENV) or "drawings").expanduser()


def check_label(label) -> int:
    """A label as an int from 0 to 9; InvalidDrawingError with what was given otherwise. Strings of a digit pass."""
    text = str(label).strip()
    if isinstance(label, bool) or not text.isdecimal() or int(text) not in DIGITS:
        raise InvalidDrawingError(f"A label is a whole number from 0 to 9, got {label!r}.")
    return int(text)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Drawing:
    id: str
    label: int
    saved_at: str  # ISO 8601, UTC
    stroke_width: int | None  # None for an imported image that did not say
    image: torch.Tensor = field(repr=False)  # (28, 28) on 0..1: what every model sees (preprocess.canvas_image)
    sha256: str = field(repr=False)  # of the raw RGBA bytes and their shape: tells a re-imported drawing
    path: Path = field(repr=False)

    def rgba(self) -> np.ndarray:
        """The raw (H, W, 4) uint8 RGBA the canvas returned."""
        return read_png(self.path)[0]


@dataclass(frozen=True)
class DrawingListing:
    drawings: list[Drawing]  # oldest first
    unreadable: list[tuple[Path, str]]  # (file, reason)


@dataclass(frozen=True)
class ImportReport:
    imported: list[str]  # the new drawings' ids
    refused: list[tuple[str, str]]  # (member name, reason)


def pixels_sha256(rgba: np.ndarray) -> str:
    return hashlib.sha256(repr(rgba.shape).encode() + rgba.tobytes()).hexdigest()


def check_rgba(rgba) -> np.ndarray:
    pixels = np.asarray(rgba)
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise InvalidDrawingError(f"A drawing is the canvas's (H, W, 4) uint8 RGBA, got {pixels.dtype} of shape "
                                  f"{pixels.shape}.")
    if max(pixels.shape[:2]) > MAX_SIDE:
        raise InvalidDrawingError(f"A drawing is at most {MAX_SIDE:,} × {MAX_SIDE:,} pixels, got "
                                  f"{pixels.shape[1]:,} × {pixels.shape[0]:,}.")
    return pixels


def png_bytes(rgba: np.ndarray, label: int, saved_at: str, stroke_width: int | None) -> bytes:
    info = PngInfo()
    info.add_text(META_KEY, json.dumps({"label": label, "saved_at": saved_at, "stroke_width": stroke_width}))
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png(path: Path) -> tuple[np.ndarray, dict]:
    """A drawing file -> (raw RGBA, its metadata); DrawingsError saying what is wrong with it."""
    try:
        with Image.open(path, formats=["PNG"]) as image:
            if max(image.size) > MAX_SIDE:
                raise DrawingsError(f"it is {image.size[0]:,} × {image.size[1]:,} pixels, over {MAX_SIDE:,}")
            if image.mode != "RGBA":
                raise DrawingsError(f"its pixels are {image.mode}, not a canvas's RGBA")
            text = image.text.get(META_KEY)
            rgba = np.asarray(image)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise DrawingsError("it is not a PNG image") from None
    except OSError as err:
        raise DrawingsError(f"it cannot be read ({err.strerror or err})") from None
    if text is None:
        raise DrawingsError(f"it has no {META_KEY!r} label chunk: it was not saved by digitlab")
    try:
        meta = json.loads(text)
        meta["label"] = check_label(meta["label"])
    except (ValueError, KeyError, TypeError) as err:
        raise DrawingsError(f"its label chunk is damaged ({err})") from None
    return rgba, meta


def read_drawing(path: Path) -> Drawing:
    """One drawing file; DrawingsError saying why it is unreadable."""
    rgba, meta = read_png(path)
    image = canvas_image(rgba)
    if image is None:
        raise DrawingsError("it holds no drawing (an empty canvas)")
    width = meta.get("stroke_width")
    return Drawing(path.stem, meta["label"], str(meta.get("saved_at", "")), width if isinstance(width, int) else None,
                   image, pixels_sha256(rgba), path)


