"""A study's trials: the objective that trains one trial as a run of the run store, and ``work``, a worker's loop.
A search ranks trials by validation accuracy, never test accuracy. A trial's objective value is its last epoch's
validation accuracy, or its test accuracy in a repeat or grid without a validation split (nothing is chosen by it)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import replace

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from digitlab.data import MNIST
from digitlab.engine import EpochEnd, RunEnd, RunStart, train
from digitlab.recorder import record_training
from digitlab.store import RunStore
from digitlab.study.attempts import first_attempts, spares
from digitlab.study.race import run_name
from digitlab.study.spec import StudySpec
from digitlab.study.storage import load_study

RESULT_ATTRS = ("run_id", "status", "seed", "param_count", "epochs", "val_acc", "test_acc", "test_loss", "train_s",
                "error")  # the user attributes the objective records on its trial; the summary reads them


class _Spare(Exception):
    """A trial taken after the study had all its trials (a race at a grid's end): it trains nothing."""


class _TrialFailed(Exception):
    """Training raised or diverged: the trial fails, the worker goes on with the next."""


class _Stopped(Exception):
    """Stop was requested: the trial's run is kept as stopped, the trial failed, the worker ends."""


class _Either:
    """Set when either event is: the study's Stop or this trial's pruning (engine.train checks it every batch)."""

    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class _Objective:
    """Trains the one trial Optuna hands it (work makes one per trial) and keeps, for work to ask after, the trial's
    id in ``storage`` (the storage work was given) and what it raised."""

    def __init__(self, spec: StudySpec, data: MNIST, store: RunStore, stop, storage: RDBStorage, study_id: int,
                 on_event: Callable | None = None):
        self.spec, self.data, self.store, self.stop, self.on_event = spec, data, store, stop, on_event
        self.storage, self.study_id = storage, study_id
        self.trial_id: int | None = None  # once Optuna has handed it its trial
        self.error: Exception | None = None  # what it raised, if it raised

    def __call__(self, trial: optuna.Trial) -> float:
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        # Optuna's heartbeat thread records its first beat concurrently with this call. A worker killed before it
        # has would leave a trial that fail_stale_trials never sees (no beat, so never stale): stuck running.
        # Beat once here, before any work, so that a trial with a run always has a heartbeat to go stale.
        if self.storage.get_heartbeat_interval() is not None:
            self.storage.record_heartbeat(self.trial_id)
        try:
            return self._train(trial)
        except Exception as err:
            self.error = err
            raise

    def ended_elsewhere(self, err: ValueError) -> bool:
        """Whether ``err`` is optimize refusing to record the end of this objective's trial because another worker
        has ended it (its heartbeats looked stale to that one, which re-queued it): the trial has ended in the
        storage, and ``err`` is not the objective's own."""
        return (self.trial_id is not None and err is not self.error
                and self.storage.get_trial(self.trial_id).state.is_finished())

    def _train(self, trial: optuna.Trial) -> float:
        if trial.number in spares(self.spec, trial.study.get_trials(deepcopy=False)):
            trial.study.stop()
            raise _Spare
        inherited = trial.user_attrs
        for key in RESULT_ATTRS:  # a retry starts with its failed attempt's user attributes: not this attempt's
            if inherited.get(key) is not None:  # a write each: a fresh trial, the usual case, needs none
                trial.set_user_attr(key, None)
        params = self.spec.suggest(trial)
        config = self.spec.config_for(params)
        config = config.replace(name=run_name(self.spec, config, trial.number))
        pruned = threading.Event()
        # Written once the run's first event after its start has been shown (on_event): each is a transaction on the
        # study's database, which a race's trainers, all starting at once, take turns at.
        unwritten = {"seed": config.seed}

        def write_unwritten() -> None:
            for key, value in unwritten.items():
                trial.set_user_attr(key, value)
            unwritten.clear()

        def on_event(recorder, event) -> None:
            if self.on_event is not None:
                self.on_event(recorder, event)
            if isinstance(event, RunStart):
                unwritten.update(run_id=recorder.run_id, param_count=event.param_count)
                return
            write_unwritten()
            if isinstance(event, EpochEnd):
                trial.set_user_attr("epochs", event.epoch)
                trial.set_user_attr("val_acc", event.val_acc)
                trial.set_user_attr("test_acc", event.test_acc)
                if self.spec.prune and event.val_acc is not None:
                    trial.report(event.val_acc, event.epoch)
                    if event.epoch < event.epochs and trial.should_prune():
                        pruned.set()

        def events():
            for event in train(config, self.data, _Either(self.stop, pruned)):
                if isinstance(event, RunEnd) and event.status == "stopped" and pruned.is_set():
                    event = replace(event, status="pruned", message=(
                        f"Pruned after epoch {event.epochs_done}: its validation accuracy was below the median of "
                        "earlier trials at that epoch."))
                yield event

        try:
            record = record_training(self.store, config, events(), on_event,
                                     study={"name": self.spec.name, "trial": trial.number})
        except Exception as err:
            write_unwritten()
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise _TrialFailed(str(err)) from err
        write_unwritten()  # a run stopped before its first batch
        final = record.final
        trial.set_user_attr("status", record.status)
        for key in ("test_acc", "test_loss", "train_s"):
            if key in final:
                trial.set_user_attr(key, final[key])
        if record.status == "pruned":
            raise optuna.TrialPruned(record.message)
        if record.status == "stopped":
            raise _Stopped
        if record.status != "completed":
            raise _TrialFailed(record.message)
        last = record.epochs[-1]
        return last["val_acc"] if last.get("val_acc") is not None else last["test_acc"]


def unfinished(study: optuna.Study) -> tuple[int, int]:
    """(waiting, running) trials."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    return (sum(t.state == TrialState.WAITING for t in trials), sum(t.state == TrialState.RUNNING for t in trials))


def _has_work(spec: StudySpec, study: optuna.Study) -> bool:
    waiting, _ = unfinished(study)
    if waiting or not spec.search:
        return bool(waiting)
    return len(first_attempts(study.get_trials(deepcopy=False))) < spec.trials


def work(name: str, storage: RDBStorage, data: MNIST, store: RunStore, stop=None,
         on_trial: Callable[[], None] | None = None, max_trials: int | None = None,
         on_event: Callable | None = None) -> int:
    """Take this study's trials until none is left, ``stop`` (anything with is_set()) is set, or ``max_trials``
    have been taken; the number taken. ``on_event(recorder, event)`` sees each trial's engine events (a race's
    trainer reports them to its server)."""
    study, spec = load_study(name, storage)
    stop = stop or threading.Event()
    study_id = storage.get_study_id_from_name(name)
    callbacks = [lambda s, t: on_trial()] if on_trial else []
    taken = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while not stop.is_set() and _has_work(spec, study):
            if max_trials is not None and taken >= max_trials:
                break
            taken += 1
            objective = _Objective(spec, data, store, stop, storage, study_id, on_event)
            try:
                # One trial per call: between trials, check the queue, so a grid's worker takes a waiting trial or
                # none. optimize also fails trials whose worker's heartbeat stopped (and so re-queues them once).
                study.optimize(objective, n_trials=1, catch=(_Spare, _TrialFailed), callbacks=callbacks)
            except _Stopped:
                return taken
            except ValueError as err:
                # The trial was failed under this worker (its heartbeats looked stale to another, which re-queued
                # it): optimize cannot record the end of a trial that has ended. Its run says so; go on.
                if not objective.ended_elsewhere(err):
                    raise
    return taken
