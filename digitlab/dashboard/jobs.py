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

The trainer is started before anyone presses Train (WarmTrainer): a spawned process that imports torch, sets its
threads and reads MNIST into tensors, then waits on a pipe for one order, a run or a study. Pressing Train hands
it the config at once, so the wait is the training, not the 5-6 s of starting a process. Each trainer carries out
one order and ends; JobManager starts the next after the run, so nothing of one run leaks into the next. An idle
trainer ends as soon as its server does; one at work outlives it, as above.
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
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from digitlab.config import TrainConfig
from digitlab.dashboard.access import read_only, require_writable
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
# After a job, the next trainer starts this much later: its imports take a core for ~3 s, which the page showing the
# run's summary needs first.
REPLENISH_AFTER_S = 1.5
WARM_ENV = "DIGITLAB_WARM_TRAINER"  # "0": start no trainer ahead of a run (~0.5 GB of its own while it waits)
_SPAWN = multiprocessing.get_context("spawn")  # never fork a process that already runs torch's thread pools


def warm_trainer_enabled() -> bool:
    return os.environ.get(WARM_ENV, "1").strip() != "0"


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
        self.sent_at = 0.0  # the first batch goes at once, so the chart shows it; later ones in bundles
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


def _warm_child(store_root: str, data_root: str, orders, events, stop_event, ready) -> None:
    """The trainer's process: get ready (torch imported, its threads set, MNIST read into tensors),
    then carry out one order from ``orders``: ("train", config_json, owner, started_at) or ("study", spec, url,
    workers). An idle trainer ends when its server does: the pipe's other end closes, or the parent's sentinel
    fires. Messages to the parent are (kind, payload) on ``events``."""
    from multiprocessing.connection import wait

    from digitlab.data import load_mnist
    from digitlab.device import pick_device, prepare
    from digitlab.recorder import record_training  # noqa: F401 (imports the engine and torch now, not at the click)

    data = load_error = None
    try:
        prepare(pick_device("auto"))
        pause_point("train.before_data")
        # As uint8 (55 MB). Scaling it to float32 now would save ~0.1 s of the run and hold 220 MB more all day.
        data = load_mnist(data_root)
    except Exception as err:  # said when an order comes: a missing MNIST fails that run, with the reason
        load_error = err
    ready.set()
    parent = multiprocessing.parent_process()
    wait([orders, *([parent.sentinel] if parent is not None else [])])
    try:
        order = orders.recv() if orders.poll() else None
    except (EOFError, OSError):  # the server closed its end: it is gone
        order = None
    if order is None:
        return
    kind, *args = order
    if kind == "train":
        _train(data, load_error, store_root, events, stop_event, *args)
    else:
        _run_study(data, load_error, store_root, stop_event, *args)


def _train(data, load_error: Exception | None, store_root: str, events, stop_event, config_json: str, owner: str,
           started_at: float) -> None:
    """Train one run, record it, and report to the parent."""
    from digitlab.engine import train
    from digitlab.recorder import record_training

    config = TrainConfig.from_json(config_json)
    stop = _StopSignal(stop_event)
    reporter = _ChildReporter(events, stop, owner, started_at)
    try:
        if load_error is not None:
            raise load_error
        reporter.send("message", "Starting...")
        record = record_training(RunStore(store_root), config, train(config, data, stop), reporter)
        reporter.send("finished", {"status": record.status, "message": record.message, "final": record.final})
    except Exception as err:  # the run store already marked the run failed, if it had begun
        reporter.send("finished", {"status": "failed", "message": f"Training failed: {type(err).__name__}: {err}"})
    finally:
        reporter.clean_up()


def _run_study(data, load_error: Exception | None, store_root: str, stop_event, spec: dict[str, Any], url: str,
               workers: int) -> None:
    """Run a study as its first worker; run_study starts the other workers."""
    from digitlab import study

    if load_error is not None:
        raise load_error
    # Its server ending (it terminates daemonic children) stops the study after the current batches, as Stop does.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_event.set())
    multiprocessing.current_process().daemon = False  # a daemonic process may not start the other workers
    study.run_study(study.StudySpec.from_dict(spec), data, store_root, url, workers=workers, stop=stop_event)


