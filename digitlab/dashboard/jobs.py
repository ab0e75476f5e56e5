"""A training job for the dashboard: training runs in a child process, a thread of the server follows it.

Why a process: the web server's Python work on every page refresh would otherwise hold the GIL that the
training loop needs between operations (measured on 2 cores, Train page open: 38-42% of the CLI's throughput on
a thread, 63-66% in a process, 73-80% once the live charts updated in place; the rest goes to the browser and
the server on the same cores). And a crash of the child, even a segfault or an out-of-memory kill, becomes a
failed job, never a dead server.

The child writes the run store itself (the same RunRecorder as the CLI) and sends engine events, without the
model, over a queue. The follower thread never touches the UI: it keeps a snapshot that pages poll. One job
runs at a time per server (JobManager); a second start gets JobBusyError carrying who is training.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digitlab.config import TrainConfig
from digitlab.data import data_root as resolve_data_root
from digitlab.recorder import BatchTrace, epoch_record
from digitlab.store import RunStore

RATE_WINDOW = 30  # batches over which images/s is measured: recent speed, not the average since the start
SEND_EVERY_S = 0.1  # the child sends batch events in bundles: one queue message per batch costs more than a step
TRACE_PUBLISH_S = 0.25  # downsampling the loss trace costs O(points): publish it a few times a second
_SPAWN = multiprocessing.get_context("spawn")  # never fork a process that already runs torch's thread pools


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a page shows about a job, copied out under the lock so the follower can go on."""

    state: str  # "running" or "finished"
    config: TrainConfig
    owner: str  # who started it (a browser session id), so a second tab can tell it is not theirs
    started_at: float  # time.time()
    run_id: str | None = None
    status: str = "running"  # when finished: completed, stopped, diverged, failed
    message: str = ""
    stop_requested: bool = False
    device_name: str = ""
    param_count: int = 0
    epoch: int = 0
    batch: int = 0
    batches_per_epoch: int = 0
    train_size: int = 0
    samples_seen: int = 0
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    lr: float = 0.0
    batches: dict[str, list[float]] = field(default_factory=dict)  # samples_seen, elapsed_s, loss (downsampled)
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


def _train_in_child(config_json: str, store_root: str, data_root: str, events, stop) -> None:
    """The child process: train, record the run, and report to the parent. Messages are (kind, payload)."""
    from digitlab.data import load_mnist
    from digitlab.engine import BatchEnd, EpochEnd, RunEnd, RunStart, train
    from digitlab.recorder import record_training

    config = TrainConfig.from_json(config_json)
    pending: list[BatchEnd] = []
    sent_at = time.monotonic()

    def report(recorder, event) -> None:
        nonlocal sent_at
        if isinstance(event, BatchEnd):
            pending.append(event)
            if time.monotonic() - sent_at < SEND_EVERY_S:
                return
        if pending:
            events.put(("batches", list(pending)))
            pending.clear()
            sent_at = time.monotonic()
        if isinstance(event, RunStart):
            events.put(("start", {"run_id": recorder.run_id, "device_name": event.device_name,
                                  "param_count": event.param_count, "batches_per_epoch": event.batches_per_epoch,
                                  "train_size": event.train_size}))
        elif isinstance(event, EpochEnd):
            events.put(("epoch", event))
        elif isinstance(event, RunEnd):
            events.put(("message", event.message))

    try:
        data = load_mnist(data_root)
        events.put(("message", "Starting..."))
        record = record_training(RunStore(store_root), config, train(config, data, stop), report)
        events.put(("finished", {"status": record.status, "message": record.message, "final": record.final}))
    except Exception as err:  # the run store already marked the run failed, if it had begun
        events.put(("finished", {"status": "failed", "message": f"Training failed: {type(err).__name__}: {err}"}))


