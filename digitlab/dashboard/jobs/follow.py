"""Following a run while its trainer trains it: a thread of the server keeps a snapshot that pages read.

A TrainingJob follows a trainer this server started, through its queue; an AdoptedJob follows one that an earlier
server of the same store started (that server was killed or restarted), through the run folder's progress file and
lock. A Stop that the trainer does not obey within its grace period (stuck before its first batch, say in a download)
ends its process by force.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from digitlab.config import TrainConfig
from digitlab.dashboard.access import writable
from digitlab.dashboard.jobs.child import PROGRESS_FILE, STOP_FILE, Rate, read_progress
from digitlab.dashboard.jobs.trainer import KILL_AFTER_S, WarmTrainer
from digitlab.recorder import BatchTrace, epoch_record
from digitlab.store import RunError, RunRecord, RunStore

TRACE_PUBLISH_S = 0.25  # downsampling the loss trace costs O(points): publish it a few times a second
POLL_S = 0.5  # an adopted job reads the progress file this often
STOP_GRACE_S = 10.0  # after a Stop the trainer ignores this long, its process is ended by force


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a page shows about a run, copied out under the lock so the follower can go on."""

    state: str  # "running" or "finished"
    config: TrainConfig
    owner: str  # who started it (a browser session id), so a second tab can tell it is not theirs
    started_at: float  # time.time()
    run_id: str | None = None
    status: str = "running"  # when finished: completed, stopped, diverged, failed
    message: str = ""
    stop_requested: bool = False
    device_name: str = ""
    precision: str = ""  # resolved: fp32, bf16 or fp16
    param_count: int = 0
    epoch: int = 0
    batch: int = 0
    batches_per_epoch: int = 0
    train_size: int = 0
    held_out_split: str = ""  # what the held-out checks measure: "validation" or "test" ...
    held_out_size: int = 0  # ... on this many of its images
    samples_seen: int = 0
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    lr: float = 0.0
    batches: dict[str, list[float]] = field(default_factory=dict)  # samples_seen, elapsed_s, loss, accuracy
    held_out: dict[str, list[float]] = field(default_factory=dict)  # the held-out checks, the same four lists
    epochs: tuple[dict[str, float], ...] = ()
    final: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # bumped on every change

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def total_samples(self) -> int:
        return self.config.epochs * self.train_size

    @property
    def progress(self) -> float:
        return min(1.0, self.samples_seen / self.total_samples) if self.total_samples else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.images_per_s or not self.total_samples:
            return None
        return (self.total_samples - self.samples_seen) / self.images_per_s


def ended_unexpectedly(exit_code: int | None) -> str:
    return (f"Training failed: the training process ended unexpectedly (exit code {exit_code}). The epochs it "
            "finished are kept in the run.")


