"""Where studies live: an SQLAlchemy URL, by default an SQLite file inside the run store, for many machines
PostgreSQL. Workers send heartbeats; a trial whose worker died is failed, its run stays (read as interrupted), and its
configuration is tried once more."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from digitlab.store import checkpoints_root
from digitlab.study.attempts import COMBINATION_ATTR, configuration_key
from digitlab.study.spec import StudyError, StudySpec

STORAGE_ENV = "DIGITLAB_STUDY_STORAGE"
STUDIES_FILE = ".studies.db"  # hidden: the run store's listing skips it
DEFINITION_ATTR = "digitlab.definition"
HEARTBEAT_S = 10
CONNECT_TIMEOUT_S = 5  # an unreachable database host fails within this, not after the OS's minutes

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
        taken = {configuration_key(t) for t in study.get_trials(deepcopy=False, states=live)}
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
