"""What a run folder must hold to be read: the schema of run.json, and a header-only check of its weights.

``check_record(data)`` and ``check_weights(path, config)`` raise SchemaError naming the field and what is wrong.
Written by hand, as tables of checks: a JSON Schema cannot say "NaN only in a diverged run's losses" or "an ISO 8601
date with a time zone".
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from digitlab.config import ConfigError, TrainConfig
from digitlab.device import DEVICE_CHOICES, PRECISIONS
from digitlab.models import create_model

FORMAT = 2  # 2: batches.accuracy and held_out (accuracy live inside an epoch); format 1 records are read too
# "pruned": a study's search ended it early (digitlab.study), after at least one finished epoch.
STATUSES = ("running", "completed", "stopped", "diverged", "interrupted", "failed", "pruned")
RESOLVED_PRECISIONS = ("fp32", "bf16", "fp16")
# A non-finite loss ends training as "diverged" (engine.train); a crash while recording that end leaves it "failed".
NON_FINITE_LOSS_STATUSES = ("diverged", "failed")
# RunEnd writes status and final together: these statuses always have a final block.
FINAL_STATUSES = ("completed", "stopped", "diverged", "pruned")
MAX_COUNT = 10**12  # samples, parameters: far above any real run, far below what breaks arithmetic or display
MAX_SECONDS = 10**9  # 30 years
MAX_LOSS = 3.5e38  # float32's largest value: a finite loss computed in float32 is below it
MAX_LR = 1e3
MAX_SHOWN = 60  # characters of a bad value quoted in a message


class SchemaError(ValueError):
    """run.json or the weights do not hold what digitlab writes; the message names the field."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN - 3]}..."


Check = Callable[[Any, str], "str | None"]  # (value, status) -> what is wrong, or None


