"""A race on the Train page through AppTest: put together, started, followed by the charts' frame, ended with its
table and Compare; every bad input refused with its reason."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.store import RunStore
from tests.test_app import app_env, assert_clean, open_app, stale_click  # noqa: F401  (app_env: a fixture)

pytestmark = pytest.mark.timeout(300)


def frame_args(at: AppTest) -> dict:
    (frame,) = at.get("component_instance")
    return json.loads(frame.proto.json_args)


def race_tab(at: AppTest) -> AppTest:
    """Train's race tab starts empty: the classroom set, then ``changes`` of the test."""
    return at.button(key="race.set.classroom").click().run()


def test_a_race_put_together_on_train_runs_side_by_side_and_ends_with_its_table_and_compare(app_env, tmp_path):
    store = app_env(tmp_path / "store")
    at = race_tab(open_app("pages/train.py"))
    assert_clean(at)
    assert [label for label, _ in at.session_state["race.lanes"]] == ["race-mlp", "race-lenet", "race-cnn",
                                                                      "race-resnet"]
    at.button(key="race.remove.0").click().run()  # the MLP out
    at.selectbox(key="race.preset").set_value("fast")
    at.button(key="race.add").click().run()  # fast is race-cnn's configuration: a repeat, on the next seed
    at.text_input(key="race.name").set_value("page race")
    at.button(key="race.start").click().run()
    assert_clean(at)
    race = Coordinator.for_store(RunStore(store)).latest_race
    assert race.spec.name == "page race" and len(race.lanes) == 4
    args = frame_args(at)
    bars = args["payload"]["progress"]
    assert [bar["name"] for bar in bars] == ["race-lenet", "race-cnn", "race-resnet", "fast"]  # the race's order
    assert all(bar["stoppable"] for bar in bars) and args["feed"] and args["x_axis"] == "samples"
    assert [fig for row in args["payload"]["rows"] for fig in row] == ["acc", "train_loss", "held_loss"]
    accuracy = json.loads(args["payload"]["figures"]["acc"])
    assert len(accuracy["data"]) == 4 and set(accuracy["data"][0]["meta"]["x"]) == {"samples", "epoch", "time"}
    assert race.join(240)
    at.run()
    assert_clean(at)
    (table,) = at.table
    assert "race-lenet" in str(table.value) and "completed" in str(table.value)
    seeds = {s.config.name: s.config.seed for s in race.snapshots()}
    assert seeds["page race: fast"] == seeds["page race: race-cnn"] + 1  # a repeat, not a copy
    listed = open_app("pages/study.py")  # a race is a study: listed there too, with its trials
    assert_clean(listed)
    assert any("page race · race" in header.value for header in listed.subheader)
    assert list(listed.dataframe[0].value["State"]) == ["complete"] * 4
    at.button(key="race.compare").click().run()
    assert sorted(at.session_state["compare.runs"]) == sorted(race.run_ids())
    assert at.session_state["compare.group"] is True  # fast and race-cnn repeat each other: grouped
    assert_clean(at)
    charts = {chart.proto.id for chart in at.get("plotly_chart")}
    assert any("held_out_acc" in chart for chart in charts)  # the checks inside each epoch, grouped per check
    assert {r.study["name"] for r in RunStore(store).list().runs} == {"page race"}


def test_a_race_of_one_is_refused_with_what_to_do(app_env, tmp_path):
    store = app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    at.selectbox(key="race.preset").set_value("fast")
    at.button(key="race.add").click().run()
    at.button(key="race.start").click().run()
    assert any("a race needs 2 to 8 configurations, got 1\\: add another one" in e.value for e in at.error)
    assert Coordinator.for_store(RunStore(store)).latest_race is None


def test_at_most_eight_configurations_can_be_added(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    for _ in range(8):
        at.button(key="race.add").click().run()
    assert len(at.session_state["race.lanes"]) == 8
    assert at.button(key="race.add").disabled and at.button(key="race.add_form").disabled


def test_a_configuration_over_the_parameter_cap_is_refused_naming_it(app_env, tmp_path, monkeypatch):
    store = app_env(tmp_path / "store")
    at = race_tab(open_app("pages/train.py"))
    monkeypatch.setenv("DIGITLAB_MAX_PARAMETERS", "100000")  # race-mlp has 536,586
    at.button(key="race.start").click().run()
    assert any("race configuration 'race-mlp'" in e.value and "parameters" in e.value for e in at.error)
    assert Coordinator.for_store(RunStore(store)).latest_race is None


def test_a_race_while_a_run_trains_is_refused_with_the_reason(app_env, tmp_path):
    from tests.test_jobs import SLOW

    store = app_env(tmp_path / "store")
    run = Coordinator.for_store(RunStore(store)).start_run(SLOW)
    try:
        at = race_tab(open_app("pages/train.py"))
        at.button(key="race.start").click().run()
        assert any("A run is training\\: one job at a time" in e.value for e in at.error)
    finally:
        run.stop()
        assert run.join(30)


def test_read_only_mode_starts_no_race(app_env, tmp_path, monkeypatch):
    store = app_env(tmp_path / "store")
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    at = race_tab(open_app("pages/train.py"))
    assert at.button(key="race.start").disabled
    stale_click(at, "race.start", monkeypatch)
    assert Coordinator.for_store(RunStore(store)).latest_race is None
