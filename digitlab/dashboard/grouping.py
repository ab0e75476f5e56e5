"""Runs grouped by configuration for the Compare page: runs that differ only in seed (and name) are repeats of one
experiment, shown as a mean with a ±1 std band rather than as separate lines."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from digitlab.config import TrainConfig
from digitlab.dashboard.charts import PALETTE, colour_for
from digitlab.dashboard.curves import HELD_OUT_METRICS, metric_curve
from digitlab.store import RunRecord

IGNORED_FIELDS = ("seed", "name")  # what repeats of one experiment may differ in
EPOCH_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc")


def group_fields(config: TrainConfig) -> dict[str, Any]:
    """The config as a flat dict without seed and name; model_options flattened to "model_options.<option>"."""
    fields = {k: v for k, v in config.to_dict().items() if k not in IGNORED_FIELDS and k != "model_options"}
    fields.update({f"model_options.{k}": v for k, v in sorted(config.model_options.items())})
    return fields


def group_key(config: TrainConfig) -> str:
    """The same text for every config that differs only in seed and name (JSON with sorted keys)."""
    return json.dumps(group_fields(config), sort_keys=True)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of n values; std is None for a single value (no band, just the run)."""

    n: int
    mean: float | None
    std: float | None


def stat(values: Sequence[float]) -> Stat:
    values = [v for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return Stat(0, None, None)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Stat(n, mean, std)


@dataclass(frozen=True)
class Curve:
    """A metric over a group's runs: per epoch (epoch 1 first; for a held-out metric, per check, at its place in
    fractional epochs), the mean, the std (None where only one run has that point) and how many runs have it."""

    epochs: list[float]
    mean: list[float]
    std: list[float | None]
    n: list[int]


@dataclass(frozen=True)
class Group:
    key: str
    label: str  # its runs' shared name ("fast"), else what sets it apart from the others shown ("lr=0.01")
    colour: str
    runs: list[RunRecord]
    fields: dict[str, Any]  # its hyperparameters, once
    test_acc: Stat

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[int]:
        return [run.config.seed for run in self.runs]

    def curve(self, metric: str) -> Curve:
        return held_out_curve(self.runs, metric) if metric in HELD_OUT_METRICS else epoch_curve(self.runs, metric)


def epoch_curve(runs: Sequence[RunRecord], metric: str) -> Curve:
    """Mean and std of ``metric`` per epoch index over the runs that reached that epoch and recorded it."""
    if metric not in EPOCH_METRICS:
        raise ValueError(f"unknown per-epoch metric {metric!r}; choose one of {', '.join(EPOCH_METRICS)}")
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for index, epoch in enumerate(run.epochs, start=1):
            value = epoch.get(metric)
            if value is not None:
                by_epoch.setdefault(index, []).append(value)
    epochs = sorted(by_epoch)
    stats = [stat(by_epoch[e]) for e in epochs]
    return Curve(epochs, [s.mean for s in stats], [s.std for s in stats], [s.n for s in stats])


def held_out_curve(runs: Sequence[RunRecord], metric: str) -> Curve:
    """Mean and std of a held-out ``metric`` per check, over the runs that made that check: repeats of one
    experiment check after the same batches, so the k-th checks of each run lie at the same place."""
    by_check: dict[int, list[float]] = {}
    places: dict[int, float] = {}
    for run in runs:
        for index, (x, value) in enumerate(zip(*metric_curve(run.data, metric, "epoch"))):
            by_check.setdefault(index, []).append(value)
            places.setdefault(index, x)
    checks = sorted(by_check)
    stats = [stat(by_check[k]) for k in checks]
    return Curve([places[k] for k in checks], [s.mean for s in stats], [s.std for s in stats], [s.n for s in stats])


MAX_LABEL_FIELDS = 3  # a legend entry people can read: the first few fields that set a group apart, then "…"


def differing_label(fields: dict[str, Any], differing: Sequence[str], fallback: str) -> str:
    parts = [f"{name}={_short(fields.get(name, '-'))}" for name in differing[:MAX_LABEL_FIELDS]]
    more = ", …" if len(differing) > MAX_LABEL_FIELDS else ""
    return ", ".join(parts) + more if parts else fallback


def name_label(runs: Sequence[RunRecord]) -> str | None:
    """What the runs' own names say they are: a single run's name, or what repeats' names share once a trailing
    seed number is dropped ("fast, seed 0" and "fast, seed 1" -> "fast"); None when some run has no name of its
    own or the names share nothing."""
    names = [run.data.get("name") or "" for run in runs]
    if not all(names):
        return None
    if len(names) == 1:
        return names[0]
    shared = re.sub(r"[\s,;:(_#-]*(seed)?[\s#=]*\d*$", "", os.path.commonprefix(names), flags=re.IGNORECASE)
    return shared.strip() or None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def group_colours(keys: Sequence[str]) -> dict[str, str]:
    """A colour per group key that depends on the key, not on the order or the page: the same experiment keeps its
    colour. Keys are placed in sorted order at their hashed palette slot, moving to the next free one on a clash,
    so groups shown together differ while there are colours to spare."""
    colours: dict[str, str] = {}
    taken: set[int] = set()
    for key in sorted(set(keys)):
        slot = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(PALETTE)
        for step in range(len(PALETTE)):
            if (slot + step) % len(PALETTE) not in taken:
                slot = (slot + step) % len(PALETTE)
                break
        taken.add(slot)
        if len(taken) == len(PALETTE):
            taken.clear()
        colours[key] = colour_for(slot)
    return colours


def group_runs(records: Sequence[RunRecord]) -> list[Group]:
    """Groups of runs sharing every config field but seed and name, in order of first appearance."""
    members: dict[str, list[RunRecord]] = {}
    for record in records:
        members.setdefault(group_key(record.config), []).append(record)
    fields = {key: group_fields(runs[0].config) for key, runs in members.items()}
    names = sorted({name for f in fields.values() for name in f})
    differing = [name for name in names if len({json.dumps(f.get(name), sort_keys=True) for f in fields.values()}) > 1]
    colours = group_colours(list(members))
    by_fields = {key: differing_label(fields[key], differing, runs[0].config.model) for key, runs in members.items()}
    by_names = {key: name_label(runs) for key, runs in members.items()}
    # Named groups go by their names, unless two groups share one: then what sets them apart follows.
    shared = {label for label in by_names.values() if list(by_names.values()).count(label) > 1}
    labels = {key: by_fields[key] if by_names[key] is None else
              f"{by_names[key]} · {by_fields[key]}" if by_names[key] in shared else by_names[key] for key in members}
    return [Group(key, labels[key], colours[key], runs, fields[key], stat([run.test_acc for run in runs]))
            for key, runs in members.items()]
