"""The Study page through AppTest: a study built on the page runs to its end; Train says a study runs and refuses;
Stop ends it; bad input is named; read-only mode disables starting and stopping."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.store import RunStore
from tests.test_app import REPO, app_env, assert_clean  # noqa: F401  (app_env: a fixture)

pytestmark = pytest.mark.timeout(240)


def open_study_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    return at.switch_page("pages/study.py").run()


def build(at: AppTest, name: str, repeat: int = 2, epochs: int = 1, grid: str = "", workers: int = 1) -> AppTest:
    at.text_input(key="study.name").set_value(name)
    at.selectbox(key="study.base").set_value("fast")
    at.text_area(key="study.grid").set_value(grid)
    at.number_input(key="study.repeat").set_value(repeat)
    at.number_input(key="study.epochs").set_value(epochs)
    at.number_input(key="study.validation").set_value(50)
    at.number_input(key="study.workers").set_value(workers)
    return at.button(key="study.start_built").click().run()


def test_a_repeat_built_on_the_page_runs_to_its_end(app_env, tmp_path):
    store = app_env(tmp_path / "store")
    at = build(open_study_page(), "page rep")
    assert_clean(at)
    job = Coordinator.for_store(RunStore(store)).latest_study
    assert job.join(180)
    at.run()
    assert_clean(at)
    assert any("study=page rep trials=2 complete=2" in c.value for c in at.caption)
    assert list(at.dataframe[0].value["State"]) == ["complete", "complete"]
    runs = RunStore(store).list().runs
    assert sorted(r.study["trial"] for r in runs) == [0, 1] and {r.status for r in runs} == {"completed"}
    at.button(key="study.compare").click().run()
    assert at.session_state["compare.group"] is True and sorted(at.session_state["compare.runs"]) == sorted(
        r.id for r in runs)


def test_train_refuses_while_a_study_runs_and_stop_ends_it(app_env, tmp_path):
    """Two workers: Stop reaches the study's process and, through it, both of its worker processes."""
    store = app_env(tmp_path / "store")
    at = build(open_study_page(), "long", repeat=3, epochs=500, workers=2)
    job = Coordinator.for_store(RunStore(store)).latest_study
    assert job.running
    train = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run().switch_page("pages/train.py").run()
    assert any("Study **long** is running" in i.value for i in train.info)
    assert any("**Study** long is running" in c.value for c in train.sidebar.caption)
    train.button(key="train.start").click().run()
    assert any("Train is off until it ends" in w.value for w in train.warning)
    at.run()
    deadline = time.monotonic() + 60
    # Both workers have begun training (Stop must reach both: a worker stopped before its run starts makes none).
    while len([r for r in RunStore(store).list().runs if r.status == "running"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at.button(key="study.stop").click().run()
    assert job.join(60)
    assert not job.running and job.process.exitcode == 0
    at.run()
    assert_clean(at)
    runs = RunStore(store).list().runs
    assert len([r for r in runs if r.status == "stopped"]) == 2 and all(r.status == "stopped" for r in runs)


def test_bad_study_input_is_named_on_the_page(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = build(open_study_page(), "bad", grid="colour=red")
    assert any("grid colour\\: unknown field 'colour'" in e.value for e in at.error)  # Markdown-escaped
    assert Coordinator.for_store(RunStore(tmp_path / "store")).latest_study is None


def test_read_only_mode_disables_starting_a_study(app_env, tmp_path, monkeypatch):
    app_env(tmp_path / "store")
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    at = open_study_page()
    assert_clean(at)
    assert at.button(key="study.start_seed").disabled and at.button(key="study.start_built").disabled


def test_after_a_search_the_page_draws_parallel_coordinates_and_importances(app_env, tmp_path):
    store = app_env(tmp_path / "store")
    at = open_study_page()
    at.text_area(key="study.search").set_value("lr=1e-3:1e-2:log\nbatch_size=32,64")
    at.number_input(key="study.trials").set_value(3)
    at = build(at, "page search", repeat=1)
    job = Coordinator.for_store(RunStore(store)).latest_study
    assert job.join(180)
    at.run()
    assert_clean(at)
    assert any("study=page search trials=3 complete=3" in c.value for c in at.caption)
    charts = {chart.proto.id for chart in at.get("plotly_chart")}
    assert len(charts) == 3  # best so far, parallel coordinates, importances


@pytest.mark.parametrize(("trials", "step"), [(2, 1), (9, 1), (40, 4), (200, 20)])
def test_the_best_so_far_chart_marks_whole_trials(trials, step):
    # Plotly's own ticks for 2 trials were 0, 0.2, 0.4, ...: a trial number is a whole number.
    from digitlab import study
    from digitlab.dashboard.study_figures import best_so_far_figure

    attrs = dict.fromkeys(study.RESULT_ATTRS)
    rows = [study.TrialRow(n, "complete", {}, 1, {**attrs, "val_acc": 0.5 + n / 1000}) for n in range(trials)]
    xaxis = best_so_far_figure(study.Summary("s", rows, trials)).layout.xaxis
    assert (xaxis.tick0, xaxis.dtick) == (0, step)


HOSTILE_STUDY = "**[x](http://e)**"


def test_a_hostile_study_name_renders_as_plain_text_on_study_and_train(app_env, tmp_path):
    """Study names reached Markdown unescaped: the summary line's caption, a refusal's error, Train's busy warning."""
    from tests.test_fuzz_records import leaks

    store = app_env(tmp_path / "store")
    at = build(open_study_page(), HOSTILE_STUDY, repeat=1, epochs=500)
    job = Coordinator.for_store(RunStore(store)).latest_study
    try:
        assert job.running
        at.run()
        assert_clean(at)
        assert any("study=\\*\\*\\[x\\]\\(http\\://e\\)\\*\\*" in c.value for c in at.caption)
        assert leaks(at) == []
        train = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run().switch_page("pages/train.py").run()
        train.button(key="train.start").click().run()
        assert any("Train is off until it ends" in w.value for w in train.warning)
        assert leaks(train) == []
    finally:
        job.stop()
        assert job.join(60)
    at = build(at, HOSTILE_STUDY, repeat=2, epochs=500)  # another definition under the same name is refused
    assert any("exists with another definition" in e.value for e in at.error)
    assert leaks(at) == []
