"""The drawings folder (DIGITLAB_DRAWINGS, default ./drawings): save, list, relabel, delete, export and import.

Each drawing is one file (digitlab.drawings.files), written by files.atomic_write under a name no other saver
picks: two savers never touch the same file, and a saver killed mid-save leaves at most a temporary file (a
dot-file) that listings skip and later sweep away.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from digitlab.drawings import archive
from digitlab.drawings.files import (DRAWINGS_ENV, ID_PATTERN, SUFFIX, Drawing, DrawingListing, DrawingsError,
                                     DrawingsFolderError, ImportReport, InvalidDrawingError, UnknownDrawingError,
                                     check_label, check_rgba, drawings_root, now, png_bytes, read_drawing, read_png)
from digitlab.files import atomic_write, remove_leftovers
from digitlab.preprocess import canvas_image


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
        pixels = check_rgba(rgba)
        digit = check_label(label)
        if canvas_image(pixels) is None:
            raise InvalidDrawingError("The canvas is empty: draw a digit before saving it.")
        self._prepare_folder()
        return self._write_new(png_bytes(pixels, digit, now(), None if stroke_width is None else int(stroke_width)))

    def list(self, known: dict[tuple[str, int, int], Drawing] | None = None) -> DrawingListing:
        """Every drawing, oldest first; files that cannot be read are listed with the reason, never raised. With
        ``known`` (a dict the caller keeps between calls), a file unchanged since it was last read (the same name,
        time and size) is not read again: a class's collection grows by one drawing at a time."""
        if not self.root.is_dir():
            return DrawingListing([], [])
        remove_leftovers(self.root)
        try:
            paths = sorted(self.root.glob(f"*{SUFFIX}"))
        except OSError as err:
            return DrawingListing([], [(self.root, f"the folder cannot be read ({err.strerror or err})")])
        drawings, unreadable, seen = [], [], set()
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                info = path.stat()
                key = (path.name, info.st_mtime_ns, info.st_size)
                seen.add(key)
                drawing = known.get(key) if known is not None else None
                if drawing is None:
                    drawing = read_drawing(path)
                    if known is not None:
                        known[key] = drawing
                drawings.append(drawing)
            except DrawingsError as err:
                unreadable.append((path, str(err)))
            except OSError:  # deleted since the glob
                continue
        if known is not None:
            for key in set(known) - seen:
                del known[key]
        return DrawingListing(drawings, unreadable)

    def count(self) -> int:
        """How many drawing files the folder holds, readable or not (without reading any)."""
        try:
            with os.scandir(self.root) as entries:
                return sum(1 for entry in entries if entry.name.endswith(SUFFIX) and not entry.name.startswith("."))
        except FileNotFoundError:
            return 0
        except OSError as err:
            raise self._folder_error(err, "read") from None

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
        if not isinstance(drawing_id, str) or not ID_PATTERN.fullmatch(drawing_id):
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
            rgba, meta = read_png(path)
        except DrawingsError as err:
            raise DrawingsError(f"The drawing {drawing_id} is unreadable: {err}. Delete it instead.") from None
        png = png_bytes(rgba, digit, meta.get("saved_at", now()), meta.get("stroke_width"))
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
        return archive.export_zip(self.list().drawings if drawings is None else drawings)

    def import_zip(self, source: bytes | str | os.PathLike | BinaryIO) -> ImportReport:
        """Add the drawings of an archive like export_zip's (new ids): archive.read_archive says what is refused,
        whole or member by member. Everything is read and checked before anything is written."""
        accepted, refused = archive.read_archive(source, {d.sha256 for d in self.list().drawings})
        if accepted:
            self._prepare_folder()
        return ImportReport([self._write_new(png) for png in accepted], refused)
