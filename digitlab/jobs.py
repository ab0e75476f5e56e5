"""A training job on a worker thread, for the dashboard.

The worker never touches the UI: it feeds engine events into the run store and into a snapshot that pages poll.
One job runs at a time per process (JobManager); a second start gets JobBusyError carrying who is training.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from digitlab.config import TrainConfig
from digitlab.data import MNIST
from digitlab.engine import BatchEnd, EpochEnd, RunEnd, RunStart, train
from digitlab.runs import BatchTrace, RunStore, record_training

RATE_WINDOW = 30  # batches over which images/s is measured: recent speed, not the average since the start
TRACE_PUBLISH_S = 0.25  # downsampling the loss trace costs O(points): publish it a few times a second, not per batch


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a page shows about a job, copied out under the lock so the worker can go on."""

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


class TrainingJob:
    def __init__(self, config: TrainConfig, load_data: Callable[[], MNIST], store: RunStore, owner: str = ""):
        self._load_data = load_data
        self._store = store
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._trace = BatchTrace()
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)
        self._trace_published_at = 0.0
        self._snapshot = JobSnapshot(state="running", config=config, owner=owner, started_at=time.time(),
                                     message="Loading MNIST...")
        self._thread = threading.Thread(target=self._work, name="digitlab-training", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the worker to stop before its next batch; the run is kept with status stopped."""
        self._stop.set()
        self._update(stop_requested=True)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._snapshot

    @property
    def running(self) -> bool:
        return self.snapshot().running

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, version=self._snapshot.version + 1, **changes)

    def _work(self) -> None:
        config = self._snapshot.config
        try:
            data = self._load_data()
            self._update(message="Starting...")
            record = record_training(self._store, config, train(config, data, self._stop), self._on_event)
            self._update(state="finished", status=record.status, message=record.message, final=record.final)
        except Exception as err:  # the page shows it; the run store already marked the run failed
            self._update(state="finished", status="failed", message=f"Training failed: {type(err).__name__}: {err}")

    def _on_event(self, recorder, event) -> None:
        if isinstance(event, BatchEnd):
            self._trace.add(event)
            self._recent.append((event.elapsed_s, event.samples_seen))
            (t0, n0), (t1, n1) = self._recent[0], self._recent[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else self._snapshot.images_per_s
            changes = dict(epoch=event.epoch, batch=event.batch, samples_seen=event.samples_seen,
                           elapsed_s=event.elapsed_s, images_per_s=rate, lr=event.lr, message="")
            if time.monotonic() - self._trace_published_at >= TRACE_PUBLISH_S:
                changes["batches"] = self._trace.to_dict()
                self._trace_published_at = time.monotonic()
            self._update(**changes)
        elif isinstance(event, EpochEnd):
            self._update(epochs=tuple(recorder.data["epochs"]), elapsed_s=event.elapsed_s,
                         batches=self._trace.to_dict())
        elif isinstance(event, RunStart):
            self._update(run_id=recorder.run_id, device_name=event.device_name, param_count=event.param_count,
                         batches_per_epoch=event.batches_per_epoch, train_size=event.train_size, epoch=1)
        elif isinstance(event, RunEnd):
            self._update(message=event.message, batches=self._trace.to_dict())


class JobBusyError(RuntimeError):
    def __init__(self, snapshot: JobSnapshot):
        super().__init__(f"a {snapshot.config.model} run is already training ({snapshot.progress:.0%} done)")
        self.snapshot = snapshot


class JobManager:
    """At most one training job per process: a shared GPU or a 2-core CPU runs one training well, not two."""

    def __init__(self, load_data: Callable[[], MNIST], store: RunStore):
        self._load_data = load_data
        self.store = store
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def start(self, config: TrainConfig, owner: str = "") -> TrainingJob:
        errors = config.validate()
        if errors:
            raise ValueError("; ".join(errors.values()))
        with self._lock:
            if self._job is not None and self._job.running:
                raise JobBusyError(self._job.snapshot())
            self._job = TrainingJob(config, self._load_data, self.store, owner).start()
            return self._job

    @property
    def job(self) -> TrainingJob | None:
        """The running job, or the last one to finish."""
        return self._job
