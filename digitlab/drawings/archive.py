"""Drawings in a zip archive: their PNG files plus labels.csv (file,label,saved_at,stroke_width). An archive to import
is checked whole before anything is written (member names, symlinks, member count, size, counting the bytes really
read), then member by member (a readable image of at most 2,000 x 2,000 pixels with a label from 0 to 9)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from digitlab.drawings.files import (MAX_SIDE, SUFFIX, ArchiveRefusedError, Drawing, DrawingsError,
                                     InvalidDrawingError, check_label, now, pixels_sha256, png_bytes)
from digitlab.preprocess import canvas_image

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ["file", "label", "saved_at", "stroke_width"]
MAX_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 200_000_000  # uncompressed, over all members
IMAGE_FORMATS = ["PNG", "JPEG", "BMP", "GIF", "WEBP"]  # what an archive's images may be; PIL tries only these
_CHUNK = 1 << 16


def export_zip(drawings: Sequence[Drawing]) -> bytes:
    """A zip of ``drawings`` as their PNG files plus labels.csv."""
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


def read_archive(source: bytes | str | os.PathLike | BinaryIO, known: set[str]
                 ) -> tuple[list[bytes], list[tuple[str, str]]]:
    """(the drawings to import as PNG files, [(member name, why it is refused)]) from an archive like export_zip's.

    ArchiveRefusedError for an archive that is not a zip, has unsafe member names or symlinks, more than 10,000
    members or more than 200 MB uncompressed. Members that are not readable images, are over 2,000 x 2,000 pixels,
    hold no drawing, have no valid label or whose pixels are ``known`` (pixels_sha256 of the drawings kept already)
    are refused one by one with the reason; the rest keep their labels, times and stroke widths from labels.csv."""
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
        known = set(known)
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
                digest = pixels_sha256(rgba)
                if digest in known:
                    raise DrawingsError("it is already among the drawings (the same pixels)")
            except ArchiveRefusedError:
                raise
            except DrawingsError as err:
                refused.append((name, str(err)))
                continue
            known.add(digest)
            accepted.append(png_bytes(rgba, *row))
    return accepted, refused



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
        return now()
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


