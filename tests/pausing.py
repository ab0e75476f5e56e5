"""The test side of digitlab.pause: environments that switch pause points on, and waiting for and releasing them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from digitlab.pause import DIR_ENV, POINTS_ENV


def pause_env(folder: Path, *points: str) -> dict[str, str]:
    """os.environ plus the variables that make a child process stop at ``points``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {**os.environ, POINTS_ENV: ",".join(points), DIR_ENV: str(folder)}


def wait_reached(folder: Path, point: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (folder / f"{point}.reached").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no process reached pause point {point!r} within {timeout} s")
        time.sleep(0.01)


def release(folder: Path, point: str) -> None:
    (folder / f"{point}.go").touch()
