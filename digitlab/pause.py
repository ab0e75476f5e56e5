"""Pause points that only tests switch on, so that a race between processes can be replayed step by step.

A process started with DIGITLAB_PAUSE_POINTS="name,..." and DIGITLAB_PAUSE_DIR=<folder> stops at each named
``pause_point(name)``: it touches ``<folder>/<name>.reached`` and waits until ``<folder>/<name>.go`` exists. With
the variable unset (always, outside tests) a pause point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS_ENV = "DIGITLAB_PAUSE_POINTS"
DIR_ENV = "DIGITLAB_PAUSE_DIR"
MAX_WAIT_S = 120.0  # a test that never releases its point must not leave a process behind forever


def pause_point(name: str) -> None:
    points = os.environ.get(POINTS_ENV)
    if not points or name not in points.split(","):
        return
    folder = Path(os.environ[DIR_ENV])
    (folder / f"{name}.reached").touch()
    deadline = time.monotonic() + MAX_WAIT_S
    while not (folder / f"{name}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
