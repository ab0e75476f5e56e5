"""Studies: many runs from one definition, on Optuna. Each trial trains an ordinary run of the run store, tagged with
its study and trial number (run.json's ``study``).

- repeat: one config over N seeds; grid: lists of values per field, crossed, over N seeds; search: ranges and
  choices sampled by TPE for a number of trials, optionally pruned on per-epoch validation accuracy.
- A grid's (and a repeat's) combinations are enqueued as fixed trials, one each: a worker takes a waiting trial or
  none, so every combination runs exactly once however many workers share the study (GridSampler can repeat a point
  under concurrency).
- The storage is an SQLAlchemy URL: by default an SQLite file inside the run store, for many machines PostgreSQL.
  Workers send heartbeats; a trial whose worker died is failed, its run stays (read as interrupted), and its
  configuration is tried once more.
- A search ranks trials by validation accuracy, never test accuracy. A trial's objective value is its last epoch's
  validation accuracy, or its test accuracy in a repeat or grid without a validation split (nothing is chosen by it).
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import signal
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from digitlab.config import ConfigError, TrainConfig, UnknownPresetError, parse_value, preset
from digitlab.data import MNIST, load_mnist
from digitlab.device import cpu_threads
from digitlab.engine import EpochEnd, RunEnd, RunStart, train
from digitlab.recorder import record_training
from digitlab.store import RunStore, checkpoints_root

MAX_TRIALS = 1000
MAX_NAME_LENGTH = 72  # its runs are named "<study> #<trial>", and a run name has at most 80 characters
DEFAULT_VALIDATION_SIZE = 5000
DEFAULT_SEARCH_TRIALS = 20
SEED_STUDY_REPEATS = 3
STORAGE_ENV = "DIGITLAB_STUDY_STORAGE"
STUDIES_FILE = ".studies.db"  # hidden: the run store's listing skips it
DEFINITION_ATTR = "digitlab.definition"
HEARTBEAT_S = 10
CONNECT_TIMEOUT_S = 5  # an unreachable database host fails within this, not after the OS's minutes
POLL_S = 1.0
# Measured on the 2-core machine (`python -m digitlab bench --study-workers`, README "Studies"): one worker with
# both threads beats two workers of one thread each, for the fast preset and for seed-cnn.
DEFAULT_WORKERS = 1
PRESET_PARAM = "preset"  # a grid over whole presets: each value replaces the base
REPEAT_PARAM = "repeat"  # the k-th seed of a combination: seed = the config's seed + k

# The seeds' comparisons, one study each: (base preset, grid).
SEED_STUDIES: dict[str, tuple[str, dict[str, list]]] = {
    "seed-000-batch": ("seed-cnn", {"batch_size": [32, 512]}),
    "seed-001-bn": ("seed-lenet", {PRESET_PARAM: ["seed-lenet", "seed-lenet-bn"]}),
    "seed-002": ("seed-002-mlp", {PRESET_PARAM: ["seed-002-mlp", "seed-002-mlp-bn", "seed-002-cnn",
                                                 "seed-002-cnn-bn"]}),
    "seed-003": ("seed-mlp", {PRESET_PARAM: ["seed-mlp", "seed-003-cnn"]}),
}


class StudyError(ValueError):
    """A study that cannot be defined, stored or resumed; the message names what is wrong and what to do."""


class _Spare(Exception):
    """A trial taken after the study had all its trials (a race at a grid's end): it trains nothing."""


class _TrialFailed(Exception):
    """Training raised or diverged: the trial fails, the worker goes on with the next."""


class _Stopped(Exception):
    """Stop was requested: the trial's run is kept as stopped, the trial failed, the worker ends."""


# --- definitions -----------------------------------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    """Optuna's categorical choices hold scalars: a list value (model_options.channels) travels as its JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


@dataclass(frozen=True)
class StudySpec:
    """What a study runs. ``base`` is a TrainConfig dict; ``overrides`` (epochs, validation_size) apply after a
    grid's preset too; ``search`` maps a field to {"low", "high", "log", "int"} or {"choices"}."""

    name: str
    base: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    search: dict[str, dict] = field(default_factory=dict)
    repeat: int = 1
    trials: int = 0  # a search's; a grid's is its combinations x repeat
    prune: bool = False

    @property
    def kind(self) -> str:
        return "search" if self.search else "grid" if self.grid else "repeat"

    @property
    def total(self) -> int:
        """Distinct configurations the study trains."""
        return self.trials if self.search else math.prod(len(v) for v in self.grid.values()) * self.repeat

    def to_dict(self) -> dict[str, Any]:
        # Through JSON: what Optuna stores and gives back, so a stored definition compares equal to a fresh one.
        return json.loads(json.dumps({"name": self.name, "base": self.base, "overrides": self.overrides,
                                      "grid": self.grid, "search": self.search, "repeat": self.repeat,
                                      "trials": self.trials, "prune": self.prune}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySpec:
        return cls(**data)

    def fixed_params(self) -> list[dict[str, Any]]:
        """A grid's or repeat's trials, as Optuna params: every combination of the grid, for each repeat."""
        fields = list(self.grid)
        return [{**{f: _encode(v) for f, v in zip(fields, values)}, REPEAT_PARAM: k}
                for values in itertools.product(*self.grid.values()) for k in range(self.repeat)]

    def config_for(self, params: dict[str, Any]) -> TrainConfig:
        """The config a trial trains, from its decoded params (field -> value, plus preset and repeat)."""
        config = TrainConfig.from_dict(self.base)
        if PRESET_PARAM in params:
            config = preset(params[PRESET_PARAM])
            for key, value in self.overrides.items():
                config = config.with_field(key, value)
        for key, value in params.items():
            if key not in (PRESET_PARAM, REPEAT_PARAM):
                config = config.with_field(key, value)
        return config.replace(seed=config.seed + params.get(REPEAT_PARAM, 0))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's decoded params: fixed for a grid (enqueued), sampled for a search."""
        params: dict[str, Any] = {}
        for key, values in self.grid.items():
            encoded = [_encode(v) for v in values]
            params[key] = values[encoded.index(trial.suggest_categorical(key, encoded))]
        for key, dim in self.search.items():
            if "choices" in dim:
                encoded = [_encode(v) for v in dim["choices"]]
                params[key] = dim["choices"][encoded.index(trial.suggest_categorical(key, encoded))]
            elif dim["int"]:
                params[key] = trial.suggest_int(key, dim["low"], dim["high"], log=dim["log"])
            else:
                params[key] = trial.suggest_float(key, dim["low"], dim["high"], log=dim["log"])
        if not self.search:
            params[REPEAT_PARAM] = trial.suggest_int(REPEAT_PARAM, 0, self.repeat - 1)
        return params


def parse_values(text: str) -> list:
    """A grid's VALUES: comma-separated, or for a list-valued field JSON lists separated by ";" ("[16,32];[32,64]")."""
    return [parse_value(part.strip()) for part in text.split(";" if ";" in text else ",")]


def parse_spec(text: str) -> dict[str, Any]:
    """A search's SPEC: LOW:HIGH (float), LOW:HIGH:log, LOW:HIGH:int, or comma-separated choices."""
    parts = text.split(":")
    if len(parts) in (2, 3) and all(isinstance(parse_value(p), (int, float)) for p in parts[:2]):
        kind = parts[2] if len(parts) == 3 else ""
        if kind not in ("", "log", "int"):
            raise StudyError(f"search range {text!r}: the third part must be log or int, got {kind!r}")
        low, high = parse_value(parts[0]), parse_value(parts[1])
        if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise StudyError(f"search range {text!r}: LOW:HIGH:int needs whole numbers")
        if not low < high:
            raise StudyError(f"search range {text!r}: LOW must be below HIGH")
        if kind == "log" and low <= 0:
            raise StudyError(f"search range {text!r}: a log range needs LOW above 0")
        return {"low": low, "high": high, "log": kind == "log", "int": kind == "int"}
    return {"choices": parse_values(text)}


def parse_assignments(items: list[str], what: str) -> list[tuple[str, str]]:
    """["FIELD=TEXT", ...] -> [(field, text)]; ``what`` names the option in messages (--grid, --search)."""
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise StudyError(f"{what} expects FIELD=VALUES, got {item!r}")
        pairs.append((key.strip(), text.strip()))
    return pairs


def _field_error(config: TrainConfig, key: str, value: Any, what: str) -> str | None:
    """The field's own TrainConfig.validate message for ``key=value`` on ``config``, or None."""
    if key == PRESET_PARAM:
        try:
            preset(value)
        except UnknownPresetError as err:
            return f"{what} preset: {err}"
        return None
    try:
        errors = config.with_field(key, value).validate()
    except ConfigError as err:
        return f"{what} {key}: {err}"
    found = errors.get(key) or next((m for f, m in errors.items() if f.startswith(f"{key}.") or key.startswith(f)),
                                    None)
    return f"{what} {key}={json.dumps(value)}: {found}" if found else None


def define_study(name: str, base: str | TrainConfig = "fast", *, grid: dict[str, list] | None = None,
                 search: dict[str, dict] | None = None, repeat: int | None = None, trials: int | None = None,
                 prune: bool = False, epochs: int | None = None, validation_size: int | None = None,
                 seed_study: str | None = None) -> StudySpec:
    """A checked StudySpec; every bad input raises StudyError naming the field and what to do.

    ``base`` is a preset name or a TrainConfig; ``seed_study`` (a key of SEED_STUDIES) gives base and grid, and 3
    repeats by default. ``validation_size`` defaults to 5,000.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise StudyError(f"a study name needs 1 to {MAX_NAME_LENGTH} characters")
    if seed_study is not None:
        if seed_study not in SEED_STUDIES:
            raise StudyError(f"unknown seed study {seed_study!r}; known: {', '.join(SEED_STUDIES)}")
        if grid or search:
            raise StudyError("a seed study brings its own grid: give no grid or search with it")
        base, grid = SEED_STUDIES[seed_study][0], SEED_STUDIES[seed_study][1]
        repeat = SEED_STUDY_REPEATS if repeat is None else repeat
    grid, search, repeat = dict(grid or {}), dict(search or {}), 1 if repeat is None else repeat
    try:
        config = preset(base) if isinstance(base, str) else base
    except UnknownPresetError as err:
        raise StudyError(str(err)) from None
    overrides = {"validation_size": DEFAULT_VALIDATION_SIZE if validation_size is None else validation_size}
    if epochs is not None:
        overrides["epochs"] = epochs
    for key, value in overrides.items():
        config = config.with_field(key, value)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_TRIALS:
        raise StudyError(f"repeat must be a whole number from 1 to {MAX_TRIALS}, got {repeat!r}")
    errors = config.validate()
    if errors:
        raise StudyError("the base config is invalid: " + "; ".join(errors.values()))
    if set(grid) & set(search):
        raise StudyError(f"{', '.join(sorted(set(grid) & set(search)))} is both in the grid and the search: pick one")
    if search and grid:
        raise StudyError("a study is a grid or a search, not both: move the grid's fields into the search as choices")
    if trials is not None and not search:
        raise StudyError("empty search space: trials needs at least one search field (FIELD=LOW:HIGH or choices)")
    if prune and not search:
        raise StudyError("pruning needs a search: a grid or repeat runs every configuration to its end")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise StudyError(f"grid {key}: give at least one value")
        for value in values:
            if problem := _field_error(config, key, value, "grid"):
                raise StudyError(problem)
    for key, dim in search.items():
        if key in (PRESET_PARAM, REPEAT_PARAM, "seed", "name", "validation_size"):
            raise StudyError(f"search {key}: not a field a search can tune; search the training fields")
        values = dim["choices"] if "choices" in dim else [dim["low"], dim["high"]]
        for value in values:
            if problem := _field_error(config, key, value, "search"):
                raise StudyError(problem)
    if search:
        trials = DEFAULT_SEARCH_TRIALS if trials is None else trials
        if repeat != 1:
            raise StudyError("a search tries each configuration once: drop repeat, or repeat its best config after")
        if config.validation_size == 0:
            raise StudyError("a search ranks trials by validation accuracy, never test accuracy: give a validation "
                             "size above 0 (studies default to 5,000)")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise StudyError(f"trials must be a whole number from 1 to {MAX_TRIALS}, got {trials!r}")
    spec = StudySpec(name, config.to_dict(), overrides, grid, search, repeat, trials or 0, prune)
    if spec.total > MAX_TRIALS:
        raise StudyError(f"the study would train {spec.total:,} runs; at most {MAX_TRIALS:,}: "
                         "give fewer values or repeats")
    for params in spec.fixed_params()[::spec.repeat]:  # each combination together: fields can clash (nesterov+adam)
        decoded = {key: values[[_encode(v) for v in values].index(params[key])] for key, values in grid.items()}
        if errors := spec.config_for(decoded).validate():
            raise StudyError(f"grid combination {json.dumps(decoded)}: " + "; ".join(errors.values()))
    return spec


# --- storage ---------------------------------------------------------------------------------------------------------

def storage_url(url: str | None = None, out: str | os.PathLike | None = None) -> str:
    """An explicit URL, else DIGITLAB_STUDY_STORAGE, else an SQLite file inside the run store."""
    url = url or os.environ.get(STORAGE_ENV, "").strip()
    if url:
        return url
    root = checkpoints_root(out)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / STUDIES_FILE}"


def open_storage(url: str | None = None, out: str | os.PathLike | None = None, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int | None = None) -> RDBStorage:
    """The study database, with heartbeats; a malformed URL, a missing driver or an unreachable host raise
    StudyError within CONNECT_TIMEOUT_S, naming the host."""
    url = storage_url(url, out)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StudyError(f"study storage {url!r} is not a database URL; give e.g. postgresql://USER@HOST:5432/DB or "
                         "sqlite:///PATH/studies.db") from None
    where = f"the study database at {parsed.host}" if parsed.host else f"the study database {parsed.database}"
    backend = parsed.get_backend_name()
    # SQLite: wait for another worker's write rather than fail, and no implicit BEGIN (see _serialize_sqlite);
    # servers: give up on a dead host quickly.
    connect_args = ({"timeout": 60, "isolation_level": None} if backend == "sqlite"
                    else {"connect_timeout": CONNECT_TIMEOUT_S})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = RDBStorage(url, engine_kwargs={"connect_args": connect_args}, heartbeat_interval=heartbeat_s,
                                 grace_period=grace_s,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (ImportError, sqlalchemy.exc.NoSuchModuleError) as err:
            raise StudyError(f"{where} needs a database driver that is not installed ({err}); for PostgreSQL: "
                             "pip install 'psycopg[binary]'") from None
        except sqlalchemy.exc.SQLAlchemyError as err:
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise StudyError(f"cannot open {where}: {reason}") from None
    if backend == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """Make each transaction take SQLite's write lock when it begins. Optuna takes a waiting trial by reading it
    and then marking it running, under SELECT ... FOR UPDATE, which SQLite ignores: two workers could both read
    it as waiting and both run it. BEGIN IMMEDIATE serialises them; the second then sees it running."""
    sqlalchemy.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    engine.dispose()  # connections opened before the listener: none is reused


def _sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(constant_liar=True)  # parallel workers spread out instead of piling up


def _pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=2) if spec.prune else optuna.pruners.NopPruner()


def create_or_resume(spec: StudySpec, storage: RDBStorage) -> optuna.Study:
    """The study named spec.name: created, or resumed when it exists with the same definition (refused otherwise).
    A grid's combinations without a finished, running or waiting trial are enqueued."""
    study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=_sampler(spec), pruner=_pruner(spec))
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        study.set_user_attr(DEFINITION_ATTR, spec.to_dict())
    elif stored != spec.to_dict():
        differs = ", ".join(k for k in spec.to_dict() if stored.get(k) != spec.to_dict()[k])
        raise StudyError(f"study {spec.name!r} exists with another definition (it differs in: {differs}); run it with "
                         "the same options to resume it, or give the new study another name")
    if not spec.search:
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        taken = {_key(t) for t in study.get_trials(deepcopy=False, states=live)}
        for params in spec.fixed_params():
            key = json.dumps(params, sort_keys=True)
            if key not in taken:
                study.enqueue_trial(params, user_attrs={COMBINATION_ATTR: key})
    return study


def load_study(name: str, storage: RDBStorage) -> tuple[optuna.Study, StudySpec]:
    try:
        stored = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyError(f"no study {name!r} in this storage; start it with: python -m digitlab study run {name} "
                         "--base PRESET ...") from None
    if DEFINITION_ATTR not in stored.user_attrs:
        raise StudyError(f"study {name!r} was not made by digitlab (it has no definition)")
    spec = StudySpec.from_dict(stored.user_attrs[DEFINITION_ATTR])
    return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(spec), pruner=_pruner(spec)), spec


def list_studies(storage: RDBStorage) -> list[dict[str, Any]]:
    """[{name, kind, total, trials}] of the digitlab studies in ``storage``."""
    found = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if DEFINITION_ATTR in summary.user_attrs:
            spec = StudySpec.from_dict(summary.user_attrs[DEFINITION_ATTR])
            found.append({"name": spec.name, "kind": spec.kind, "total": spec.total, "trials": summary.n_trials})
    return found


# --- trials ----------------------------------------------------------------------------------------------------------

COMBINATION_ATTR = "combination"  # a grid trial's params as JSON, set when enqueued; retries copy it
RESULT_ATTRS = ("run_id", "status", "seed", "param_count", "epochs", "val_acc", "test_acc", "test_loss", "train_s",
                "error")


def _origin(trial: FrozenTrial) -> int | None:
    """The number of the trial a retry repeats (None for a first attempt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _key(trial: FrozenTrial) -> str:
    """Which configuration a trial tries: a grid's combination, a search's first attempt; retries share it."""
    if COMBINATION_ATTR in trial.user_attrs:
        return trial.user_attrs[COMBINATION_ATTR]
    origin = _origin(trial)
    return str(trial.number if origin is None else origin)


def _first_attempts(trials: list[FrozenTrial]) -> list[int]:
    return sorted(t.number for t in trials if _origin(t) is None)


def _spares(spec: StudySpec, trials: list[FrozenTrial]) -> set[int]:
    """Trials created after the study had all its own (a race at a grid's or search's end): they train nothing. A
    search's are its first attempts past ``trials`` in creation order: decided without a race."""
    if not spec.search:
        return {t.number for t in trials if COMBINATION_ATTR not in t.user_attrs}
    return set(_first_attempts(trials)[spec.trials:])


class _Either:
    """Set when either event is: the study's Stop or this trial's pruning (engine.train checks it every batch)."""

    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class _Objective:
    def __init__(self, spec: StudySpec, data: MNIST, store: RunStore, stop):
        self.spec, self.data, self.store, self.stop = spec, data, store, stop

    def __call__(self, trial: optuna.Trial) -> float:
        # Optuna's heartbeat thread records its first beat concurrently with this call. A worker killed before it
        # has would leave a trial that fail_stale_trials never sees (no beat, so never stale): stuck running.
        # Beat once here, before any work, so that a trial with a run always has a heartbeat to go stale.
        storage = trial.study._storage  # RDBStorage behind Optuna's cache: both beat
        if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
            storage.record_heartbeat(trial._trial_id)
        if trial.number in _spares(self.spec, trial.study.get_trials(deepcopy=False)):
            trial.study.stop()
            raise _Spare
        for key in RESULT_ATTRS:  # a retry starts with its failed attempt's user attributes: not this attempt's
            trial.set_user_attr(key, None)
        params = self.spec.suggest(trial)
        config = self.spec.config_for(params).replace(name=f"{self.spec.name} #{trial.number}")
        pruned = threading.Event()
        trial.set_user_attr("seed", config.seed)

        def on_event(recorder, event) -> None:
            if isinstance(event, RunStart):
                trial.set_user_attr("run_id", recorder.run_id)
                trial.set_user_attr("param_count", event.param_count)
            elif isinstance(event, EpochEnd):
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
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise _TrialFailed(str(err)) from err
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


def _unfinished(study: optuna.Study) -> tuple[int, int]:
    """(waiting, running) trials."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    return (sum(t.state == TrialState.WAITING for t in trials), sum(t.state == TrialState.RUNNING for t in trials))


def _has_work(spec: StudySpec, study: optuna.Study) -> bool:
    waiting, _ = _unfinished(study)
    if waiting or not spec.search:
        return bool(waiting)
    return len(_first_attempts(study.get_trials(deepcopy=False))) < spec.trials


def work(name: str, storage: RDBStorage, data: MNIST, store: RunStore, stop=None,
         on_trial: Callable[[], None] | None = None) -> None:
    """Take this study's trials until none is left or ``stop`` (anything with is_set()) is set."""
    study, spec = load_study(name, storage)
    stop = stop or threading.Event()
    objective = _Objective(spec, data, store, stop)
    callbacks = [lambda s, t: on_trial()] if on_trial else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while not stop.is_set() and _has_work(spec, study):
            try:
                # One trial per call: between trials, check the queue, so a grid's worker takes a waiting trial or
                # none. optimize also fails trials whose worker's heartbeat stopped (and so re-queues them once).
                study.optimize(objective, n_trials=1, catch=(_Spare, _TrialFailed), callbacks=callbacks)
            except _Stopped:
                return
            except ValueError as err:
                # The trial was failed under this worker (its heartbeats looked stale to another, which re-queued
                # it): optimize cannot record the end of a trial that has ended. Its run says so; go on.
                if not str(err).startswith("Cannot tell a"):
                    raise


# --- running a whole study -------------------------------------------------------------------------------------------

def _worker_main(name: str, url: str, data_root: str, out: str, threads: int, heartbeat_s: int,
                 grace_s: int | None, stop) -> None:
    """A spawned worker process: its own torch threads, its own storage connection; Ctrl-C reaches it through
    ``stop``, set by its parent, so it ends its run cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["DIGITLAB_THREADS"] = str(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    work(name, storage, load_mnist(data_root, download=False), RunStore(out), stop)


def spawn_workers(name: str, url: str, data: MNIST, out: str | os.PathLike, workers: int, stop,
                  threads: int | None = None, heartbeat_s: int = HEARTBEAT_S,
                  grace_s: int | None = None) -> list[multiprocessing.Process]:
    """Start ``workers`` processes on this study (spawned: no forked torch state); ``stop`` is a
    multiprocessing Event from the spawn context. Threads per worker default to the cores shared out."""
    threads = threads or max(1, cpu_threads() // workers)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, daemon=True,
                                 args=(name, url, str(data.root), str(checkpoints_root(out)), threads, heartbeat_s,
                                       grace_s, stop))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    return processes


def wait_for_workers(processes: list[multiprocessing.Process], on_tick: Callable[[], None] | None = None) -> None:
    """Until every worker process has ended, calling ``on_tick()`` every POLL_S (a progress bar, a page)."""
    while any(p.is_alive() for p in processes):
        if on_tick:
            on_tick()
        time.sleep(POLL_S)


def run_study(spec: StudySpec, data: MNIST, out: str | os.PathLike | None = None, storage: str | None = None,
              workers: int = DEFAULT_WORKERS, threads: int | None = None, stop=None,
              on_progress: Callable[[int, int], None] | None = None, heartbeat_s: int = HEARTBEAT_S,
              grace_s: int | None = None) -> Summary:
    """Create or resume ``spec`` and train it with ``workers`` workers: this process (it has torch and ``data``
    loaded already) and ``workers - 1`` spawned ones. Then wait until every trial has ended, those of other machines'
    ``work`` too, and return its summary. ``on_progress(done, total)`` follows the configurations as they end;
    ``stop`` ends every worker after its current batch."""
    url = storage_url(storage, out)
    store_ = open_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    study = create_or_resume(spec, store_)
    context = multiprocessing.get_context("spawn")
    stop = stop or context.Event()
    progress = (lambda: on_progress(summarize(study, spec).ended, spec.total)) if on_progress else None
    processes = []
    if workers > 1:
        threads = threads or max(1, cpu_threads() // workers)
        processes = spawn_workers(spec.name, url, data, out or checkpoints_root(), workers - 1, stop, threads,
                                  heartbeat_s, grace_s)
    threads_before = os.environ.get("DIGITLAB_THREADS")
    if threads:
        os.environ["DIGITLAB_THREADS"] = str(threads)
    try:
        # Work as the first worker; then wait for the trials of the other workers, taking over the retries of the
        # dead ones' trials.
        while not stop.is_set():
            work(spec.name, store_, data, RunStore(out), stop, progress)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            if _unfinished(study) == (0, 0):
                break
            if progress:
                progress()
            time.sleep(POLL_S)
        wait_for_workers(processes, progress)
    finally:
        if threads_before is None:
            os.environ.pop("DIGITLAB_THREADS", None)
        else:
            os.environ["DIGITLAB_THREADS"] = threads_before
    if progress:
        progress()
    return summarize(study, spec)


# --- results ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialRow:
    """A configuration's last attempt."""

    number: int
    state: str  # complete, pruned, failed, running, waiting
    params: dict[str, Any]
    attempts: int
    attrs: dict[str, Any]  # RESULT_ATTRS, None where not known (yet)


@dataclass(frozen=True)
class Summary:
    name: str
    rows: list[TrialRow]
    total: int

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows)

    @property
    def ended(self) -> int:
        return sum(r.state in ("complete", "pruned", "failed") for r in self.rows)

    @property
    def best(self) -> TrialRow | None:
        """The complete trial with the highest validation accuracy (test accuracy only where there is no
        validation split, that is, in a repeat or grid, where nothing is chosen by it)."""
        done = [r for r in self.rows if r.state == "complete"]
        with_val = [r for r in done if r.attrs.get("val_acc") is not None]
        if with_val:
            return max(with_val, key=lambda r: r.attrs["val_acc"])
        return max(done, key=lambda r: r.attrs.get("test_acc", 0.0), default=None)

    def line(self) -> str:
        best = self.best
        val = f"{best.attrs['val_acc']:.4f}" if best and best.attrs.get("val_acc") is not None else "-"
        test = f"{best.attrs['test_acc']:.4f}" if best and best.attrs.get("test_acc") is not None else "-"
        return (f"study={self.name} trials={len(self.rows)} complete={self.count('complete')} "
                f"pruned={self.count('pruned')} failed={self.count('failed')} best_val={val} best_test={test}")


