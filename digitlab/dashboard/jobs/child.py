"""What runs inside a trainer process: getting ready, then carrying out one order (a run or a study) and reporting.

The child writes the run store itself (the same RunRecorder as the CLI) and sends engine events, without the model,
to its server over a queue: ``(kind, payload)`` messages, kind one of start, batches, epoch, message, finished. It
also keeps a progress file in its run folder and obeys a stop-request file there, so that a server restarted while
it trains can show it and stop it (digitlab.dashboard.jobs.follow.AdoptedJob).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from digitlab.config import TrainConfig
from digitlab.pause import pause_point
from digitlab.recorder import epoch_record
from digitlab.files import atomic_write
from digitlab.store import RunStore

RATE_WINDOW = 30  # batches over which images/s is measured: recent speed, not the average since the start
SEND_EVERY_S = 0.1  # batch events go in bundles: one queue message per batch costs more than a step
PROGRESS_EVERY_S = 0.5  # the progress file is rewritten this often (downsampling + JSON: ~1% of a core)
STOP_CHECK_S = 0.1  # the stop-request file is looked for at most this often (the engine asks every batch)
PROGRESS_FILE = ".job.json"
STOP_FILE = ".stop"


class Rate:
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


class StopSignal:
    """What the child's engine checks before every batch: the server's event, or the stop-request file that a
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


class Reporter:
    """The child's side of a run: engine events to the server's queue (batches in bundles), and the same progress,
    as JobSnapshot fields, to the run's progress file for a server that adopts the run later."""

    def __init__(self, events, stop: StopSignal, owner: str, started_at: float, race: dict[str, str] | None = None):
        self.events = events
        self.stop = stop
        self.server_pid = os.getppid()
        # race: {"name", "url"} of the race this run is a lane of, for a server that adopts the run later
        self.progress: dict[str, Any] = {"owner": owner, "started_at": started_at, "epochs": [], "race": race}
        self.pending: list = []
        self.rate = Rate()
        self.sent_at = 0.0  # the first batch goes at once, so the chart shows it; later ones in bundles
        self.written_at = 0.0
        self.path: Path | None = None
        self.run_id: str | None = None

    def send(self, kind: str, payload: Any) -> None:
        # Once the server is gone nobody reads the queue: a restarted one reads the progress file instead.
        if os.getppid() == self.server_pid:
            self.events.put((kind, payload))

    def __call__(self, recorder, event) -> None:
        from digitlab.engine import BatchEnd, EpochEnd, HeldOutScore, RunEnd, RunStart

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
                     "train_size": event.train_size, "held_out_split": event.held_out_split,
                     "held_out_size": event.held_out_size}
            # The config too: a race's lane learns which of the race's configurations it trains only here.
            self.send("start", {**start, "config": recorder.config.to_dict()})
            self.progress.update(epoch=1, **start)
            self.path, self.run_id = recorder.path, recorder.run_id
            self.stop.watch(recorder.path / STOP_FILE)
        elif isinstance(event, HeldOutScore):
            self.send("held_out", event)
        elif isinstance(event, EpochEnd):
            self.send("epoch", event)
            self.progress["epochs"].append(epoch_record(event))
        elif isinstance(event, RunEnd):
            self.send("message", event.message)
        if self.path is not None and (not isinstance(event, BatchEnd)
                                      or time.monotonic() - self.written_at >= PROGRESS_EVERY_S):
            self.progress.update(batches=recorder.trace.to_dict(), held_out=recorder.held_out.to_dict())
            # Not synced: the progress file only matters while this run lives.
            atomic_write(self.path / PROGRESS_FILE, lambda tmp: tmp.write_text(json.dumps(self.progress)), sync=False)
            self.written_at = time.monotonic()
        if isinstance(event, EpochEnd):
            pause_point("train.after_epoch")

    def clean_up(self) -> None:
        if self.path is not None:
            for name in (PROGRESS_FILE, STOP_FILE):
                (self.path / name).unlink(missing_ok=True)


