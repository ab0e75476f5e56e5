"""A race: 2 to 8 configurations trained at the same time, one worker each, stored as a study so that it is listed,
resumable and comparable like any other.

Its grid has one field, the whole configuration (CONFIG_PARAM), with one value per lane: each its own config, named
by its label (a preset's name, or "custom"), and a repeat of an earlier lane's config trains with the next seed, so
that repeats are repeats and not copies. Each run is named "<race>: <label>".
"""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState

from digitlab.config import TrainConfig
from digitlab.study.attempts import COMBINATION_ATTR
from digitlab.study.spec import CONFIG_PARAM, REPEAT_PARAM, StudyError, StudySpec

MIN_LANES, MAX_LANES = 2, 8
MAX_RACE_NAME = 40  # its runs are named "<race>: <label>", and a run name has at most 80 characters
MAX_LABEL = 38


def define_race(name: str, lanes: list[tuple[str, TrainConfig]]) -> StudySpec:
    """A race of ``lanes`` [(label, config)], checked: StudyError naming what is wrong and what to do."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_RACE_NAME:
        raise StudyError(f"a race name needs 1 to {MAX_RACE_NAME} characters, got {len(name)}")
    if not MIN_LANES <= len(lanes) <= MAX_LANES:
        raise StudyError(f"a race needs {MIN_LANES} to {MAX_LANES} configurations, got {len(lanes)}: "
                         + ("add another one" if len(lanes) < MIN_LANES else "remove some"))
    configs, seen_labels, seen_configs = [], {}, {}
    for label, config in lanes:
        label = " ".join(str(label).split())[:MAX_LABEL] or "custom"
        errors = config.validate()
        if errors:
            raise StudyError(f"race configuration {label!r}: " + "; ".join(errors.values()))
        same = json.dumps(config.replace(name="").to_dict(), sort_keys=True)
        repeats = seen_configs[same] = seen_configs.get(same, -1) + 1
        seen_labels[label] = seen_labels.get(label, 0) + 1
        shown = label if seen_labels[label] == 1 else f"{label} ({seen_labels[label]})"
        configs.append(config.replace(name=shown, seed=config.seed + repeats).to_dict())
    return StudySpec(name, configs[0], grid={CONFIG_PARAM: configs})


def run_name(spec: StudySpec, config: TrainConfig, trial_number: int) -> str:
    """A trial's run name: "<race>: <label>" for a race, "<study> #<trial>" for any other study."""
    if spec.kind == "race":
        return f"{spec.name}: {config.name}"
    return f"{spec.name} #{trial_number}"


def waiting_configs(found: optuna.Study, spec: StudySpec) -> list[TrainConfig]:
    """The race's configurations that wait for a lane (enqueued and not yet taken), in lane order: all of them in a
    new race, those without a run in a resumed one."""
    trials = found.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    waiting = {t.user_attrs.get(COMBINATION_ATTR) for t in trials}
    return [spec.config_for({CONFIG_PARAM: json.loads(params[CONFIG_PARAM]), REPEAT_PARAM: params[REPEAT_PARAM]})
            for params in spec.fixed_params() if json.dumps(params, sort_keys=True) in waiting]
