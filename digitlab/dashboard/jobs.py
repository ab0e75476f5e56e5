"""A training job for the dashboard: training runs in a child process, a thread of the server follows it.

Why a process: the web server's Python work on every page refresh would otherwise hold the GIL that the
training loop needs between operations (measured on 2 cores, Train page open: 38-42% of the CLI's throughput on
a thread, 63-66% in a process, 73-80% once the live charts updated in place; the rest goes to the browser and
the server on the same cores). And a crash of the child, even a segfault or an out-of-memory kill, becomes a
failed job, never a dead server.

The child writes the run store itself (the same RunRecorder as the CLI) and sends engine events, without the
model, over a queue. The follower thread never touches the UI: it keeps a snapshot that pages poll. One job
runs at a time per server (JobManager); a second start gets JobBusyError carrying who is training.

The trainer outlives its server (a kill -9, a crash): it finishes and records its run. So that a restarted
server can show it and stop it, the child also keeps a progress file in its run folder and obeys a stop-request
file there; a new JobManager adopts a live run that has one (AdoptedJob). A Stop that the trainer does not obey
within STOP_GRACE_S (stuck before its first batch, say in a download) ends its process by force.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from digitlab.config import TrainConfig
from digitlab.dashboard.access import require_writable
from digitlab.data import data_root as resolve_data_root
from digitlab.pause import pause_point
from digitlab.recorder import BatchTrace, epoch_record
from digitlab.store import RunError, RunRecord, RunStore, atomic_write

RATE_WINDOW = 30  # batches over which images/s is measured: recent speed, not the average since the start
SEND_EVERY_S = 0.1  # the child sends batch events in bundles: one queue message per batch costs more than a step
TRACE_PUBLISH_S = 0.25  # downsampling the loss trace costs O(points): publish it a few times a second
PROGRESS_EVERY_S = 0.5  # the child rewrites its progress file this often (downsampling + JSON: ~1% of a core)
STOP_CHECK_S = 0.1  # the child looks for a stop-request file at most this often (the engine asks every batch)
POLL_S = 0.5  # an adopted job reads the progress file this often
STOP_GRACE_S = 10.0  # after a Stop the trainer ignores this long, its process is ended by force
KILL_AFTER_S = 3.0  # after SIGTERM, SIGKILL if the process is still there
PROGRESS_FILE = ".job.json"
STOP_FILE = ".stop"
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
    precision: str = ""  # resolved: fp32, bf16 or fp16
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


class _Rate:
    """Images per second over the last RATE_WINDOW batches."""

    def __init__(self) -> None:
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)
        self.value = 0.0

    def add(self, events) -> float:
        self._recent.extend((event.elapsed_s, event.samples_seen) for event in events)
        (t0, n0), (t1, n1) = self._recent[0], self._recent[-1]
        if t1 > t0:
            self.value = (n1 - n0) / (t1 - t0)
        return self.value


class _StopSignal:
    """What the child's engine checks before every batch: the parent's event, or the stop-request file that a
    server which adopted the run writes into the run folder."""

    def __init__(self, event) -> None:
        self._event = event
        self._file: Path | None = None
        self._checked_at = 0.0

    def watch(self, path: Path) -> None:
        self._file = path

    def is_set(self) -> bool:
        if self._event.is_set():
            return True
        if self._file is None or time.monotonic() - self._checked_at < STOP_CHECK_S:
            return False
        self._checked_at = time.monotonic()
        if self._file.exists():
            self._event.set()
            return True
        return False


class _ChildReporter:
    """The child's side of the job: engine events to the parent's queue (batches in bundles), and the same
    progress, as JobSnapshot fields, to the run's progress file for a server that adopts the run later."""

    def __init__(self, events, stop: _StopSignal, owner: str, started_at: float):
        self.events = events
        self.stop = stop
        self.parent_pid = os.getppid()
        self.progress: dict[str, Any] = {"owner": owner, "started_at": started_at, "epochs": []}
        self.pending: list = []
        self.rate = _Rate()
        self.sent_at = time.monotonic()
        self.written_at = 0.0
        self.path: Path | None = None

    def send(self, kind: str, payload: Any) -> None:
        # Once the server is gone nobody reads the queue: a restarted one reads the progress file instead.
        if os.getppid() == self.parent_pid:
            self.events.put((kind, payload))

    def __call__(self, recorder, event) -> None:
        from digitlab.engine import BatchEnd, EpochEnd, RunEnd, RunStart

        if isinstance(event, BatchEnd):
            self.pending.append(event)
            if time.monotonic() - self.sent_at < SEND_EVERY_S:
                return
        if self.pending:
            self.send("batches", list(self.pending))
            last = self.pending[-1]
            self.progress.update(epoch=last.epoch, batch=last.batch, samples_seen=last.samples_seen,
                                 elapsed_s=last.elapsed_s, lr=last.lr, images_per_s=self.rate.add(self.pending),
                                 message="")
            self.pending.clear()
            self.sent_at = time.monotonic()
        if isinstance(event, RunStart):
            start = {"run_id": recorder.run_id, "device_name": event.device_name, "precision": event.precision,
                     "param_count": event.param_count, "batches_per_epoch": event.batches_per_epoch,
                     "train_size": event.train_size}
            self.send("start", start)
            self.progress.update(epoch=1, **start)
            self.path = recorder.path
            self.stop.watch(recorder.path / STOP_FILE)
        elif isinstance(event, EpochEnd):
            self.send("epoch", event)
            self.progress["epochs"].append(epoch_record(event))
        elif isinstance(event, RunEnd):
            self.send("message", event.message)
        if self.path is not None and (not isinstance(event, BatchEnd)
                                      or time.monotonic() - self.written_at >= PROGRESS_EVERY_S):
            self.progress["batches"] = recorder.trace.to_dict()
            # Not synced: the progress file only matters while this run lives.
            atomic_write(self.path / PROGRESS_FILE, lambda tmp: tmp.write_text(json.dumps(self.progress)), sync=False)
            self.written_at = time.monotonic()
        if isinstance(event, EpochEnd):
            pause_point("train.after_epoch")

    def clean_up(self) -> None:
        if self.path is not None:
            for name in (PROGRESS_FILE, STOP_FILE):
                (self.path / name).unlink(missing_ok=True)