def read_progress(run_path: Path) -> dict[str, Any] | None:
    """A run's progress file, as its trainer last wrote it; None if there is none (or it cannot be read)."""
    try:
        progress = json.loads((run_path / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) else None


def trainer_main(store_root: str, data_root: str, orders, events, stop_event, ready, scaled: bool = False) -> None:
    """The trainer process: get ready (torch imported, its threads set, MNIST read into tensors), then carry out one
    order from ``orders``: ("train", config_json, owner, started_at), ("study", spec, url, workers) or ("lane",
    race, url, threads, owner, started_at). An idle trainer ends when its server does: the pipe's other end closes,
    or the server's sentinel fires. ``scaled``: scale MNIST for the device now (a race's trainer: its runs all start
    at the click, on shared cores), not at the order."""
    from multiprocessing.connection import wait

    from digitlab.data import load_mnist
    from digitlab.device import pick_device, prepare
    # Imported now, not at the click: the engine with torch, and a race's study with Optuna and SQLAlchemy.
    from digitlab import study  # noqa: F401
    from digitlab.recorder import record_training  # noqa: F401

    data = load_error = None
    try:
        prepare(pick_device("auto"))
        pause_point("train.before_data")
        # As uint8 (55 MB). Scaling it to float32 now saves ~0.1 s of a run and holds 220 MB more while it waits.
        data = load_mnist(data_root)
        if scaled:
            from digitlab.data import to_device

            to_device(data, pick_device("auto"))  # kept in data's cache, which the run's own call finds
    except Exception as err:  # said when an order comes: a missing MNIST fails that order, with the reason
        load_error = err
    storage = _default_storage(store_root)
    ready.set()
    server = multiprocessing.parent_process()
    wait([orders, *([server.sentinel] if server is not None else [])])
    try:
        order = orders.recv() if orders.poll() else None
    except (EOFError, OSError):  # the server closed its end: it is gone
        order = None
    if order is None:
        return
    kind, *args = order
    if kind == "lane":
        run_lane(data, load_error, store_root, events, stop_event, *args, ready_storage=storage)
    else:
        {"train": train_run, "study": run_study}[kind](data, load_error, store_root, events, stop_event, *args)


def _default_storage(store_root: str) -> tuple[str, Any] | None:
    """(URL, the study storage) this server's races use unless told otherwise, opened ahead of an order: with four
    trainers starting at once, opening it at the click took a large share of the wait for the first batches. None
    if it cannot be opened now (the order opens its own, and says why if it fails)."""
    from digitlab import study

    try:
        url = study.storage_url(None, store_root)
        return url, study.open_storage(url)
    except Exception:
        return None


def train_run(data, load_error: Exception | None, store_root: str, events, stop_event, config_json: str, owner: str,
              started_at: float) -> None:
    """Train one run, record it, and report to the server."""
    from digitlab.engine import train
    from digitlab.recorder import record_training

    config = TrainConfig.from_json(config_json)
    reporter = Reporter(events, StopSignal(stop_event), owner, started_at)
    try:
        if load_error is not None:
            raise load_error
        reporter.send("message", "Starting...")
        record = record_training(RunStore(store_root), config, train(config, data, reporter.stop), reporter)
        reporter.send("finished", {"status": record.status, "message": record.message, "final": record.final})
    except Exception as err:  # the run store already marked the run failed, if it had begun
        reporter.send("finished", {"status": "failed", "message": failure_message("Training", err)})
    finally:
        reporter.clean_up()


def failure_message(what: str, err: BaseException) -> str:
    """"Training failed: DataNotFoundError: ..." — what the pages show of an order that raised."""
    return f"{what} failed: {type(err).__name__}: {err}"


def run_study(data, load_error: Exception | None, store_root: str, events, stop_event, spec: dict[str, Any], url: str,
              workers: int) -> None:
    """Run a study as its first worker (study.run_study starts the others), then say how it ended."""
    from digitlab import study

    # Its server ending (it terminates daemonic children) stops the study after the current batches, as Stop does.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_event.set())
    multiprocessing.current_process().daemon = False  # a daemonic process may not start the other workers
    try:
        if load_error is not None:
            raise load_error
        study.run_study(study.StudySpec.from_dict(spec), data, store_root, url, workers=workers, stop=stop_event)
    except Exception as err:
        events.put(("finished", {"status": "failed", "message": failure_message("The study", err)}))
        raise
    events.put(("finished", {"status": "stopped" if stop_event.is_set() else "completed", "message": ""}))


def run_lane(data, load_error: Exception | None, store_root: str, events, stop_event, race: str, url: str,
             threads: int, owner: str, started_at: float, ready_storage: tuple[str, Any] | None = None) -> None:
    """Train one lane of a race: the next configuration of its study that no lane has taken, on ``threads``
    threads, recorded and reported as a run is. ``ready_storage``: (URL, storage) opened ahead, used if it is the
    race's."""
    from digitlab import study

    os.environ["DIGITLAB_THREADS"] = str(threads)  # the engine sets torch's threads from it at the run's start
    reporter = Reporter(events, StopSignal(stop_event), owner, started_at, race={"name": race, "url": url})
    store = RunStore(store_root)
    try:
        if load_error is not None:
            raise load_error
        reporter.send("message", "Starting...")
        storage = ready_storage[1] if ready_storage and ready_storage[0] == url else study.open_storage(url)
        study.work(race, storage, data, store, reporter.stop, max_trials=1, on_event=reporter)
        if reporter.run_id is None:
            reporter.send("finished", {"status": "stopped" if reporter.stop.is_set() else "failed", "message": (
                f"No configuration of race {race} was left for this run to train: the others have taken them all."
                if not reporter.stop.is_set() else "Stopped before it began training: no run was kept.")})
            return
        record = store.read(reporter.run_id)
        reporter.send("finished", {"status": record.status, "message": record.message, "final": record.final})
    except Exception as err:  # the run store already marked the run failed, if it had begun
        reporter.send("finished", {"status": "failed", "message": failure_message("Training", err)})
    finally:
        reporter.clean_up()