def _number(low: float, high: float, *, integer: bool = False, non_finite_when: tuple[str, ...] = ()) -> Check:
    kind = "an integer" if integer else "a number"

    def check(value: Any, status: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return f"must be {kind}, got {_shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            if status in non_finite_when and not value < 0:  # NaN or +inf: a loss is never negative
                return None
            return f"must be a finite number, got {value}"
        if not low <= value <= high:  # ints compare exactly, even 10**400
            return f"must be {kind} between {low:g} and {high:g}, got {_shown(value)}"
        return None

    check.bounds = (low, high)  # for _check_list_of's fast path
    return check


def _or_null(check: Check) -> Check:
    return lambda value, status: None if value is None else check(value, status)


def _text(value: Any, status: str) -> str | None:
    return None if isinstance(value, str) else f"must be text, got {_shown(value)}"


def _date(value: Any, status: str) -> str | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        parsed = None
    # With a time zone: the runs table sorts dates, and aware and naive ones do not compare. Years near 1 or 9999
    # overflow when shown in local time.
    if parsed is None or parsed.tzinfo is None or not 1970 <= parsed.year <= 9000:
        return f"must be an ISO 8601 date and time with a time zone, got {_shown(value)}"
    return None


def _optional_date(value: Any, status: str) -> str | None:
    return None if value is None else _date(value, status)


def _choice(choices: tuple[str, ...]) -> Check:
    def check(value: Any, status: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {_shown(value)}"

    return check


_status = _choice(STATUSES)


def _boolean(value: Any, status: str) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {_shown(value)}"


def _versions(value: Any, status: str) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return f"must be an object of name: version text, got {_shown(value)}"
    return None


_ACC = _number(0, 1)
_LOSS = _number(0, MAX_LOSS)
_SECONDS = _number(0, MAX_SECONDS)
_COUNT = _number(0, MAX_COUNT, integer=True)

EPOCH_FIELDS: dict[str, Check] = {
    "epoch": _number(1, 10**6, integer=True), "train_loss": _LOSS, "train_acc": _ACC, "test_loss": _LOSS,
    "test_acc": _ACC, "lr": _number(0, MAX_LR), "samples_seen": _COUNT, "elapsed_s": _SECONDS,
}
# Recorded since validation splits: null in a run without one, absent in runs recorded before.
EPOCH_VALIDATION: dict[str, Check] = {"val_loss": _or_null(_LOSS), "val_acc": _or_null(_ACC)}
BATCH_FIELDS: dict[str, Check] = {  # downsampled averages: samples_seen may hold fractions
    "samples_seen": _number(0, MAX_COUNT), "elapsed_s": _SECONDS,
    "loss": _number(0, MAX_LOSS, non_finite_when=NON_FINITE_LOSS_STATUSES),
}
BATCH_ACCURACY: dict[str, Check] = {"accuracy": _ACC}  # since format 2
HELD_OUT_SPLITS = ("validation", "test")
FINAL_FIELDS: dict[str, Check] = {"train_s": _SECONDS, "epochs_done": _number(0, 10**6, integer=True)}
# A run stopped before its first batch has no score (its weights were random and are not kept): its final block
# holds no test metrics. Every other finished run has them.
FINAL_SCORES: dict[str, Check] = {
    "test_acc": _ACC, "test_loss": _number(0, MAX_LOSS, non_finite_when=NON_FINITE_LOSS_STATUSES),
}
# What RunRecorder writes when it creates a run (besides PARTS, below) ...
REQUIRED: dict[str, Check] = {
    "status": _status, "name": _text, "message": _text, "created_at": _date, "updated_at": _date,
    "finished_at": _optional_date, "pid": _number(0, 2**31, integer=True), "host": _text, "versions": _versions,
}


def _study(value: Any, status: str) -> str | None:
    """A study's run: {"name": the study, "trial": its Optuna trial number}."""
    if (not isinstance(value, dict) or set(value) != {"name", "trial"} or not isinstance(value["name"], str)
            or not value["name"] or _COUNT(value["trial"], status)):
        return f'must be an object {{"name": text, "trial": an integer from 0}}, got {_shown(value)}'
    return None


# ... and what it adds at RunStart (a run that failed before lacks them), shipping, or a study.
OPTIONAL: dict[str, Check] = {
    "device": _text, "device_name": _text, "precision": _choice(RESOLVED_PRECISIONS), "param_count": _COUNT,
    "train_size": _COUNT, "shipped": _boolean, "study": _study,
}


def _check_fields(obj: dict, fields: dict[str, Check], where: str, status: str, required: bool) -> list[str]:
    problems = []
    for key, check in fields.items():
        if key not in obj:
            if required:
                problems.append(f"{where}{key} is missing")
        elif problem := check(obj[key], status):
            problems.append(f"{where}{key} {problem}")
    return problems


def _check_format(data: dict) -> list[str]:
    version = data.get("format")
    if "format" not in data:
        return ["format is missing"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return [f"format must be a positive integer, got {_shown(version)}"]
    if version > FORMAT:
        return [f"format {_shown(version)} is newer than this digitlab reads (format {FORMAT}): upgrade digitlab"]
    return []


def _check_config(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return [f"config must be an object, got {_shown(config)}"]
    return list(_config_errors(json.dumps(config, sort_keys=True)))


@functools.lru_cache(maxsize=256)
def _config_errors(config_json: str) -> tuple[str, ...]:
    """TrainConfig.validate()'s messages, less "not available here" for the device and precision: a CUDA run in
    fp16 reads on a CPU machine. Cached by the config's JSON (validate builds the model, on the meta device)."""
    try:
        config = TrainConfig.from_dict(json.loads(config_json))
    except (ConfigError, TypeError) as err:
        return (f"config cannot be read: {err}",)
    errors = config.validate()
    if config.device in DEVICE_CHOICES:
        errors.pop("device", None)
    if config.precision in PRECISIONS:
        errors.pop("precision", None)
    return tuple(f"config: {message}" for message in errors.values())


def _check_list_of(value: Any, fields: dict[str, Check] | Check, where: str, status: str,
                   optional: dict[str, Check] | None = None) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} must be a list, got {_shown(value)}"]
    bounds = getattr(fields, "bounds", None)
    if bounds and all(type(v) in (int, float) and bounds[0] <= v <= bounds[1] for v in value):
        return []  # the usual long list of plain numbers, checked without a call per item (NaN fails: below)
    problems = []
    for i, item in enumerate(value):
        if callable(fields):
            if problem := fields(item, status):
                problems.append(f"{where}[{i}] {problem}")
        elif not isinstance(item, dict):
            problems.append(f"{where}[{i}] must be an object, got {_shown(item)}")
        else:
            problems += _check_fields(item, fields, f"{where}[{i}].", status, required=True)
            problems += _check_fields(item, optional or {}, f"{where}[{i}].", status, required=False)
        if problems:
            return problems  # the first bad entry says enough
    return problems


def _check_traces(trace: Any, fields: dict[str, Check], where: str, status: str) -> list[str]:
    """Lists of numbers of equal length, one per field (batches, held_out)."""
    if not isinstance(trace, dict):
        return [f"{where} must be an object, got {_shown(trace)}"]
    problems = []
    for key, check in fields.items():
        if key not in trace:
            problems.append(f"{where}.{key} is missing")
        else:
            problems += _check_list_of(trace[key], check, f"{where}.{key}", status)
    lengths = {len(trace[key]) for key in fields if isinstance(trace.get(key), list)}
    if len(lengths) > 1:
        problems.append(f"{where} lists must have equal lengths, got {', '.join(map(str, sorted(lengths)))}")
    return problems


def _check_batches(batches: Any, status: str, version: int) -> list[str]:
    return _check_traces(batches, {**BATCH_FIELDS, **(BATCH_ACCURACY if version >= 2 else {})}, "batches", status)


def _check_held_out(held_out: Any, status: str) -> list[str]:
    """Which images the held-out checks measure, and the checks (format 2): absent before training starts."""
    if not isinstance(held_out, dict):
        return [f"held_out must be an object, got {_shown(held_out)}"]
    problems = _check_fields(held_out, {"split": _choice(HELD_OUT_SPLITS), "size": _number(1, MAX_COUNT, integer=True)},
                             "held_out.", status, required=True)
    return problems + _check_traces(held_out, {**BATCH_FIELDS, **BATCH_ACCURACY}, "held_out", status)


def _check_final(final: Any, status: str) -> list[str]:
    if not isinstance(final, dict):
        return [f"final must be an object, got {_shown(final)}"]
    if not final:
        return [f"final is empty, but a {status} run has finished"] if status in FINAL_STATUSES else []
    return (_check_fields(final, FINAL_FIELDS, "final.", status, required=True)
            + _check_fields(final, FINAL_SCORES, "final.", status, required=status != "stopped"))


# The required parts with structure of their own: (value, status, format) -> problems.
PARTS: dict[str, Callable[[Any, str, int], list[str]]] = {
    "config": lambda config, status, version: _check_config(config),
    "epochs": lambda epochs, status, version: _check_list_of(epochs, EPOCH_FIELDS, "epochs", status,
                                                             EPOCH_VALIDATION),
    "batches": _check_batches,
    "final": lambda final, status, version: _check_final(final, status),
}


def check_record(data: Any) -> None:
    """Raise SchemaError unless ``data`` (a parsed run.json) is a record digitlab can show and use."""
    if not isinstance(data, dict):
        raise SchemaError(f"run.json must hold an object, got {_shown(data)}")
    problems = _check_format(data)
    if "format" not in data or not problems:  # another format's fields mean other things: say only that
        status, version = data.get("status"), data.get("format", FORMAT)
        for key, check in PARTS.items():
            problems += [f"{key} is missing"] if key not in data else check(data[key], status, version)
        problems += _check_fields(data, REQUIRED, "", status, required=True)
        problems += _check_fields(data, OPTIONAL, "", status, required=False)
        if "held_out" in data:
            problems += _check_held_out(data["held_out"], status)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise SchemaError("run.json: " + "; ".join(problems[:3]) + more)


@functools.lru_cache(maxsize=64)
def _expected_shapes(model: str, options_json: str) -> dict[str, tuple[int, ...]]:
    """The model's own tensor names and shapes, built on the meta device: no weights are allocated."""
    with torch.device("meta"):
        built = create_model(model, **json.loads(options_json))
    return {name: tuple(tensor.shape) for name, tensor in built.state_dict().items()}


def check_weights(path: Path, config: TrainConfig) -> None:
    """Raise SchemaError unless ``path`` is a whole safetensors file of ``config``'s model. Reads only the header:
    safetensors checks there that the file is as long as the tensors it declares."""
    try:
        with safe_open(str(path), "pt") as weights:
            found = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise SchemaError(f"{path.name} cannot be read ({err}); it may be damaged or not a safetensors file") from None
    expected = _expected_shapes(config.model, json.dumps(config.model_options, sort_keys=True))
    if found != expected:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        reshaped = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        detail = "; ".join(f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" for label, names in
                           (("missing", missing), ("unexpected", unexpected), ("other shapes", reshaped)) if names)
        raise SchemaError(f"{path.name} holds the weights of another architecture than this {config.model} ({detail})")
