"""Classroom mode: with DIGITLAB_READ_ONLY=1 the dashboard changes nothing, for a server that others can reach.

Everything that changes state is decorated with ``writable``: it refuses at the point where the change is made, so
that a disabled control that is forced anyway (a stale tab, a session-state edit) is still refused. Viewing is never a
change: Draw, Compare, Errors and every chart work as usual, and write nothing under the run store (the library's
digitlab.store.read_only, which reads the same variable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from digitlab.store import READ_ONLY_ENV, read_only

P = ParamSpec("P")
R = TypeVar("R")

READ_ONLY_REASON = ("This dashboard is in read-only (classroom) mode: it can be viewed, but nothing can be trained, "
                    f"stopped, renamed or deleted. Whoever runs it can unset {READ_ONLY_ENV} to change that.")


class ReadOnlyError(PermissionError):
    """An action that changes state, refused in read-only mode."""


def writable(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function that changes state: in read-only mode it raises ReadOnlyError naming ``action`` (e.g.
    "Training"), whoever calls it."""
    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if read_only():
                raise ReadOnlyError(f"{action} is turned off. {READ_ONLY_REASON}")
            return function(*args, **kwargs)

        return guarded

    return decorate
