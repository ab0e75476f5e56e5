"""A class's drawings: everyone on a classroom server adds labelled drawings to one collection, their shared test
set. Append-only for them: no relabel, no delete, no import (those stay the teacher's, from a server that is not
read-only, on the same folder).

Each addition is checked as a save is (a digit drawn, a label from 0 to 9) and bounded: one a session every
MIN_INTERVAL_S, at most PER_SESSION a session, at most CAPACITY in the collection; a refusal says which. Nothing that
tells who drew it is kept: the drawing, its label, its time and its stroke width, as any saved drawing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from digitlab.drawings.files import DrawingsError
from digitlab.drawings.store import DrawingStore

CLASS_ENV = "DIGITLAB_CLASS"
MIN_INTERVAL_S = 2.0
PER_SESSION = 200
CAPACITY = 20_000


class ClassLimitError(DrawingsError):
    """An addition refused by a bound: too soon after the session's last, the session's share used, a full
    collection."""


def class_mode() -> bool:
    """Is classroom drawing on? DIGITLAB_CLASS set to 1, true, yes or on: with read-only mode, anyone on Draw can add
    drawings to the collection, and nothing else."""
    return os.environ.get(CLASS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class ClassCollection:
    """Additions to a drawings folder by many sessions at once (one per browser tab; a session is an opaque key, not
    a person). One per server and folder: the bounds are kept in memory, under one lock, so that two additions at the
    same instant are counted one after the other (both kept, under names of their own)."""

    def __init__(self, store: DrawingStore, min_interval_s: float = MIN_INTERVAL_S, per_session: int = PER_SESSION,
                 capacity: int = CAPACITY, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.min_interval_s, self.per_session, self.capacity, self.clock = min_interval_s, per_session, capacity, clock
        self._lock = threading.Lock()
        self._added: dict[str, tuple[int, float]] = {}  # session -> (additions, clock() of the last)

    def add(self, session: str, rgba, label, stroke_width: int | None) -> str:
        """Add a canvas's drawing labelled ``label`` for ``session``; its id. InvalidDrawingError for an empty
        canvas or a label that is not a digit, ClassLimitError for a bound, DrawingsFolderError for a folder that
        cannot be written: each saying what to do, and nothing written."""
        with self._lock:
            count, last = self._added.get(session, (0, float("-inf")))
            wait = self.min_interval_s - (self.clock() - last)
            if count >= self.per_session:
                raise ClassLimitError(f"This tab has added {count} drawings, the most one may: thank you! The class "
                                      "collection keeps them all.")
            if wait > 0:
                raise ClassLimitError(f"One drawing every {self.min_interval_s:g} s: wait {wait:.1f} s, then add it.")
            if self.store.count() >= self.capacity:
                raise ClassLimitError(f"The class collection is full ({self.capacity:,} drawings): nothing more can "
                                      "be added. The teacher can export it and make room.")
            drawing_id = self.store.save(rgba, label, stroke_width)
            self._added[session] = (count + 1, self.clock())
            return drawing_id

    def added(self, session: str) -> int:
        """How many drawings ``session`` has added."""
        with self._lock:
            return self._added.get(session, (0, 0.0))[0]