def _read_progress(run_path: Path) -> dict[str, Any] | None:
    try:
        progress = json.loads((run_path / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) else None


def _train_in_child(config_json: str, store_root: str, data_root: str, owner: str, started_at: float, events,
                    stop_event) -> None:
    """The child process: train, record the run, and report to the parent. Messages are (kind, payload)."""
    from digitlab.data import load_mnist
    from digitlab.engine import train
    from digitlab.recorder import record_training

    config = TrainConfig.from_json(config_json)
    stop = _StopSignal(stop_event)
    reporter = _ChildReporter(events, stop, owner, started_at)
    try:
        pause_point("train.before_data")
        data = load_mnist(data_root)
        reporter.send("message", "Starting...")
        record = record_training(RunStore(store_root), config, train(config, data, stop), reporter)
        reporter.send("finished", {"status": record.status, "message": record.message, "final": record.final})
    except Exception as err:  # the run store already marked the run failed, if it had begun
        reporter.send("finished", {"status": "failed", "message": f"Training failed: {type(err).__name__}: {err}"})
    finally:
        reporter.clean_up()


def _ended_unexpectedly(exit_code: int | None) -> str:
    return (f"Training failed: the training process ended unexpectedly (exit code {exit_code}). The epochs it "
            "finished are kept in the run.")


class _Job:
    """What TrainingJob and AdoptedJob share: the snapshot, Stop with its grace period, and a follower thread that
    turns any error of its own into a failed job."""

    def __init__(self, snapshot: JobSnapshot, store: RunStore, stop_grace_s: float):
        self.store = store
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._snapshot = snapshot
        self._stop_at: float | None = None  # time.monotonic() of the first Stop
        self._follower = threading.Thread(target=self._follow, name="digitlab-training-follower", daemon=True)

    def stop(self) -> None:
        """Ask the trainer to stop before its next batch; the run is kept with status stopped. A trainer that has
        not ended STOP_GRACE_S later is ended by force. Refused in read-only mode."""
        require_writable("Stopping a run")
        with self._lock:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
        self._request_stop()
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
                "epochs": tuple(record.epochs), "batches": record.batches}

    def _follow_trainer(self) -> None:
        raise NotImplementedError

    def _request_stop(self) -> None:
        raise NotImplementedError

    def _trainer_alive(self) -> bool:
        raise NotImplementedError

    def _end_trainer(self) -> None:
        """SIGTERM, then SIGKILL if the process is still there KILL_AFTER_S later."""
        raise NotImplementedError