class Job:
    """What TrainingJob and AdoptedJob share: the snapshot, Stop with its grace period, and a follower thread that
    turns any error of its own into a failed job."""

    def __init__(self, snapshot: JobSnapshot, store: RunStore, stop_grace_s: float):
        self.store = store
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._snapshot = snapshot
        self._stop_at: float | None = None  # time.monotonic() of the first Stop
        self._first_batches = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="digitlab-training-follower", daemon=True)
        self.on_finished: Callable[[], None] | None = None  # called by the follower once the job has finished

    def start(self) -> Job:
        self._follower.start()
        return self

    @writable("Stopping a run")
    def stop(self) -> None:
        """Ask the trainer to stop before its next batch; the run is kept with status stopped. A trainer that has
        not ended STOP_GRACE_S later is ended by force. Refused in read-only mode."""
        with self._lock:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
        self._request_stop()
        self._update(stop_requested=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job has finished (its run is written); True if it has."""
        return self._finished.wait(timeout)

    def wait_for_batches(self, timeout: float) -> bool:
        """Wait until the snapshot holds its first batches (or the job has finished); True if it does."""
        self._first_batches.wait(timeout)
        snapshot = self.snapshot()
        return bool(snapshot.batches.get("loss")) or not snapshot.running

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._snapshot

    @property
    def running(self) -> bool:
        return self.snapshot().running

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, version=self._snapshot.version + 1, **changes)
        if changes.get("batches", {}).get("loss"):
            self._first_batches.set()
        if changes.get("state") == "finished":
            self._finished.set()
            self._first_batches.set()
            if self.on_finished is not None:
                self.on_finished()

    def _overdue(self) -> bool:
        return self._stop_at is not None and time.monotonic() - self._stop_at > self.stop_grace_s

    def _follow(self) -> None:
        try:
            self._follow_trainer()
        except Exception as err:  # a job shown as running forever would block every later one
            self._request_stop()
            deadline = time.monotonic() + self.stop_grace_s
            while self._trainer_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._trainer_alive():
                self._end_trainer()
            self._update(state="finished", status="failed",
                         message=f"The dashboard lost track of this training ({type(err).__name__}: {err}), so it "
                                 "was stopped. The epochs it finished are kept in the run.")

    def _end_by_force(self) -> dict[str, Any]:
        """End the trainer's process, then keep its run as stopped with the epochs it finished: the changes that
        finish the snapshot."""
        self._end_trainer()
        message = (f"Ended by force: training did not stop within {self.stop_grace_s:g} s of the Stop request "
                   "(the grace period), so its process was ended.")
        run_id = self.snapshot().run_id
        try:
            record = self.store.read(run_id) if run_id else None
            if record is not None and record.status in ("running", "interrupted"):
                record = self.store.mark_stopped(run_id, message)
        except RunError:
            record = None
        if record is None or record.status in ("running", "interrupted"):  # nothing usable was kept
            return {"status": "stopped", "message": message}
        return {"status": record.status, "message": record.message, "final": record.final,
                "epochs": tuple(record.epochs), "batches": record.batches,
                "held_out": trace_of(record.data.get("held_out"))}

    def _follow_trainer(self) -> None:
        raise NotImplementedError

    def _request_stop(self) -> None:
        raise NotImplementedError

    def _trainer_alive(self) -> bool:
        raise NotImplementedError

    def _end_trainer(self) -> None:
        """SIGTERM, then SIGKILL if the process is still there KILL_AFTER_S later."""
        raise NotImplementedError


class TrainingJob(Job):
    """A run trained by a WarmTrainer, followed through its queue: a run of its own (``config``), or a lane of a
    race (``lane``: (race, storage URL, threads), its config known once it starts; ``config`` is the one planned).

    It may wait in the coordinator's queue before it starts (start(trainer)): a Stop meanwhile cancels it
    (``on_cancel`` takes it out of the queue) and it never starts."""

    def __init__(self, config: TrainConfig, store: RunStore, owner: str = "", stop_grace_s: float = STOP_GRACE_S,
                 lane: tuple[str, str, int] | None = None):
        started_at = time.time()
        super().__init__(JobSnapshot(state="running", config=config, owner=owner, started_at=started_at,
                                     message="Waiting for a free trainer..."), store, stop_grace_s)
        self.trainer: WarmTrainer | None = None
        self._order = ("lane", *lane, owner, started_at) if lane else ("train", config.to_json(), owner, started_at)
        self.on_cancel: Callable[[], bool] | None = None  # True if it took the job out of the queue
        self._trace = BatchTrace()
        self._held_out = BatchTrace()
        self._rate = Rate()
        self._trace_published_at = 0.0

    def start(self, trainer: WarmTrainer) -> TrainingJob:
        self.trainer = trainer
        self._update(message="Starting..." if trainer.ready.is_set() else "Loading MNIST...")
        trainer.order(self._order)
        return super().start()

    def _request_stop(self) -> None:
        if self.trainer is not None:
            self.trainer.stop.set()
        elif self.on_cancel is not None and self.on_cancel():
            self._update(state="finished", status="stopped",
                         message="Stopped before it started: it was waiting for a free trainer, and no run was kept.")

    def _trainer_alive(self) -> bool:
        return self.trainer is not None and self.trainer.process.is_alive()

    def _end_trainer(self) -> None:
        if self.trainer is not None:
            self.trainer.end()

    def _follow_trainer(self) -> None:
        process, events = self.trainer.process, self.trainer.events
        while True:
            if self._overdue() and process.is_alive():
                # The queue is left unread: a process killed mid-message leaves half of one in it.
                self._update(state="finished", **{"batches": self._trace.to_dict(), **self._end_by_force()})
                return
            try:
                kind, payload = events.get(timeout=POLL_S)
            except queue.Empty:
                if process.is_alive():
                    continue
                try:  # the child may have ended right after its last message
                    kind, payload = events.get(timeout=0.5)
                except queue.Empty:  # it died without a word: a segfault, or killed for memory
                    kind, payload = "finished", {"status": "failed", "message": ended_unexpectedly(process.exitcode)}
            if kind == "finished":
                self._update(state="finished", batches=self._trace.to_dict(), held_out=self._held_out.to_dict(),
                             **payload)
                process.join(5)
                return
            self._apply(kind, payload)

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "batches":
            for event in payload:
                self._trace.add(event)
            last = payload[-1]
            changes = dict(epoch=last.epoch, batch=last.batch, samples_seen=last.samples_seen,
                           elapsed_s=last.elapsed_s, images_per_s=self._rate.add(payload), lr=last.lr, message="")
            if time.monotonic() - self._trace_published_at >= TRACE_PUBLISH_S:
                changes["batches"] = self._trace.to_dict()
                self._trace_published_at = time.monotonic()
            self._update(**changes)
        elif kind == "held_out":
            self._held_out.add(payload)
            self._update(held_out=self._held_out.to_dict())
        elif kind == "epoch":
            self._update(epochs=(*self._snapshot.epochs, epoch_record(payload)), elapsed_s=payload.elapsed_s,
                         batches=self._trace.to_dict())
        elif kind == "start":
            self._update(epoch=1, **{**payload, "config": TrainConfig.from_dict(payload["config"])})
        elif kind == "message":
            self._update(message=payload)


_PROGRESS_FIELDS = {f.name for f in fields(JobSnapshot)} - {"state", "config", "version", "epochs"}


class AdoptedJob(Job):
    """A live trainer that an earlier server of this store started: followed through its run folder, the progress
    file and the run's lock, and stopped through its stop-request file."""

    def __init__(self, record: RunRecord, progress: dict[str, Any], store: RunStore,
                 stop_grace_s: float = STOP_GRACE_S):
        snapshot = JobSnapshot(state="running", config=record.config, owner="", started_at=time.time(),
                               run_id=record.id)
        super().__init__(snapshot, store, stop_grace_s)
        self._path = record.path
        self._pid = record.data.get("pid")
        self._progress: dict[str, Any] | None = None
        self._apply(progress)

    def _apply(self, progress: dict[str, Any]) -> None:
        if progress == self._progress:
            return
        self._progress = progress
        changes = {k: v for k, v in progress.items() if k in _PROGRESS_FIELDS}
        self._update(**changes, epochs=tuple(progress.get("epochs", ())))

    def _request_stop(self) -> None:
        (self._path / STOP_FILE).touch()

    def _trainer_alive(self) -> bool:
        """The run is still being trained: its trainer holds the run's lock (so its pid is still that trainer's)."""
        try:
            return self.store.read(self._path.name).status == "running"
        except RunError:
            return False

    def _end_trainer(self) -> None:
        if not isinstance(self._pid, int):
            return
        for sig, wait_s in ((signal.SIGTERM, KILL_AFTER_S), (signal.SIGKILL, KILL_AFTER_S)):
            if not self._trainer_alive():  # checked right before each signal: a reused pid is never hit
                return
            try:
                os.kill(self._pid, sig)
            except OSError:
                return
            deadline = time.monotonic() + wait_s
            while self._trainer_alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _follow_trainer(self) -> None:
        while True:
            if self._overdue() and self._trainer_alive():
                self._update(state="finished", **self._end_by_force())
                return
            try:
                record = self.store.read(self._path.name)
            except RunError as err:  # deleted or damaged under us
                self._update(state="finished", status="failed", message=f"The run cannot be read any more: {err}")
                return
            if record.status != "running":
                status, message = record.status, record.message
                if status == "interrupted":
                    status, message = "failed", ended_unexpectedly(None)
                self._update(state="finished", status=status, message=message, final=record.final,
                             epochs=tuple(record.epochs), batches=record.batches,
                             held_out=trace_of(record.data.get("held_out")))
                return
            progress = read_progress(self._path)
            if progress is not None:
                self._apply(progress)
            time.sleep(POLL_S)


def trace_of(held_out: dict[str, Any] | None) -> dict[str, list[float]]:
    """run.json's held_out less what the snapshot keeps in fields of its own (split, size)."""
    return {k: v for k, v in (held_out or {}).items() if k not in ("split", "size")}


def live_dashboard_runs(store: RunStore) -> list[tuple[RunRecord, dict[str, Any]]]:
    """The runs of ``store`` that a dashboard's trainer is still training, oldest first, each with its progress (a
    CLI run has no progress file)."""
    if not store.root.is_dir():
        return []
    found = []
    for progress_file in store.root.glob(f"*/{PROGRESS_FILE}"):
        try:
            record = store.read(progress_file.parent.name)
        except RunError:
            continue
        progress = read_progress(record.path)
        if record.status == "running" and progress is not None:
            found.append((record, progress))
    return sorted(found, key=lambda pair: pair[0].data.get("created_at", ""))
