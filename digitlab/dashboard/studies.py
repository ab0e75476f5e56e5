"""The Study page's logic: one study at a time per server (and no Train beside it), run by study.run_study in a child
process that spawns the workers, and followed from the study storage; the trials table and the best-so-far chart."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from digitlab import study
from digitlab.dashboard.access import require_writable
from digitlab.dashboard.jobs import JobManager, WarmTrainer
from digitlab.store import RunStore


class StudyBusyError(RuntimeError):
    """Something else already runs: a study, or a training job (one job per server)."""


class StudyJob:
    """A study run by a trainer process (the server's warm one, if ready) as its first worker; run_study there
    starts the others."""

    def __init__(self, spec: study.StudySpec, url: str, workers: int, trainer: WarmTrainer):
        self.spec, self.url, self.workers = spec, url, workers
        self._storage = None  # opened on the first look: the page looks every second
        # Kept whole: its queue and events must outlive the child's start, which unpickles them from here.
        self.trainer = trainer
        self.stop_event = trainer.stop
        self.process = trainer.process
        trainer.hand(("study", spec.to_dict(), url, workers))

    @property
    def running(self) -> bool:
        return self.process.is_alive()

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def stop(self) -> None:
        """Every worker ends after its current batch; finished trials and their runs are kept."""
        require_writable("Stopping a study")
        self.stop_event.set()

    def look(self) -> tuple[Any, study.Summary]:
        """(the Optuna study, its summary), read from the study storage now."""
        if self._storage is None:
            self._storage = study.open_storage(self.url)
        found, _ = study.load_study(self.spec.name, self._storage)
        return found, study.summarize(found, self.spec)

    def failure(self) -> str | None:
        """Why the study's process ended badly, or None."""
        code = self.process.exitcode
        return None if code in (0, None) else f"The study's process ended with exit code {code}; see the server log."


class StudyManager:
    """At most one study per server, and none while a training job runs (JobManager refuses Train during a study)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self.job: StudyJob | None = None

    @property
    def running(self) -> StudyJob | None:
        return self.job if self.job is not None and self.job.running else None

    def start(self, spec: study.StudySpec, workers: int, storage: str | None = None) -> StudyJob:
        require_writable("Starting a study")
        jobs = JobManager.for_store(self.store)
        training = jobs.job
        with self._lock:
            if training is not None and training.running:
                raise StudyBusyError("A run is training: one job at a time. Stop it on Train, or wait for it.")
            if self.running:
                raise StudyBusyError(f"Study {self.running.spec.name} is running: one study at a time. Stop it, or "
                                     "wait for it.")
            url = study.storage_url(storage, self.store.root)
            study.create_or_resume(spec, study.open_storage(url))  # a refused definition is said here, not in a log
            self.job = StudyJob(spec, url, min(workers, spec.total), jobs.take_trainer())
            return self.job

    @classmethod
    def for_store(cls, store: RunStore) -> StudyManager:
        key = store.root.resolve()
        with _managers_lock:
            if key not in _managers:
                _managers[key] = cls(store)
            return _managers[key]


_managers: dict[Path, StudyManager] = {}
_managers_lock = threading.Lock()


def running_study(store: RunStore) -> StudyJob | None:
    """The study this server runs over ``store``, if any."""
    manager = _managers.get(store.root.resolve())
    return manager.running if manager is not None else None


def trials_table(summary: study.Summary) -> pd.DataFrame:
    """One row per configuration's last attempt, from the study storage (so trials of other machines show too)."""
    rows = []
    for row in summary.rows:
        a = row.attrs
        rows.append({"Trial": row.number, "State": row.state,
                     "Parameters": ", ".join(f"{k}={v}" for k, v in row.params.items()),
                     "Epoch": a["epochs"] or 0, "Validation accuracy": a["val_acc"], "Test accuracy": a["test_acc"],
                     "Run": a["run_id"] or ""})
    return pd.DataFrame(rows, columns=["Trial", "State", "Parameters", "Epoch", "Validation accuracy",
                                       "Test accuracy", "Run"])


def best_so_far_figure(summary: study.Summary) -> go.Figure:
    """The best validation accuracy of the complete trials, by trial number (test accuracy without a split)."""
    key = "val_acc" if any(r.attrs["val_acc"] is not None for r in summary.rows) else "test_acc"
    done = sorted((r.number, r.attrs[key]) for r in summary.rows if r.state == "complete" and r.attrs[key] is not None)
    x, best, y = [], None, []
    for number, value in done:
        best = value if best is None else max(best, value)
        x.append(number)
        y.append(best)
    figure = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", line_shape="hv"))
    label = "validation" if key == "val_acc" else "test"
    figure.update_layout(title=f"Best {label} accuracy so far", xaxis_title="trial", yaxis_title=f"{label} accuracy",
                         height=300, margin=dict(l=10, r=10, t=40, b=10))
    # Whole trial numbers, about ten ticks at most (Plotly's own put 0.2, 0.4, ... under a 2-trial study).
    figure.update_xaxes(tick0=0, dtick=max(1, math.ceil(max(x, default=0) / 10)))
    return figure


def study_run_ids(summary: study.Summary) -> list[str]:
    """The runs of the study's last attempts, for Compare."""
    return [r.attrs["run_id"] for r in summary.rows if r.attrs["run_id"]]