class TrainingJob(_Job):
    def __init__(self, config: TrainConfig, store: RunStore, data_root: str | Path | None = None, owner: str = "",
                 stop_grace_s: float = STOP_GRACE_S):
        started_at = time.time()
        super().__init__(JobSnapshot(state="running", config=config, owner=owner, started_at=started_at,
                                     message="Loading MNIST..."), store, stop_grace_s)
        self._stop = _SPAWN.Event()
        self._events = _SPAWN.Queue()
        self._trace = BatchTrace()
        self._rate = _Rate()
        self._trace_published_at = 0.0
        # Paths are resolved here, so the child reads the same folders whatever its environment.
        self._process = _SPAWN.Process(
            target=_train_in_child, name="digitlab-training", daemon=True,
            args=(config.to_json(), str(store.root.resolve()), str(resolve_data_root(data_root).resolve()), owner,
                  started_at, self._events, self._stop),
        )

    def start(self) -> TrainingJob:
        self._process.start()
        self._follower.start()
        return self

    def _request_stop(self) -> None:
        self._stop.set()

    def _trainer_alive(self) -> bool:
        return self._process.is_alive()

    def _end_trainer(self) -> None:
        self._process.terminate()
        self._process.join(KILL_AFTER_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _follow_trainer(self) -> None:
        while True:
            if self._overdue() and self._process.is_alive():
                # The queue is left unread: a process killed mid-message leaves half of one in it.
                self._update(state="finished", **{"batches": self._trace.to_dict(), **self._end_by_force()})
                return
            try:
                kind, payload = self._events.get(timeout=POLL_S)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                try:  # the child may have ended right after its last message
                    kind, payload = self._events.get(timeout=0.5)
                except queue.Empty:  # it died without a word: a segfault, or killed for memory
                    kind, payload = "finished", {"status": "failed",
                                                 "message": _ended_unexpectedly(self._process.exitcode)}
            if kind == "finished":
                self._update(state="finished", batches=self._trace.to_dict(), **payload)
                self._process.join(5)
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
        elif kind == "epoch":
            self._update(epochs=(*self._snapshot.epochs, epoch_record(payload)), elapsed_s=payload.elapsed_s,
                         batches=self._trace.to_dict())
        elif kind == "start":
            self._update(epoch=1, **payload)
        elif kind == "message":
            self._update(message=payload)


_PROGRESS_FIELDS = {f.name for f in fields(JobSnapshot)} - {"state", "config", "version", "epochs"}


class AdoptedJob(_Job):
    """A live trainer that an earlier server of this store started (that server was killed or restarted): followed
    through its run folder, the progress file and the run's lock, and stopped through its stop-request file."""

    def __init__(self, record: RunRecord, progress: dict[str, Any], store: RunStore,
                 stop_grace_s: float = STOP_GRACE_S):
        snapshot = JobSnapshot(state="running", config=record.config, owner="", started_at=time.time(),
                               run_id=record.id)
        super().__init__(snapshot, store, stop_grace_s)
        self._path = record.path
        self._pid = record.data.get("pid")
        self._progress: dict[str, Any] | None = None
        self._apply(progress)

    def start(self) -> AdoptedJob:
        self._follower.start()
        return self

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
                    status, message = "failed", _ended_unexpectedly(None)
                self._update(state="finished", status=status, message=message, final=record.final,
                             epochs=tuple(record.epochs), batches=record.batches)
                return
            progress = _read_progress(self._path)
            if progress is not None:
                self._apply(progress)
            time.sleep(POLL_S)


def _live_dashboard_run(store: RunStore) -> tuple[RunRecord, dict[str, Any]] | None:
    """The newest run of ``store`` that a dashboard's trainer is still training (a CLI run has no progress file)."""
    if not store.root.is_dir():
        return None
    found = []
    for progress_file in store.root.glob(f"*/{PROGRESS_FILE}"):
        try:
            record = store.read(progress_file.parent.name)
        except RunError:
            continue
        progress = _read_progress(record.path)
        if record.status == "running" and progress is not None:
            found.append((record.data.get("created_at", ""), record, progress))
    if not found:
        return None
    _, record, progress = max(found, key=lambda item: item[0])
    return record, progress


class JobBusyError(RuntimeError):
    def __init__(self, snapshot: JobSnapshot):
        super().__init__(f"a {snapshot.config.model} run is already training ({snapshot.progress:.0%} done)")
        self.snapshot = snapshot


class JobManager:
    """At most one training job per server: a shared GPU or a 2-core CPU runs one training well, not two.

    On construction it adopts the run a dashboard trainer is still training in the store, if any (its server was
    killed or restarted), so that it shows as the running job and can be stopped.
    """

    def __init__(self, store: RunStore, data_root: str | Path | None = None, stop_grace_s: float = STOP_GRACE_S):
        self.store = store
        self.data_root = data_root
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._job: _Job | None = None
        live = _live_dashboard_run(store)
        if live is not None:
            self._job = AdoptedJob(*live, store, stop_grace_s).start()

    def start(self, config: TrainConfig, owner: str = "") -> TrainingJob:
        require_writable("Training")
        errors = config.validate()
        if errors:
            raise ValueError("; ".join(errors.values()))
        from digitlab.dashboard.studies import StudyBusyError, running_study  # deferred: studies imports this module

        if (study := running_study(self.store)) is not None:
            raise StudyBusyError(f"Study {study.spec.name} is running, and a study is this server's one job: Train "
                                 "is off until it ends. Stop it on the Study page, or wait for it.")
        with self._lock:
            if self._job is not None and self._job.running:
                raise JobBusyError(self._job.snapshot())
            self._job = TrainingJob(config, self.store, self.data_root, owner, self.stop_grace_s).start()
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
    def job(self) -> TrainingJob | AdoptedJob | None:
        """The running job, or the last one to finish."""
        return self._job


_managers: dict[Path, JobManager] = {}
_managers_lock = threading.Lock()
