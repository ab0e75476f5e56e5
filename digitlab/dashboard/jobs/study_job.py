"""Following a study that a trainer process runs as its first worker (study.run_study there starts the others).

Its trials are read from the study storage when a page looks; a follower thread waits for the process to end and
keeps how it ended, in the child's own words when it said why (no MNIST, say), so that the page can show that rather
than an exit code.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from digitlab import study
from digitlab.dashboard.access import writable
from digitlab.dashboard.jobs.trainer import WarmTrainer

FINISHED_WAIT_S = 0.5  # after the process has ended, how long its last message may take to arrive


class StoredStudy:
    """A job stored as a study (a study's, or a race's): its ``spec`` in the study storage at ``url``."""

    def __init__(self, spec: study.StudySpec, url: str):
        self.spec, self.url = spec, url
        self._storage = None  # opened on the first read: the pages read the trials every second

    def read_trials(self) -> tuple[Any, study.Summary]:
        """(the Optuna study, its summary), read from the study storage now."""
        if self._storage is None:
            self._storage = study.open_storage(self.url)
        found, _ = study.load_study(self.spec.name, self._storage)
        return found, study.summarize(found, self.spec)


class StudyJob(StoredStudy):
    """A study between its start and its end. ``running`` from the moment the coordinator admits it, while its
    definition is stored (database I/O), until its process has ended."""

    def __init__(self, spec: study.StudySpec, url: str, workers: int):
        super().__init__(spec, url)
        self.workers = workers
        self.trainer: WarmTrainer | None = None  # set by start()
        self.on_finished: Callable[[], None] | None = None
        self._ending: dict[str, Any] | None = None  # the child's last word: {"status", "message"}
        self._ending_lock = threading.Lock()
        self._finished = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="digitlab-study-follower", daemon=True)

    def start(self, trainer: WarmTrainer) -> StudyJob:
        # Kept whole: its queue and events must outlive the child's start, which unpickles them from here.
        self.trainer = trainer
        trainer.order(("study", self.spec.to_dict(), self.url, self.workers))
        self._follower.start()
        return self

    @property
    def process(self):
        return self.trainer.process if self.trainer is not None else None

    @property
    def running(self) -> bool:
        """Until its process has ended and its end is known (the follower alone reaps the process: a second waiter
        could find it gone and its exit code not yet set)."""
        return not self._finished.is_set()

    @property
    def stop_requested(self) -> bool:
        return self.trainer is not None and self.trainer.stop.is_set()

    @writable("Stopping a study")
    def stop(self) -> None:
        """Every worker ends after its current batch; finished trials and their runs are kept."""
        if self.trainer is not None:
            self.trainer.stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the study's process has ended and its end is known; True if it has."""
        return self._finished.wait(timeout)

    def failure(self) -> str | None:
        """Why the study ended badly, in the trainer's words where it said why; None while it runs or if it ended
        well."""
        if self.trainer is None or self.trainer.process.exitcode is None:
            return None
        ending = self._last_word()
        if ending is not None and ending["status"] == "failed":
            return ending["message"]
        code = self.trainer.process.exitcode
        return None if code == 0 else f"The study's process ended with exit code {code}; see the server log."

    def _last_word(self) -> dict[str, Any] | None:
        with self._ending_lock:
            while self._ending is None:
                try:
                    kind, payload = self.trainer.events.get(timeout=FINISHED_WAIT_S)
                except queue.Empty:
                    break
                if kind == "finished":
                    self._ending = payload
            return self._ending

    def _follow(self) -> None:
        self.trainer.process.join()
        self._last_word()
        self._finished.set()
        if self.on_finished is not None:
            self.on_finished()
