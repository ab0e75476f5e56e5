"""A study's definition: StudySpec, checked by define_study, and the grid and search text of the CLI and the Study
page. A repeat is one config over N seeds; a grid, lists of values per field, crossed, over N seeds; a search, ranges
and choices sampled by TPE for a number of trials, optionally pruned on per-epoch validation accuracy."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna

from digitlab.config import ConfigError, TrainConfig, UnknownPresetError, parse_value, preset

MAX_TRIALS = 1000
MAX_NAME_LENGTH = 72  # its runs are named "<study> #<trial>", and a run name has at most 80 characters
DEFAULT_VALIDATION_SIZE = 5000
DEFAULT_SEARCH_TRIALS = 20
SEED_STUDY_REPEATS = 3
PRESET_PARAM = "preset"  # a grid over whole presets: each value replaces the base
CONFIG_PARAM = "config"  # a race's grid: each value a whole config (as a dict), one per lane
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


def _as_choice(value: Any) -> Any:
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
        if CONFIG_PARAM in self.grid:
            return "race"
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
        return [{**{f: _as_choice(v) for f, v in zip(fields, values)}, REPEAT_PARAM: k}
                for values in itertools.product(*self.grid.values()) for k in range(self.repeat)]

    def config_for(self, params: dict[str, Any]) -> TrainConfig:
        """The config a trial trains, from its decoded params (field -> value, plus preset and repeat)."""
        config = TrainConfig.from_dict(self.base)
        if CONFIG_PARAM in params:
            config = TrainConfig.from_dict(params[CONFIG_PARAM])
        if PRESET_PARAM in params:
            config = preset(params[PRESET_PARAM])
            for key, value in self.overrides.items():
                config = config.with_field(key, value)
        for key, value in params.items():
            if key not in (PRESET_PARAM, CONFIG_PARAM, REPEAT_PARAM):
                config = config.with_field(key, value)
        return config.replace(seed=config.seed + params.get(REPEAT_PARAM, 0))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's decoded params: fixed for a grid (enqueued), sampled for a search."""
        params: dict[str, Any] = {}
        for key, values in self.grid.items():
            encoded = [_as_choice(v) for v in values]
            params[key] = values[encoded.index(trial.suggest_categorical(key, encoded))]
        for key, dim in self.search.items():
            if "choices" in dim:
                encoded = [_as_choice(v) for v in dim["choices"]]
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


def parse_assignments(items: str | Iterable[str], what: str) -> list[tuple[str, str]]:
    """["FIELD=TEXT", ...], or a text of one FIELD=TEXT a line (blank lines skipped) -> [(field, text)]; ``what``
    names the option in messages (--grid, --search, grid, search)."""
    if isinstance(items, str):
        items = [line for line in items.splitlines() if line.strip()]
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise StudyError(f"{what} expects FIELD=VALUES, got {item!r}")
        if key.strip() in pairs:
            raise StudyError(f"{what} gives {key.strip()} twice: give all its values in one FIELD=VALUES")
        pairs[key.strip()] = text.strip()
    return list(pairs.items())


def parse_grid(items: str | Iterable[str], what: str = "grid") -> dict[str, list]:
    """A grid, field -> values, from FIELD=VALUES items (the CLI's --grid) or lines (the Study page's)."""
    return {key: parse_values(text) for key, text in parse_assignments(items, what)}


def parse_search(items: str | Iterable[str], what: str = "search") -> dict[str, dict]:
    """A search space, field -> parse_spec's range or choices, from FIELD=SPEC items (the CLI's --search) or lines
    (the Study page's)."""
    search = {}
    for key, text in parse_assignments(items, what):
        try:
            search[key] = parse_spec(text)
        except StudyError as err:
            raise StudyError(f"{what} {key}: {err}") from None
    return search


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
        decoded = {key: values[[_as_choice(v) for v in values].index(params[key])] for key, values in grid.items()}
        if errors := spec.config_for(decoded).validate():
            raise StudyError(f"grid combination {json.dumps(decoded)}: " + "; ".join(errors.values()))
    return spec