class WarmTrainer:
    """A trainer process started ahead of its order (see _warm_child), with the queue it reports on and the event
    that stops it. ``ready`` is set once it has loaded MNIST (or failed to)."""

    def __init__(self, store: RunStore, data_root: str | Path | None = None):
        self.stop = _SPAWN.Event()
        self.events = _SPAWN.Queue()
        self.ready = _SPAWN.Event()
        # Paths are resolved here, so the child reads the same folders whatever its environment.
        self.store_root = str(store.root.resolve())
        self.data_root = str(resolve_data_root(data_root).resolve())
        orders, self._orders = _SPAWN.Pipe(duplex=False)
        self.process = _SPAWN.Process(target=_warm_child, name="digitlab-trainer", daemon=True,
                                      args=(self.store_root, self.data_root, orders, self.events, self.stop,
                                            self.ready))
        self.process.start()
        orders.close()  # the child's end: with only the server's end left here, the child sees EOF when it dies
        self.ordered = False

    @property
    def idle(self) -> bool:
        return not self.ordered and self.process.is_alive()

    def hand(self, order: tuple) -> None:
        """Send the one order; a trainer that died meanwhile is found dead by whoever follows it."""
        self.ordered = True
        try:
            self._orders.send(order)
        except OSError:
            pass

    def close(self) -> None:
        """End an idle trainer: it sees its pipe close and returns, or is killed if it is still getting ready."""
        self.ordered = True
        self._orders.close()
        self.process.join(KILL_AFTER_S if self.ready.is_set() else 0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


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
        self._first_batches = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="digitlab-training-follower", daemon=True)
        self.on_finished: Callable[[], None] | None = None  # called by the follower once the job has finished

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
    """A run trained by a WarmTrainer (one started now, if none is given), followed through its queue."""

    def __init__(self, config: TrainConfig, store: RunStore, data_root: str | Path | None = None, owner: str = "",
                 stop_grace_s: float = STOP_GRACE_S, trainer: WarmTrainer | None = None):
        started_at = time.time()
        trainer = trainer or WarmTrainer(store, data_root)
        message = "Starting..." if trainer.ready.is_set() else "Loading MNIST..."
        super().__init__(JobSnapshot(state="running", config=config, owner=owner, started_at=started_at,
                                     message=message), store, stop_grace_s)
        self._trainer = trainer
        self._process, self._stop, self._events = self._trainer.process, self._trainer.stop, self._trainer.events
        self._order = ("train", config.to_json(), owner, started_at)
        self._trace = BatchTrace()
        self._rate = _Rate()
        self._trace_published_at = 0.0

    def start(self) -> TrainingJob:
        self._trainer.hand(self._order)
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
    killed or restarted), so that it shows as the running job and can be stopped. Once warm_up() has been called
    it keeps a WarmTrainer ready whenever nothing runs: Train and a study's first worker take it.
    """

    def __init__(self, store: RunStore, data_root: str | Path | None = None, stop_grace_s: float = STOP_GRACE_S):
        self.store = store
        self.data_root = data_root
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._warm: WarmTrainer | None = None
        self._keep_warm = False
        live = _live_dashboard_run(store)
        if live is not None:
            self._job = self._follow(AdoptedJob(*live, store, stop_grace_s)).start()

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
            job = TrainingJob(config, self.store, self.data_root, owner, self.stop_grace_s, self._take_trainer())
            self._job = self._follow(job).start()
            return job

    def warm_up(self) -> None:
        """Keep a trainer ready from now on: start one now, on a background thread, if none is and nothing runs.
        Never in read-only mode, nor with DIGITLAB_WARM_TRAINER=0."""
        if read_only() or not warm_trainer_enabled():
            return
        self._keep_warm = True
        if self.warm_trainer is not None:
            return
        threading.Thread(target=self._replenish, name="digitlab-warm-up", daemon=True).start()

    @property
    def warm_trainer(self) -> WarmTrainer | None:
        """The trainer that waits for the next order, if one does."""
        warm = self._warm
        return warm if warm is not None and warm.idle else None

    def take_trainer(self) -> WarmTrainer:
        """The ready trainer for an order of the caller's (a study), or a new one; the next is started once the
        caller's work has ended and warm_up() is called again."""
        with self._lock:
            return self._take_trainer()

    def close(self) -> None:
        """End the idle trainer and keep none ready from now on (until warm_up() is called again)."""
        with self._lock:
            self._keep_warm = False
            warm, self._warm = self._warm, None
        if warm is not None and warm.idle:
            warm.close()

    def _take_trainer(self) -> WarmTrainer:
        warm, self._warm = self._warm, None
        if warm is not None and warm.idle and warm.data_root == str(resolve_data_root(self.data_root).resolve()):
            return warm
        if warm is not None:
            warm.close()
        return WarmTrainer(self.store, self.data_root)

    def _follow(self, job: _Job) -> _Job:
        def replenish_soon() -> None:
            timer = threading.Timer(REPLENISH_AFTER_S, self._replenish)
            timer.daemon = True
            timer.start()

        job.on_finished = replenish_soon
        return job

    def _replenish(self) -> None:
        """Start the next trainer if one is to be kept ready and none is, while nothing runs. Never raises: it runs
        on the follower thread of a job that has just finished."""
        from digitlab.dashboard.studies import running_study  # deferred: studies imports this module

        try:
            with self._lock:
                busy = (self._job is not None and self._job.running) or running_study(self.store) is not None
                if not self._keep_warm or busy or self.warm_trainer is not None or read_only():
                    return
                self._warm = WarmTrainer(self.store, self.data_root)
        except Exception:  # no trainer ready: the next Train starts one, and says what went wrong then
            return

    @classmethod
    def for_store(cls, store: RunStore) -> JobManager:
        """The process's one JobManager over ``store``: a module global rather than a Streamlit cache, so that the
        menu's "Clear caches" cannot drop the running job, nor the trainer kept ready."""
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
