"""The coordinator: every job of a server (training runs and studies) under one lock.

Every "is something running?" question and every start goes through it, so that a check and the start it allows are
one step: a Train click while a study is being created (its definition going to the database) is refused, not started
beside it. It has a capacity (how many trainers may train at once) and a queue of jobs waiting for one to end, and it
keeps a trainer ready for the next start (the warm trainer) whenever nothing runs.

One job at a time: a shared GPU or a 2-core CPU runs one training well, not two. A start while another job runs is
refused with a BusyError saying what runs and what to do.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path

from digitlab import study
from digitlab.config import TrainConfig
from digitlab.dashboard.access import read_only, writable
from digitlab.dashboard.jobs.follow import STOP_GRACE_S, AdoptedJob, Job, JobSnapshot, TrainingJob, live_dashboard_runs
from digitlab.dashboard.jobs.study_job import StudyJob
from digitlab.dashboard.jobs.trainer import WarmTrainer, warm_trainer_enabled
from digitlab.pause import pause_point
from digitlab.store import RunStore

# After a job, the next trainer starts this much later: its imports take a core for ~3 s, which the page showing the
# job's summary needs first.
REPLENISH_AFTER_S = 1.5
CAPACITY = 1  # trainers training at once


class BusyError(RuntimeError):
    """A start refused because another job runs; the message says which and what to do."""


class JobBusyError(BusyError):
    """A training run is running; ``snapshot`` says whose and how far it is."""

    def __init__(self, snapshot: JobSnapshot, message: str | None = None):
        super().__init__(message or f"a {snapshot.config.model} run is already training ({snapshot.progress:.0%} done)")
        self.snapshot = snapshot


class StudyBusyError(BusyError):
    """A study is running (or being created); ``study`` is its job."""

    def __init__(self, job: StudyJob, message: str):
        super().__init__(message)
        self.study = job


def _refusal(running: Job | StudyJob, starting: str) -> BusyError:
    """The BusyError for starting ``starting`` ("run" or "study") while ``running`` runs."""
    if isinstance(running, StudyJob):
        name = running.spec.name
        if starting == "run":
            return StudyBusyError(running, f"Study {name} is running, and a study is this server's one job: Train is "
                                           "off until it ends. Stop it on the Study page, or wait for it.")
        return StudyBusyError(running, f"Study {name} is running: one study at a time. Stop it, or wait for it.")
    snapshot = running.snapshot()
    if starting == "run":
        return JobBusyError(snapshot)
    return JobBusyError(snapshot, "A run is training: one job at a time. Stop it on Train, or wait for it.")


class Coordinator:
    """Every job of one run store's server. On construction it adopts the runs that a dashboard's trainer is still
    training in the store (their server was killed or restarted), so that they show as running and can be stopped.
    Once warm_up() has been called it keeps a WarmTrainer ready whenever nothing runs."""

    def __init__(self, store: RunStore, data_root: str | Path | None = None, stop_grace_s: float = STOP_GRACE_S,
                 capacity: int = CAPACITY):
        self.store = store
        self.data_root = data_root
        self.stop_grace_s = stop_grace_s
        self.capacity = capacity
        self._lock = threading.Lock()
        self._active: list[Job | StudyJob] = []  # admitted and not yet finished, in the order they were admitted
        # Admitted, waiting for a trainer to be free: (the job, what starts it).
        self._queue: collections.deque[tuple[Job | StudyJob, Callable[[], object]]] = collections.deque()
        self._latest_run: Job | None = None
        self._latest_study: StudyJob | None = None
        self._warm: WarmTrainer | None = None
        self._keep_warm = False
        for record, progress in live_dashboard_runs(store):
            job = AdoptedJob(record, progress, store, stop_grace_s)
            self._admit(job, job.start)
            self._latest_run = job

    # --- what runs ----------------------------------------------------------------------------------------------

    @property
    def latest_run(self) -> Job | None:
        """The training run this server runs or ran last (started here or adopted): what Train shows."""
        return self._latest_run

    @property
    def latest_study(self) -> StudyJob | None:
        """The study this server runs or ran last: what the Study page shows."""
        return self._latest_study

    def running_run(self) -> Job | None:
        run = self._latest_run
        return run if run is not None and run.running else None

    def running_study(self) -> StudyJob | None:
        with self._lock:
            return next((job for job in self._active if isinstance(job, StudyJob) and job.running), None)

    # --- starting -----------------------------------------------------------------------------------------------

    @writable("Training")
    def start_run(self, config: TrainConfig, owner: str = "") -> TrainingJob:
        """Train ``config`` in the ready trainer (or a new one). Refused in read-only mode (ReadOnlyError), for an
        invalid config (ValueError), and while another job runs (BusyError)."""
        errors = config.validate()
        if errors:
            raise ValueError("; ".join(errors.values()))
        with self._lock:
            self._refuse_if_busy("run")
            job = TrainingJob(config, self.store, self._take_trainer(), owner, self.stop_grace_s)
            self._admit(job, job.start)
            self._latest_run = job
            return job

    @writable("Starting a study")
    def start_study(self, spec: study.StudySpec, workers: int, storage: str | None = None) -> StudyJob:
        """Create or resume ``spec`` in the study storage and run it with ``workers`` workers, the first in the ready
        trainer. Refused in read-only mode, for a definition the storage refuses (StudyError), and while another job
        runs (BusyError). The study holds the server from the moment it is admitted, before its database I/O."""
        url = study.storage_url(storage, self.store.root)
        job = StudyJob(spec, url, min(workers, spec.total))
        with self._lock:
            self._refuse_if_busy("study")
            self._active.append(job)
        try:
            pause_point("study.create")
            study.create_or_resume(spec, study.open_storage(url))  # a refused definition is said here, not in a log
        except BaseException:
            with self._lock:
                self._active.remove(job)
            raise
        with self._lock:
            self._active.remove(job)
            self._admit(job, lambda: job.start(self._take_trainer()))
            self._latest_study = job
        return job

    def _refuse_if_busy(self, starting: str) -> None:
        """Raise the BusyError for ``starting`` if an admitted job runs or waits. Under the lock."""
        holding = [job for job in self._active if job.running] + [job for job, _ in self._queue]
        if holding:
            raise _refusal(holding[0], starting)

    def _admit(self, job: Job | StudyJob, start: Callable[[], object]) -> None:
        """Start ``job`` with ``start()`` if a trainer may train now, else queue it; either way it holds the server
        until it finishes. Under the lock (or before any other thread can see the coordinator)."""
        job.on_finished = lambda: self._finished(job)
        if len(self._active) < self.capacity:
            self._active.append(job)
            start()
        else:
            self._queue.append((job, start))

    def _finished(self, job: Job | StudyJob) -> None:
        """A job's follower reports its end: the next queued job starts; once none runs, a trainer is readied."""
        with self._lock:
            if job in self._active:
                self._active.remove(job)
            while self._queue and len(self._active) < self.capacity:
                queued, start = self._queue.popleft()
                self._active.append(queued)
                start()
            idle = not self._active
        if idle:
            timer = threading.Timer(REPLENISH_AFTER_S, self._replenish)
            timer.daemon = True
            timer.start()

    # --- the warm trainer ---------------------------------------------------------------------------------------

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

    def close(self) -> None:
        """End the idle trainer and keep none ready from now on (until warm_up() is called again)."""
        with self._lock:
            self._keep_warm = False
            warm, self._warm = self._warm, None
        if warm is not None and warm.idle:
            warm.close()

    def _take_trainer(self) -> WarmTrainer:
        """The ready trainer, or a new one. Under the lock."""
        warm, self._warm = self._warm, None
        if warm is not None and warm.serves(self.data_root):
            return warm
        if warm is not None:
            warm.close()
        return WarmTrainer(self.store, self.data_root)

    def _replenish(self) -> None:
        """Start the next trainer if one is to be kept ready and none is, while nothing runs. Never raises: it runs
        on a timer or the warm-up thread."""
        try:
            with self._lock:
                busy = any(job.running for job in self._active) or bool(self._queue)
                if not self._keep_warm or busy or self.warm_trainer is not None or read_only():
                    return
                self._warm = WarmTrainer(self.store, self.data_root)
        except Exception:  # no trainer ready: the next Train starts one, and says what went wrong then
            return

    @classmethod
    def for_store(cls, store: RunStore) -> Coordinator:
        """The process's one Coordinator over ``store``: a module global rather than a Streamlit cache, so that the
        menu's "Clear caches" cannot drop a running job, nor the trainer kept ready."""
        key = store.root.resolve()
        with _coordinators_lock:
            if key not in _coordinators:
                _coordinators[key] = cls(store)
            return _coordinators[key]


_coordinators: dict[Path, Coordinator] = {}
_coordinators_lock = threading.Lock()