class TrainingJob:
    def __init__(self, config: TrainConfig, store: RunStore, data_root: str | Path | None = None, owner: str = ""):
        self._stop = _SPAWN.Event()
        self._finished = threading.Event()
        self._events = _SPAWN.Queue()
        self._lock = threading.Lock()
        self._trace = BatchTrace()
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)
        self._trace_published_at = 0.0
        self._snapshot = JobSnapshot(state="running", config=config, owner=owner, started_at=time.time(),
                                     message="Loading MNIST...")
        # Paths are resolved here, so the child reads the same folders whatever its environment.
        self._process = _SPAWN.Process(
            target=_train_in_child, name="digitlab-training", daemon=True,
            args=(config.to_json(), str(store.root.resolve()), str(resolve_data_root(data_root).resolve()),
                  self._events, self._stop),
        )
        self._follower = threading.Thread(target=self._follow, name="digitlab-training-follower", daemon=True)

    def start(self) -> TrainingJob:
        self._process.start()
        self._follower.start()
        return self

    def stop(self) -> None:
        """Ask the trainer to stop before its next batch; the run is kept with status stopped."""
        self._stop.set()
        self._update(stop_requested=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job has finished (its run is written); True if it has."""
        return self._finished.wait(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._snapshot

    @property
    def running(self) -> bool:
        return self.snapshot().running

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, version=self._snapshot.version + 1, **changes)
        if changes.get("state") == "finished":
            self._finished.set()

    def _follow(self) -> None:
        while True:
            try:
                kind, payload = self._events.get(timeout=0.5)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                try:  # the child may have ended right after its last message
                    kind, payload = self._events.get(timeout=0.5)
                except queue.Empty:  # it died without a word: a segfault, or killed for memory
                    kind, payload = "finished", {
                        "status": "failed",
                        "message": f"Training failed: the training process ended unexpectedly (exit code "
                                   f"{self._process.exitcode}). The epochs it finished are kept in the run.",
                    }
            if kind == "finished":
                self._update(state="finished", batches=self._trace.to_dict(), **payload)
                self._process.join(5)
                return
            self._apply(kind, payload)

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "batches":
            for event in payload:
                self._trace.add(event)
                self._recent.append((event.elapsed_s, event.samples_seen))
            last = payload[-1]
            (t0, n0), (t1, n1) = self._recent[0], self._recent[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else self._snapshot.images_per_s
            changes = dict(epoch=last.epoch, batch=last.batch, samples_seen=last.samples_seen,
                           elapsed_s=last.elapsed_s, images_per_s=rate, lr=last.lr, message="")
            if time.monotonic() - self._trace_published_at >= TRACE_PUBLISH_S:
                changes["batches"] = self._trace.to_dict()
                self._trace_published_at = time.monotonic()
            self._update(**changes)
        elif kind == "epoch":
            self._update(epochs=(*self._snapshot.epochs, epoch_record(payload)), elapsed_s=payload.elapsed_s,
                         batches=self._trace.to_dict())
        elif kind == "start":
            self._update(epoch=1, **payload)
        elif kind == "message":
            self._update(message=payload)


class JobBusyError(RuntimeError):
    def __init__(self, snapshot: JobSnapshot):
        super().__init__(f"a {snapshot.config.model} run is already training ({snapshot.progress:.0%} done)")
        self.snapshot = snapshot


class JobManager:
    """At most one training job per server: a shared GPU or a 2-core CPU runs one training well, not two."""

    def __init__(self, store: RunStore, data_root: str | Path | None = None):
        self.store = store
        self.data_root = data_root
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def start(self, config: TrainConfig, owner: str = "") -> TrainingJob:
        errors = config.validate()
        if errors:
            raise ValueError("; ".join(errors.values()))
        with self._lock:
            if self._job is not None and self._job.running:
                raise JobBusyError(self._job.snapshot())
            self._job = TrainingJob(config, self.store, self.data_root, owner).start()
            return self._job

    @classmethod
    def for_store(cls, store: RunStore) -> JobManager:
        """The process's one JobManager over ``store``: a module global rather than a Streamlit cache, so that the
        menu's "Clear caches" cannot drop the running job."""
        key = store.root.resolve()
        with _managers_lock:
            if key not in _managers:
                _managers[key] = cls(store)
            return _managers[key]

    @property
    def job(self) -> TrainingJob | None:
        """The running job, or the last one to finish."""
        return self._job


_managers: dict[Path, JobManager] = {}
_managers_lock = threading.Lock()
