"""My drawings: labelled canvas drawings kept as a personal test set, and every model's accuracy on them.

Each drawing is one PNG file in the drawings folder (DIGITLAB_DRAWINGS, default ./drawings): the canvas's raw RGBA,
lossless, with its label, the time it was saved and the stroke width in a text chunk. One file per drawing, written
by files.atomic_write under a name no other saver picks: two savers never touch the same file, and a saver killed
mid-save leaves at most a temporary file (a dot-file) that listings skip and later sweep away.

Archives are a zip of those PNGs plus labels.csv (file,label,saved_at,stroke_width). An archive to import is
checked whole before anything is written (member names, symlinks, member count, size, counting the bytes really
read), then member by member (a readable image of at most 2,000 x 2,000 pixels with a label from 0 to 9).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from digitlab.files import atomic_write, remove_leftovers
from digitlab.inside import model_input
from digitlab.predict import predict
from digitlab.preprocess import canvas_image
from digitlab.store import LoadedRun

DRAWINGS_ENV = "DIGITLAB_DRAWINGS"
SUFFIX = ".png"
META_KEY = "digitlab"  # the PNG text chunk holding a drawing's label, time and stroke width, as JSON
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ["file", "label", "saved_at", "stroke_width"]
DIGITS = range(10)
MAX_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 200_000_000  # uncompressed, over all members
MAX_SIDE = 2000  # pixels, either side of an imported image
IMAGE_FORMATS = ["PNG", "JPEG", "BMP", "GIF", "WEBP"]  # what an archive's images may be; PIL tries only these
_ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{12}-[0-9a-f]{16}")
_CHUNK = 1 << 16


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


def _now() -> str:
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
        return _read(self.path)[0]


@dataclass(frozen=True)
class DrawingListing:
    drawings: list[Drawing]  # oldest first
    unreadable: list[tuple[Path, str]]  # (file, reason)


@dataclass(frozen=True)
class ImportReport:
    imported: list[str]  # the new drawings' ids
    refused: list[tuple[str, str]]  # (member name, reason)


def _pixels_sha256(rgba: np.ndarray) -> str:
    return hashlib.sha256(repr(rgba.shape).encode() + rgba.tobytes()).hexdigest()


def _check_rgba(rgba) -> np.ndarray:
    pixels = np.asarray(rgba)
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise InvalidDrawingError(f"A drawing is the canvas's (H, W, 4) uint8 RGBA, got {pixels.dtype} of shape "
                                  f"{pixels.shape}.")
    if max(pixels.shape[:2]) > MAX_SIDE:
        raise InvalidDrawingError(f"A drawing is at most {MAX_SIDE:,} × {MAX_SIDE:,} pixels, got "
                                  f"{pixels.shape[1]:,} × {pixels.shape[0]:,}.")
    return pixels


def _encode(rgba: np.ndarray, label: int, saved_at: str, stroke_width: int | None) -> bytes:
    info = PngInfo()
    info.add_text(META_KEY, json.dumps({"label": label, "saved_at": saved_at, "stroke_width": stroke_width}))
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _read(path: Path) -> tuple[np.ndarray, dict]:
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
    rgba, meta = _read(path)
    image = canvas_image(rgba)
    if image is None:
        raise DrawingsError("it holds no drawing (an empty canvas)")
    width = meta.get("stroke_width")
    return Drawing(path.stem, meta["label"], str(meta.get("saved_at", "")), width if isinstance(width, int) else None,
                   image, _pixels_sha256(rgba), path)


class DrawingStore:
    """The drawings folder: save, list, relabel, delete, export and import labelled drawings."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = drawings_root(root)

    def _folder_error(self, err: OSError, doing: str) -> DrawingsFolderError:
        return DrawingsFolderError(f"Cannot {doing} the drawings folder {self.root} ({err.strerror or err}). Make it "
                                   f"writable, or point {DRAWINGS_ENV} at a folder you can write.")

    def _prepare_folder(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise self._folder_error(err, "create") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DrawingsFolderError(f"Cannot write to the drawings folder {self.root} (permission denied). Make "
                                      f"it writable, or point {DRAWINGS_ENV} at a folder you can write.")

    def _write_new(self, png: bytes) -> str:
        """Write one encoded drawing under a fresh name: its time to the microsecond (names sort by age) and 64
        random bits, so that no other saver, in this process or another, ever picks it (two savers in the same
        microsecond share a name with odds of 1 in 2**64)."""
        drawing_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{secrets.token_hex(8)}"
        try:
            atomic_write(self.root / f"{drawing_id}{SUFFIX}", lambda tmp: tmp.write_bytes(png))
        except OSError as err:
            raise self._folder_error(err, "write to") from None
        return drawing_id

    def save(self, rgba, label, stroke_width: int | None) -> str:
        """Keep a canvas's (H, W, 4) uint8 RGBA as a drawing labelled ``label`` (0-9); its id. An empty canvas, a
        bad label or an unwritable folder raise DrawingsError saying so; nothing saved before is ever touched."""
        pixels = _check_rgba(rgba)
        digit = check_label(label)
        if canvas_image(pixels) is None:
            raise InvalidDrawingError("The canvas is empty: draw a digit before saving it.")
        self._prepare_folder()
        return self._write_new(_encode(pixels, digit, _now(), None if stroke_width is None else int(stroke_width)))

    def list(self) -> DrawingListing:
        """Every drawing, oldest first; files that cannot be read are listed with the reason, never raised."""
        if not self.root.is_dir():
            return DrawingListing([], [])
        remove_leftovers(self.root)
        try:
            paths = sorted(self.root.glob(f"*{SUFFIX}"))
        except OSError as err:
            return DrawingListing([], [(self.root, f"the folder cannot be read ({err.strerror or err})")])
        drawings, unreadable = [], []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                drawings.append(read_drawing(path))
            except DrawingsError as err:
                unreadable.append((path, str(err)))
        return DrawingListing(drawings, unreadable)

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """(name, mtime_ns, size) per drawing file: changes whenever a drawing is saved, relabelled or deleted, so
        that scores can be cached by it."""
        try:
            paths = sorted(self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []
        except OSError:  # unreadable: list() says so
            return ()
        found = []
        for path in paths:
            try:
                info = path.stat()
            except OSError:  # deleted meanwhile
                continue
            found.append((path.name, info.st_mtime_ns, info.st_size))
        return tuple(found)

    def path_for(self, drawing_id: str) -> Path:
        if not isinstance(drawing_id, str) or not _ID_PATTERN.fullmatch(drawing_id):
            raise UnknownDrawingError(f"{drawing_id!r} is not a drawing id (they look like "
                                      f"20250101T120000000000-0123456789abcdef).")
        path = self.root / f"{drawing_id}{SUFFIX}"
        if not path.is_file():
            raise UnknownDrawingError(f"There is no drawing {drawing_id} in {self.root}: it may have been deleted "
                                      f"meanwhile.")
        return path

    def load(self, drawing_id: str) -> Drawing:
        path = self.path_for(drawing_id)
        try:
            return read_drawing(path)
        except DrawingsError as err:
            raise DrawingsError(f"The drawing {drawing_id} is unreadable: {err}.") from None

    def relabel(self, drawing_id: str, label) -> None:
        """Give a drawing another label, rewriting its file atomically; its pixels, time and stroke width stay."""
        digit = check_label(label)
        path = self.path_for(drawing_id)
        try:
            rgba, meta = _read(path)
        except DrawingsError as err:
            raise DrawingsError(f"The drawing {drawing_id} is unreadable: {err}. Delete it instead.") from None
        png = _encode(rgba, digit, meta.get("saved_at", _now()), meta.get("stroke_width"))
        try:
            atomic_write(path, lambda tmp: tmp.write_bytes(png))
        except OSError as err:
            raise self._folder_error(err, "write to") from None

    def delete(self, drawing_id: str) -> None:
        """Remove a drawing's file (an unreadable one too)."""
        path = self.path_for(drawing_id)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise self._folder_error(err, "delete from") from None

    def export_zip(self, drawings: Sequence[Drawing] | None = None) -> bytes:
        """A zip of the drawings (all by default) as their PNG files plus labels.csv."""
        drawings = self.list().drawings if drawings is None else drawings
        labels = io.StringIO()
        writer = csv.writer(labels, lineterminator="\n")
        writer.writerow(LABEL_COLUMNS)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for drawing in drawings:
                name = f"{drawing.id}{SUFFIX}"
                archive.write(drawing.path, name)
                writer.writerow([name, drawing.label, drawing.saved_at,
                                 "" if drawing.stroke_width is None else drawing.stroke_width])
            archive.writestr(LABELS_FILE, labels.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        return buffer.getvalue()

    def import_zip(self, source: bytes | str | os.PathLike | BinaryIO) -> ImportReport:
        """Add the drawings of an archive like export_zip's. ArchiveRefusedError, with nothing written, for an
        archive that is not a zip, has unsafe member names or symlinks, more than 10,000 members or more than
        200 MB uncompressed. Members that are not readable images, are over 2,000 x 2,000 pixels, hold no drawing,
        have no valid label or are already among the drawings are refused one by one with the reason; the rest are
        imported (new ids; labels, times and stroke widths from labels.csv)."""
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, EOFError):
            raise ArchiveRefusedError("The file is not a zip archive. Import a .zip made by Export.") from None
        except OSError as err:
            raise ArchiveRefusedError(f"The archive cannot be read ({err.strerror or err}).") from None
        with archive:
            members = _check_members(archive.infolist())
            budget = _ReadBudget()
            labels_member = min((m for m in members if PurePosixPath(m.filename).name == LABELS_FILE),
                                key=lambda m: len(PurePosixPath(m.filename).parts), default=None)
            labels, bad_labels, no_label = _read_labels(archive, labels_member, budget)
            base = PurePosixPath(labels_member.filename).parent if labels_member else PurePosixPath()
            known = {d.sha256 for d in self.list().drawings}
            accepted, refused = [], []
            for member in members:
                if member.is_dir() or member is labels_member:
                    continue
                name = member.filename
                path = PurePosixPath(name)
                listed = str(path.relative_to(base)) if path.is_relative_to(base) else name  # as labels.csv names it
                try:
                    rgba = _decode_member(budget.read(archive, member))
                    row = labels.get(listed)
                    if row is None:
                        raise DrawingsError(f"no valid label: {bad_labels.get(listed, no_label)}")
                    if canvas_image(rgba) is None:
                        raise DrawingsError("it holds no drawing (no ink on it)")
                    digest = _pixels_sha256(rgba)
                    if digest in known:
                        raise DrawingsError("it is already among the drawings (the same pixels)")
                except ArchiveRefusedError:
                    raise
                except DrawingsError as err:
                    refused.append((name, str(err)))
                    continue
                known.add(digest)
                accepted.append(_encode(rgba, *row))
        if accepted:  # everything was read and checked: only now is anything written
            self._prepare_folder()
        return ImportReport([self._write_new(png) for png in accepted], refused)


def _check_members(members: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The archive's members, or ArchiveRefusedError naming the first reason to refuse it whole."""
    if len(members) > MAX_MEMBERS:
        raise ArchiveRefusedError(f"The archive has {len(members):,} members, more than the {MAX_MEMBERS:,} allowed.")
    for member in members:
        name = member.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise ArchiveRefusedError(f"The archive is refused: the member {name!r} points outside the archive "
                                      f"(an absolute path, a drive letter or '..').")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise ArchiveRefusedError(f"The archive is refused: the member {name!r} is a symbolic link.")
    declared = sum(m.file_size for m in members)
    if declared > MAX_ARCHIVE_BYTES:
        raise ArchiveRefusedError(f"The archive is refused: it holds {declared / 1e6:,.0f} MB uncompressed, more "
                                  f"than the {MAX_ARCHIVE_BYTES / 1e6:,.0f} MB allowed.")
    return members


class _ReadBudget:
    """The bytes actually decompressed from an archive, counted as they are read: sizes in a zip's directory are
    the archive's own claim, and a crafted one can understate them."""

    def __init__(self):
        self.left = MAX_ARCHIVE_BYTES

    def read(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
        chunks = []
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(min(_CHUNK, self.left + 1)):
                    self.left -= len(chunk)
                    if self.left < 0:
                        raise ArchiveRefusedError(
                            f"The archive is refused: it holds more than {MAX_ARCHIVE_BYTES / 1e6:,.0f} MB "
                            f"uncompressed (more than its directory claims).")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
                OSError) as err:
            # A damaged or encrypted member: that member is unreadable, the others may still be fine.
            raise DrawingsError(f"it cannot be read from the archive ({err})") from None
        return b"".join(chunks)


def _read_labels(archive: zipfile.ZipFile, member: zipfile.ZipInfo | None, budget: _ReadBudget
                 ) -> tuple[dict[str, tuple[int, str, int | None]], dict[str, str], str]:
    """labels.csv -> ({file: (label, saved_at, stroke_width)} for its valid rows, {file: why its label is not
    valid}, why a file not in it has no label)."""
    if member is None:
        return {}, {}, f"the archive has no {LABELS_FILE}"
    try:
        text = budget.read(archive, member).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
    except ArchiveRefusedError:
        raise
    except (DrawingsError, UnicodeDecodeError, csv.Error) as err:
        return {}, {}, f"{LABELS_FILE} cannot be read ({err})"
    if not rows or not {"file", "label"} <= set(rows[0]):
        return {}, {}, f"{LABELS_FILE} has no 'file' and 'label' columns"
    labels, bad = {}, {}
    for row in rows:
        file = str(row.get("file")).strip()
        try:
            label = check_label(row.get("label"))
        except InvalidDrawingError:
            bad[file] = f"{LABELS_FILE} gives {row.get('label')!r}, not a whole number from 0 to 9"
            continue
        labels[file] = (label, _imported_time(row.get("saved_at")), _imported_width(row.get("stroke_width")))
    return labels, bad, f"{LABELS_FILE} has no row for it"


def _imported_time(text: str | None) -> str:
    try:
        when = dt.datetime.fromisoformat(str(text).strip())
    except ValueError:
        return _now()
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).isoformat(timespec="seconds")


def _imported_width(text: str | None) -> int | None:
    text = str(text or "").strip()
    return int(text) if text.isdecimal() and 0 < int(text) <= 200 else None


def _decode_member(data: bytes) -> np.ndarray:
    """An archive member's bytes -> (H, W, 4) uint8 RGBA as the canvas draws (light ink on dark); DrawingsError
    saying why not. The size is checked from the image's header, before its pixels are decoded.

    An image without an alpha channel (a photo or scan, grey or colour) is made opaque; if its border is mostly
    light, it is dark ink on paper, and it is inverted to light ink on black, as the canvas and MNIST have it."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            if max(image.size) > MAX_SIDE:
                raise DrawingsError(f"it is {image.size[0]:,} × {image.size[1]:,} pixels, over the "
                                    f"{MAX_SIDE:,} × {MAX_SIDE:,} allowed")
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            rgba = np.array(image.convert("RGBA"))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise DrawingsError(f"it is not a readable image ({', '.join(IMAGE_FORMATS)})") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt pixel data
        raise DrawingsError(f"it is not a readable image ({err})") from None
    if not has_alpha:
        border = np.concatenate([rgba[0], rgba[-1], rgba[:, 0], rgba[:, -1]])[:, :3].mean(1)
        if np.median(border) > 127:
            rgba[..., :3] = 255 - rgba[..., :3]
    return rgba


@dataclass(frozen=True)
class DrawingScore:
    """One run's answers on the drawings."""

    run_id: str
    labels: dict[str, int]  # drawing id: its label
    predicted: dict[str, int]  # drawing id: the run's guess
    confidence: dict[str, float]  # drawing id: the probability of that guess

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> int:
        return sum(self.predicted[i] == label for i, label in self.labels.items())

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None

    @property
    def per_digit(self) -> dict[int, tuple[int, int]]:
        """digit: (correct, drawings with that label), for every digit 0-9."""
        totals = {digit: [0, 0] for digit in DIGITS}
        for drawing_id, label in self.labels.items():
            totals[label][0] += self.predicted[drawing_id] == label
            totals[label][1] += 1
        return {digit: (correct, count) for digit, (correct, count) in totals.items()}

    @property
    def wrong(self) -> list[str]:
        return [i for i, label in self.labels.items() if self.predicted[i] != label]


def score(run: LoadedRun, drawings: Sequence[Drawing]) -> DrawingScore:
    """The run's guesses on the drawings, each preprocessed as on Draw (the canvas fitted to 28 x 28, then scaled
    the way the run was trained: its config.input_scaling)."""
    if not drawings:
        return DrawingScore(run.id, {}, {}, {})
    probs = predict(run.model, model_input(run, torch.stack([d.image for d in drawings])))  # (N, 10)
    confidence, predicted = probs.max(1)
    ids = [d.id for d in drawings]
    return DrawingScore(run.id, {d.id: d.label for d in drawings}, dict(zip(ids, predicted.tolist())),
                        dict(zip(ids, confidence.tolist())))
