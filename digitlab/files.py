"""Files written safely: atomically (a temporary file, then a rename), with the temporary files of writers that
died swept away later. The run store, the caches, the drawings and the dashboard's feeds all write this way."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from digitlab.pause import pause_point

try:
    import fcntl
except ImportError:  # Windows: no file locks, so no leftover can be told from a live writer's file
    fcntl = None

LEFTOVER_AGE_S = 60.0  # a temporary file this old, that no live writer holds, was left by a writer that died


def atomic_write(path: Path, write, sync: bool = True) -> None:
    """Call ``write(tmp_path)``, flush it to disk (unless ``sync`` is off, for a file that only matters while its
    process lives), then rename over ``path``: readers see the old or the new file, never half of one. The writer
    holds a lock on its temporary file until the rename, so that a sweep of leftovers (remove_leftovers) never
    takes one that is still being written."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as held:
            if fcntl is not None:
                fcntl.flock(held, fcntl.LOCK_EX)
            write(tmp)
            pause_point("files.atomic_write.before_replace")
            if sync:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files of writers that died mid-write: old ones whose lock no live writer holds."""
    if fcntl is None:  # no way to tell a live writer's file from a dead one's: keep them all
        return
    for tmp in folder.glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime < LEFTOVER_AGE_S:
                continue  # it may have been created a moment ago, before its writer took the lock
            with open(tmp, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError (an OSError): its writer is alive
                tmp.unlink()
        except OSError:
            continue


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, allow_nan=True)))
