"""The coordinator: every job of a server (training runs, studies and races) under one lock.

Every "is something running?" question and every start goes through it, so that a check and the start it allows are
one step: a Train click while a study is being created (its definition going to the database) is refused, not started
beside it. It has a capacity (how many trainers may train at once) and a queue of jobs waiting for one to end, and it
keeps trainers ready for the next start (warm trainers) whenever nothing runs.

One job at a time: a run, a study or a race (whose runs train together, the cores shared out between them). A shared
GPU or a 2-core CPU runs one experiment well, not two. A start while another job runs is refused with a BusyError
saying what runs and what to do.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from digitlab import study
from digitlab.config import TrainConfig
from digitlab.dashboard.access import read_only, writable
from digitlab.dashboard.jobs.follow import STOP_GRACE_S, AdoptedJob, Job, JobSnapshot, TrainingJob, live_dashboard_runs
from digitlab.dashboard.jobs.race_job import RaceJob
from digitlab.dashboard.jobs.study_job import StudyJob
from digitlab.dashboard.jobs.trainer import WarmTrainer, warm_trainer_enabled
from digitlab.device import cpu_threads
from digitlab.pause import pause_point
from digitlab.store import RunStore

# After a job, the next trainer starts this much later: its imports take a core for ~3 s, which the page showing the
# job's summary needs first.
REPLENISH_AFTER_S = 1.5
MAX_TRAINERS_ENV = "DIGITLAB_MAX_TRAINERS"
TRAINER_BYTES = 1 << 30  # what one trainer may take (torch and MNIST: about half of it), for the capacity


def machine_capacity() -> int:
    """How many trainers may train at once: DIGITLAB_MAX_TRAINERS, else one per GB of the machine's memory, at most
    a race's largest field (8) and at least 1. A race's runs beyond it wait for one to end."""
    override = os.environ.get(MAX_TRAINERS_ENV, "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"{MAX_TRAINERS_ENV} must be a whole number, got {override!r}") from None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a modest machine
        memory = 4 * TRAINER_BYTES
    return max(1, min(study.MAX_LANES, memory // TRAINER_BYTES))


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


class RaceBusyError(BusyError):
    """A race is running (or being created); ``race`` is its job."""

    def __init__(self, job: RaceJob, message: str):
        super().__init__(message)
        self.race = job


def _refusal(running: Job | StudyJob | RaceJob, starting: str) -> BusyError:
    """The BusyError for starting ``starting`` ("run", "study" or "race") while ``running`` runs."""
    if isinstance(running, StudyJob):
        name = running.spec.name
        if starting == "study":
            return StudyBusyError(running, f"Study {name} is running: one study at a time. Stop it, or wait for it.")
        return StudyBusyError(running, f"Study {name} is running, and a study is this server's one job: Train is "
                                       "off until it ends. Stop it on the Study page, or wait for it.")
    if isinstance(running, RaceJob):
        return RaceBusyError(running, f"Race {running.spec.name} is running, and a race is this server's one job: "
                                      "nothing else starts until its last run ends. Stop it on Train, or wait.")
    snapshot = running.snapshot()
    if starting == "run":
        return JobBusyError(snapshot)
    return JobBusyError(snapshot, "A run is training: one job at a time. Stop it on Train, or wait for it.")


class Coordinator:
    """Every job of one run store's server. On construction it adopts the runs that a dashboard's trainer is still
    training in the store (their server was killed or restarted), races' runs as their race, so that they show as
    running and can be stopped. Once warm_up() has been called it keeps trainers ready whenever nothing runs."""

    def __init__(self, store: RunStore, data_root: str | Path | None = None, stop_grace_s: float = STOP_GRACE_S,
                 capacity: int | None = None):
        self.store = store
        self.data_root = data_root
        self.stop_grace_s = stop_grace_s
        self.capacity = capacity or machine_capacity()
        self._lock = threading.Lock()
        # Admitted and not yet finished, in the order they were admitted: runs (a race's too) and studies, and a
        # study or race whose definition is being stored.
        self._active: list[Job | StudyJob | RaceJob] = []
        # Admitted, waiting for a trainer to be free: (the job, what starts it).
        self._queue: collections.deque[tuple[Job, Callable[[], object]]] = collections.deque()
        self._latest_run: Job | None = None
        self._latest_race: RaceJob | None = None
        self._latest_study: StudyJob | RaceJob | None = None
        self._warm: list[WarmTrainer] = []
        self._warm_wanted = 0
        self._storages: dict[str, object] = {}  # study storages by URL, opened once: opening one takes a while
        self._adopt()

    # --- what runs ----------------------------------------------------------------------------------------------

    @property
    def latest_run(self) -> Job | None:
        """The training run this server runs or ran last (started here or adopted)."""
        return self._latest_run

    @property
    def latest_race(self) -> RaceJob | None:
        return self._latest_race

    @property
    def latest(self) -> Job | RaceJob | None:
        """What Train shows: the latest run or race, whichever started last."""
        run, race = self._latest_run, self._latest_race
        if run is None or race is None:
            return run or race
        return race if race.started_at > run.snapshot().started_at else run

    @property
    def latest_study(self) -> StudyJob | RaceJob | None:
        """The study (a race is one) this server runs or ran last: what the Study page shows."""
        return self._latest_study

    def running_run(self) -> Job | None:
        run = self._latest_run
        return run if run is not None and run.running else None

    def running_race(self) -> RaceJob | None:
        race = self._latest_race
        return race if race is not None and race.running else None

    def running_study(self) -> StudyJob | None:
        with self._lock:
            return next((job for job in self._active if isinstance(job, StudyJob) and job.running), None)

    # --- starting -----------------------------------------------------------------------------------------------

    @writable("Training")
    def start_run(self, config: TrainConfig, owner: str = "") -> TrainingJob:
        """Train ``config`` in a ready trainer (or a new one). Refused in read-only mode (ReadOnlyError), for an
        invalid config (ValueError), and while another job runs (BusyError)."""
        errors = config.validate()
        if errors:
            raise ValueError("; ".join(errors.values()))
        with self._lock:
            self._refuse_if_busy("run")
            job = TrainingJob(config, self.store, owner, self.stop_grace_s)
            self._admit(job, lambda: job.start(self._take_trainer()))
            self._latest_run = job
            return job

    @writable("Starting a study")
    def start_study(self, spec: study.StudySpec, workers: int, storage: str | None = None) -> StudyJob:
        """Create or resume ``spec`` in the study storage and run it with ``workers`` workers, the first in a ready
        trainer. Refused in read-only mode, for a definition the storage refuses (StudyError), and while another job
        runs (BusyError). The study holds the server from the moment it is admitted, before its database I/O."""
        url = study.storage_url(storage, self.store.root)
        job = StudyJob(spec, url, min(workers, spec.total))
        self._store_definition(job, "study")
        with self._lock:
            self._active.remove(job)
            self._admit(job, lambda: job.start(self._take_trainer()))
            self._latest_study = job
        return job

    @writable("Starting a race")
    def start_race(self, spec: study.StudySpec, owner: str = "", storage: str | None = None) -> RaceJob:
        """Train the configurations of ``spec`` (study.define_race) that have no run yet, each in a trainer of its
        own, at the same time: the cores are shared out between them (threads per trainer = cores / runs, at least
        1), and runs beyond the capacity wait for one to end. Refused as start_study is."""
        url = study.storage_url(storage, self.store.root)
        race = RaceJob(spec, url, owner, self.stop_grace_s)
        found = self._store_definition(race, "race")
        waiting = study.waiting_configs(found, spec)
        if not waiting:
            with self._lock:
                self._active.remove(race)
            raise study.StudyError(f"race {spec.name!r} has ended: each of its configurations has a run. Compare "
                                   "them, or give a new race another name.")
        threads = max(1, cpu_threads() // min(len(waiting), self.capacity))
        with self._lock:
            self._active.remove(race)
            for config in waiting:
                lane = TrainingJob(config, self.store, owner, self.stop_grace_s, lane=(spec.name, url, threads))
                race.lanes.append(lane)
                lane.on_cancel = lambda lane=lane: self._cancel(lane)
                self._admit(lane, lambda lane=lane: lane.start(self._take_trainer()), race.lane_finished)
            self._latest_race = self._latest_study = race
        return race

    def _store_definition(self, job: StudyJob | RaceJob, starting: str):
        """Admit ``job`` (it holds the server from now on), then create or resume its study; the Optuna study. On a
        refusal the job is let go and the error raised."""
        with self._lock:
            self._refuse_if_busy(starting)
            self._active.append(job)
        try:
            pause_point("study.create")
            return study.create_or_resume(job.spec, self._storage(job.url))  # a refusal is said here
        except BaseException:
            with self._lock:
                self._active.remove(job)
            raise

    def _storage(self, url: str):
        """The study storage at ``url``, opened once."""
        if url not in self._storages:
            self._storages[url] = study.open_storage(url)
        return self._storages[url]

    def _refuse_if_busy(self, starting: str) -> None:
        """Raise the BusyError for ``starting`` if an admitted job runs or waits. Under the lock."""
        holding = [job for job in self._active if job.running] + [job for job, _ in self._queue]
        if holding:
            raise _refusal(self._race_of(holding[0]) or holding[0], starting)

    def _race_of(self, job) -> RaceJob | None:
        race = self._latest_race
        return race if race is not None and job in race.lanes else None

    def _admit(self, job: Job | StudyJob, start: Callable[[], object],
               then: Callable[[], None] | None = None) -> None:
        """Start ``job`` with ``start()`` if a trainer may train now, else queue it; either way it holds the server
        until it finishes, and ``then()`` is called after. Under the lock (or before other threads see the
        coordinator)."""
        def finished() -> None:
            self._finished(job)
            if then is not None:
                then()

        job.on_finished = finished
        if len(self._active) < self.capacity:
            self._active.append(job)
            start()
        else:
            self._queue.append((job, start))

    def _cancel(self, job: Job) -> bool:
        """Take ``job`` out of the queue before it starts; False if it is not waiting there."""
        with self._lock:
            for queued in self._queue:
                if queued[0] is job:
                    self._queue.remove(queued)
                    return True
        return False

    def _finished(self, job: Job | StudyJob) -> None:
        """A job's follower reports its end: the next queued job starts; once none runs, trainers are readied."""
        with self._lock:
            if job in self._active:
                self._active.remove(job)
            while self._queue and len(self._active) < self.capacity:
                queued, start = self._queue.popleft()
                self._active.append(queued)
                start()
            idle = not self._active and not self._queue
        if idle:
            timer = threading.Timer(REPLENISH_AFTER_S, self._replenish)
            timer.daemon = True
            timer.start()

    def _adopt(self) -> None:
        """Follow the runs a dashboard's trainer still trains in the store; a race's runs as their race."""
        races: dict[tuple[str, str], RaceJob] = {}
        for record, progress in live_dashboard_runs(self.store):
            job = AdoptedJob(record, progress, self.store, self.stop_grace_s)
            lane_of = progress.get("race")
            if lane_of is None:
                self._admit(job, job.start)
                self._latest_run = job
                continue
            key = (lane_of["name"], lane_of["url"])
            if key not in races:
                try:
                    _, spec = study.load_study(lane_of["name"], study.open_storage(lane_of["url"]))
                except study.StudyError:  # its storage is gone: follow the run on its own
                    self._admit(job, job.start)
                    continue
                races[key] = self._latest_race = self._latest_study = RaceJob(spec, lane_of["url"],
                                                                               stop_grace_s=self.stop_grace_s)
            races[key].lanes.append(job)
            self._admit(job, job.start, races[key].lane_finished)

    # --- warm trainers ------------------------------------------------------------------------------------------

    def warm_up(self, count: int = 1) -> None:
        """Keep ``count`` trainers ready from now on (at most the capacity): start them now, on a background thread,
        if fewer are and nothing runs; for a race (``count`` over 1), open the study storage too. Never in
        read-only mode, nor with DIGITLAB_WARM_TRAINER=0."""
        if read_only() or not warm_trainer_enabled():
            return
        self._warm_wanted = max(1, min(count, self.capacity))
        url = study.storage_url(None, self.store.root) if count > 1 else None
        if len(self.warm_trainers) >= self._warm_wanted and url in (None, *self._storages):
            return
        threading.Thread(target=self._replenish, args=(url,), name="digitlab-warm-up", daemon=True).start()

    @property
    def warm_trainers(self) -> list[WarmTrainer]:
        """The trainers that wait for their orders."""
        return [warm for warm in self._warm if warm.idle]

    @property
    def warm_trainer(self) -> WarmTrainer | None:
        """The first trainer that waits for an order, if one does."""
        return next(iter(self.warm_trainers), None)

    def close(self) -> None:
        """End the idle trainers and keep none ready from now on (until warm_up() is called again)."""
        with self._lock:
            self._warm_wanted = 0
            warm, self._warm = self._warm, []
        for trainer in warm:
            if trainer.idle:
                trainer.close()

    def _take_trainer(self) -> WarmTrainer:
        """A ready trainer, or a new one. Under the lock."""
        while self._warm:
            warm = self._warm.pop(0)
            if warm.serves(self.data_root):
                return warm
            warm.close()
        return WarmTrainer(self.store, self.data_root)

    def _replenish(self, storage_url: str | None = None) -> None:
        """Start trainers until as many as wanted are ready, while nothing runs, and open the study storage at
        ``storage_url`` if given. Never raises: it runs on a timer or the warm-up thread."""
        if storage_url is not None:
            with contextlib.suppress(Exception):  # a storage it cannot open now: the race's start says why
                self._storage(storage_url)
        try:
            with self._lock:
                self._warm = self.warm_trainers
                if any(job.running for job in self._active) or self._queue or read_only():
                    return
                while len(self._warm) < self._warm_wanted:  # a race's: MNIST scaled ahead (see trainer_main)
                    self._warm.append(WarmTrainer(self.store, self.data_root, scaled=self._warm_wanted > 1))
        except Exception:  # none ready: the next start starts one, and says what went wrong then
            return

    @classmethod
    def for_store(cls, store: RunStore) -> Coordinator:
        """The process's one Coordinator over ``store``: a module global rather than a Streamlit cache, so that the
        menu's "Clear caches" cannot drop a running job, nor the trainers kept ready."""
        key = store.root.resolve()
        with _coordinators_lock:
            if key not in _coordinators:
                _coordinators[key] = cls(store)
            return _coordinators[key]


_coordinators: dict[Path, Coordinator] = {}
_coordinators_lock = threading.Lock()
