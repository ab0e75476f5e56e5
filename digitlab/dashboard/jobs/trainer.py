"""The warm trainer: a trainer process started before anyone presses Train.

It imports torch, sets its threads and reads MNIST into tensors, then waits on a pipe for one order (a run or a
study), so that pressing Train costs the training, not the 5-6 s of starting a process. Each trainer carries out one
order and ends, so nothing of one run leaks into the next. An idle trainer ends as soon as its server does; one at
work outlives it (a restarted server adopts its run).

Why a process and not a thread of the web server: the server's Python work on every page refresh would hold the GIL
that the training loop needs between operations, and a crash of the trainer, even a segfault or an out-of-memory
kill, must become a failed job, never a dead server.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import types
from pathlib import Path

from digitlab.dashboard.jobs.child import trainer_main
from digitlab.data import data_root as resolve_data_root
from digitlab.store import RunStore

KILL_AFTER_S = 3.0  # after SIGTERM, SIGKILL if the process is still there
WARM_ENV = "DIGITLAB_WARM_TRAINER"  # "0": start no trainer ahead of a run (~0.5 GB of its own while it waits)
SPAWN = multiprocessing.get_context("spawn")  # never fork a process that already runs torch's thread pools


_main_module_lock = threading.Lock()


@contextlib.contextmanager
def no_main_script():
    """Spawn processes in here. Streamlit runs each page script as the module __main__, with the script's __file__,
    and a spawned process runs its parent's main file again before its target (multiprocessing's "safe importing of
    the main module"): app.py's whole page in every trainer, its own Coordinator included. A main module with no
    file makes the child import none."""
    with _main_module_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def warm_trainer_enabled() -> bool:
    return os.environ.get(WARM_ENV, "1").strip() != "0"


class WarmTrainer:
    """A trainer process started ahead of its order (see child.trainer_main), with the queue it reports on and the
    event that stops it. ``ready`` is set once it has loaded MNIST (or failed to); ``scaled``, and scaled it for
    the device."""

    def __init__(self, store: RunStore, data_root: str | Path | None = None, scaled: bool = False):
        self.stop = SPAWN.Event()
        self.events = SPAWN.Queue()
        self.ready = SPAWN.Event()
        # Paths are resolved here, so the child reads the same folders whatever its environment.
        self.store_root = str(store.root.resolve())
        self.data_root = str(resolve_data_root(data_root).resolve())
        orders, self._orders = SPAWN.Pipe(duplex=False)
        self.process = SPAWN.Process(target=trainer_main, name="digitlab-trainer", daemon=True,
                                     args=(self.store_root, self.data_root, orders, self.events, self.stop,
                                           self.ready, scaled))
        with no_main_script():
            self.process.start()
        orders.close()  # the child's end: with only the server's end left here, the child sees EOF when it dies
        self.ordered = False

    @property
    def idle(self) -> bool:
        return not self.ordered and self.process.is_alive()

    def serves(self, data_root: str | Path | None) -> bool:
        """Idle, and reading MNIST from ``data_root`` (as resolved for a new trainer)."""
        return self.idle and self.data_root == str(resolve_data_root(data_root).resolve())

    def order(self, order: tuple) -> None:
        """Send the one order; a trainer that died meanwhile is found dead by whoever follows it."""
        self.ordered = True
        try:
            self._orders.send(order)
        except OSError:
            pass

    def end(self) -> None:
        """SIGTERM, then SIGKILL if the process is still there KILL_AFTER_S later."""
        self.process.terminate()
        self.process.join(KILL_AFTER_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def close(self) -> None:
        """End an idle trainer: it sees its pipe close and returns, or is killed if it is still getting ready."""
        self.ordered = True
        self._orders.close()
        self.process.join(KILL_AFTER_S if self.ready.is_set() else 0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