def summarize(study: optuna.Study, spec: StudySpec) -> Summary:
    trials = study.get_trials(deepcopy=False)
    spares = _spares(spec, trials)
    by_key: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if trial.number not in spares:
            by_key.setdefault(_key(trial), []).append(trial)
    rows = []
    for attempts in by_key.values():
        last = max(attempts, key=lambda t: t.number)
        rows.append(TrialRow(last.number, last.state.name.lower().replace("fail", "failed"), dict(last.params),
                             len(attempts), {k: last.user_attrs.get(k) for k in RESULT_ATTRS}))
    return Summary(spec.name, sorted(rows, key=lambda r: r.number), spec.total)


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def format_table(summary: Summary) -> str:
    """One line per configuration's last attempt, then mean ± std over the repeats of each combination."""
    def num(value, digits=4):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"{'trial':>5} {'state':8} {'epochs':>6} {'val_acc':>7} {'test_acc':>8} {'test_loss':>9} "
             f"{'train_s':>7}  {'run':36} params"]
    for row in summary.rows:
        a = row.attrs
        params = " ".join(f"{k}={v}" for k, v in row.params.items())
        lines.append(f"{row.number:>5} {row.state:8} {a['epochs'] or 0:>6} {num(a['val_acc']):>7} "
                     f"{num(a['test_acc']):>8} {num(a['test_loss']):>9} {num(a['train_s'], 1):>7}  "
                     f"{a['run_id'] or '-':36} {params}")
    groups: dict[str, list[TrialRow]] = {}
    for row in summary.rows:
        if row.state == "complete":
            groups.setdefault(json.dumps({k: v for k, v in row.params.items() if k != REPEAT_PARAM}), []).append(row)
    if any(len(rows) > 1 for rows in groups.values()):
        lines += ["", f"{'n':>2} {'test_acc':17} {'test_loss':17} {'train_s':13} {'params':>9}  configuration"]
        for key, rows in groups.items():
            pick = lambda k: [r.attrs[k] for r in rows if r.attrs.get(k) is not None]  # noqa: E731
            count = rows[0].attrs.get("param_count")
            lines.append(f"{len(rows):>2} {_mean_std(pick('test_acc'), 4):17} {_mean_std(pick('test_loss'), 4):17} "
                         f"{_mean_std(pick('train_s'), 1):13} {count if count is not None else '-':>9}  "
                         f"{' '.join(f'{k}={v}' for k, v in json.loads(key).items()) or '(base)'}")
    return "\n".join(lines)


def show(name: str, storage: RDBStorage) -> Summary:
    study, spec = load_study(name, storage)
    return summarize(study, spec)


__all__ = ["SEED_STUDIES", "StudyError", "StudySpec", "Summary", "create_or_resume", "define_study", "format_table",
           "list_studies", "load_study", "open_storage", "parse_assignments", "parse_spec", "parse_values",
           "run_study", "show", "spawn_workers", "wait_for_workers", "storage_url", "summarize", "work"]
