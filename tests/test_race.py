"""Races in the library (digitlab.study.race): 2 to 8 configurations stored as a study, one trial each, named after
their lanes; repeats of one configuration train with their own seeds."""

import pytest

from digitlab import study
from digitlab.config import TrainConfig
from digitlab.engine import RunStart
from digitlab.store import RunStore

TINY = TrainConfig(model="mlp", model_options={"hidden": [16]}, lr=0.01, batch_size=64, epochs=1)
CNN = TrainConfig(model="cnn", model_options={"channels": [4, 8], "hidden": 16}, lr=0.01, batch_size=64, epochs=1)


def test_a_race_is_a_study_of_one_trial_per_lane_with_repeats_on_their_own_seeds():
    spec = study.define_race("class", [("tiny", TINY), ("tiny", TINY), ("cnn", CNN)])
    assert spec.kind == "race" and spec.total == 3
    configs = [spec.config_for({"config": c, "repeat": 0}) for c in spec.grid["config"]]
    assert [c.name for c in configs] == ["tiny", "tiny (2)", "cnn"]
    assert [c.seed for c in configs] == [TINY.seed, TINY.seed + 1, CNN.seed]  # a repeat, not a copy
    assert configs[0].replace(name="", seed=0) == configs[1].replace(name="", seed=0) == TINY.replace(seed=0)
    assert configs[2].model == "cnn" and configs[2].validation_size == 0  # as given: no study default applied


@pytest.mark.parametrize("lanes, message", [
    ([("tiny", TINY)], "a race needs 2 to 8 configurations, got 1: add another one"),
    ([("tiny", TINY)] * 9, "a race needs 2 to 8 configurations, got 9: remove some"),
    ([("tiny", TINY), ("huge", TINY.replace(model_options={"hidden": [4096, 4096, 4096, 4096]}))],
     "race configuration 'huge': "),
    ([("tiny", TINY), ("bad", TINY.replace(lr=-1.0))], "race configuration 'bad': lr must be above 0"),
])
def test_a_race_that_cannot_run_is_refused_with_the_reason(lanes, message, monkeypatch):
    monkeypatch.setenv("DIGITLAB_MAX_PARAMETERS", "1000000")
    with pytest.raises(study.StudyError) as refused:
        study.define_race("r", lanes)
    assert message in str(refused.value)


def test_a_race_name_must_leave_room_for_its_runs_names():
    with pytest.raises(study.StudyError, match="a race name needs 1 to 40 characters, got 41"):
        study.define_race("x" * 41, [("a", TINY), ("b", TINY)])


def test_each_worker_takes_one_lane_and_names_its_run_after_it(tiny_data, tmp_path):
    spec = study.define_race("duel", [("tiny", TINY), ("cnn", CNN)])
    storage = study.open_storage(out=tmp_path)
    study.create_or_resume(spec, storage)
    seen = []
    taken = [study.work("duel", storage, tiny_data, RunStore(tmp_path), max_trials=1,
                        on_event=lambda recorder, event: seen.append(type(event).__name__)) for _ in range(3)]
    assert taken == [1, 1, 0]  # one lane each; nothing left for a third
    runs = sorted(RunStore(tmp_path).list().runs, key=lambda r: r.study["trial"])
    assert [r.name for r in runs] == ["duel: tiny", "duel: cnn"] and {r.status for r in runs} == {"completed"}
    assert seen.count(RunStart.__name__) == 2 and "HeldOutScore" in seen and seen[-1] == "RunEnd"
    summary = study.show("duel", storage)
    assert summary.count("complete") == 2 and summary.total == 2
