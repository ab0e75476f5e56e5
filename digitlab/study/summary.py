"""A study's results: each configuration's last attempt, the best trial, and a table of them with mean ± std over
each combination's repeats."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from digitlab.study.attempts import configuration_key, spares
from digitlab.study.spec import REPEAT_PARAM, StudySpec
from digitlab.study.storage import load_study
from digitlab.study.trials import RESULT_ATTRS


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
    spare = spares(spec, trials)
    by_key: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if trial.number not in spare:
            by_key.setdefault(configuration_key(trial), []).append(trial)
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
