"""Which configuration each trial tries. A grid's (and a repeat's) combinations are enqueued as fixed trials, one
each, tagged with their combination: a worker takes a waiting trial or none, so every combination runs exactly once
however many workers share the study (GridSampler can repeat a point under concurrency). A trial whose worker died
is failed and tried once more: the retry shares its configuration. A trial taken after the study had all its own is a
spare and trains nothing."""

from __future__ import annotations

import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from digitlab.study.spec import StudySpec

COMBINATION_ATTR = "combination"  # a grid trial's params as JSON, set when enqueued; retries copy it


def retried_trial(trial: FrozenTrial) -> int | None:
    """The number of the trial a retry repeats (None for a first attempt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def configuration_key(trial: FrozenTrial) -> str:
    """Which configuration a trial tries: a grid's combination, a search's first attempt; retries share it."""
    if COMBINATION_ATTR in trial.user_attrs:
        return trial.user_attrs[COMBINATION_ATTR]
    origin = retried_trial(trial)
    return str(trial.number if origin is None else origin)


def first_attempts(trials: list[FrozenTrial]) -> list[int]:
    """The numbers of the trials that are no retry, in creation order."""
    return sorted(t.number for t in trials if retried_trial(t) is None)


def spares(spec: StudySpec, trials: list[FrozenTrial]) -> set[int]:
    """Trials created after the study had all its own (a race at a grid's or search's end): they train nothing. A
    search's are its first attempts past ``trials`` in creation order: decided without a race."""
    if not spec.search:
        return {t.number for t in trials if COMBINATION_ATTR not in t.user_attrs}
    return set(first_attempts(trials)[spec.trials:])
