"""The dashboard through Streamlit's AppTest: every page, the Train form, a real (tiny) training job."""

import json
import re
import statistics
import sys
import types
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from digitlab.bench.strokes import render_digit
from digitlab.config import TrainConfig
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.store import RunStore, write_json

REPO = Path(__file__).resolve().parent.parent
PAGES = ["pages/train.py", "pages/compare.py", "pages/errors.py", "pages/draw.py", "pages/inside.py",
         "pages/study.py", "pages/drawings.py", "pages/board.py"]


@pytest.fixture
def app_env(monkeypatch, tiny_data_root):
    """Point the app at the tiny data and a fresh store; forget what earlier tests cached in this process."""

    def configure(store: Path) -> Path:
        monkeypatch.setenv("DIGITLAB_CHECKPOINTS", str(store))
        monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data_root))
        st.cache_resource.clear()
        st.cache_data.clear()
        return store

    yield configure
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def shipped(app_env, store_with_shipped, tmp_path, monkeypatch):
    """The app over a copy of the shipped checkpoints, its caches and drawings in tmp_path ("cache", "drawings")."""
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITLAB_DRAWINGS", str(tmp_path / "drawings"))
    return app_env(store_with_shipped)


@pytest.fixture
def canvas(monkeypatch):
    """The real canvas cannot be drawn on here: a stand-in returns what ``drawn.image_data`` holds (a 3 at first)."""
    drawn = types.SimpleNamespace(image_data=render_digit(3))
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", types.SimpleNamespace(st_canvas=lambda **_: drawn))
    return drawn


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    return at


def draw_bars(at: AppTest) -> list[str]:
    """Draw's probability bars, one HTML panel per model that guessed."""
    return [panel for html in at.get("html") for panel in html.proto.body.split("data-testid='draw-bars'")[1:]]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def several_runs(app_env, store_with_shipped, tiny_data):
    store = app_env(store_with_shipped)
    config = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=2,
                         name="tiny mlp")
    record_training(RunStore(store), config, train(config, tiny_data))
    return store


@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_renders_with_an_empty_store(app_env, tmp_path, page):
    app_env(tmp_path / "empty-store")
    at = open_app(page)
    assert_clean(at)
    if page in ("pages/compare.py", "pages/errors.py", "pages/draw.py", "pages/inside.py", "pages/drawings.py"):
        assert any("No usable runs yet" in info.value for info in at.info)


@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_renders_with_several_runs(several_runs, page):
    at = open_app(page)
    assert_clean(at)
    assert "Stored runs:** 5" in " ".join(c.value for c in at.sidebar.caption)


def navigation_pages() -> list[str]:
    """The page files of app.py's navigation, as its st.Page calls name them."""
    return re.findall(r'st\.Page\("(pages/[a-z_]+\.py)"', (REPO / "app.py").read_text())


def test_home_links_every_page(app_env, tmp_path):
    """One card with one link per page of the navigation (there were cards for six pages, none for Study)."""
    app_env(tmp_path / "store")
    at = open_app()
    assert at.title[0].value.endswith("digitlab")
    page_files = sorted(f"pages/{p.name}" for p in (REPO / "pages").glob("*.py"))
    assert sorted(navigation_pages()) == sorted(PAGES) == page_files
    linked = [link.proto.page for link in at.get("page_link")]
    assert sorted(linked) == sorted(Path(page).stem for page in PAGES)  # a page link names its URL path


def test_the_form_shows_the_library_messages_and_starts_nothing(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    at.number_input(key="train.batch_size").set_value(0)
    at.number_input(key="train.lr").set_value(-1.0)
    at.text_input(key="train.opt.channels").set_value("16, lots")
    at.run()
    shown = " ".join(m.value for m in at.markdown)
    assert "batch_size must be between 1 and 60000, got 0" in shown
    assert "lr must be above 0 and at most 10, got -1.0" in shown
    assert "channels must be whole numbers separated by commas" in shown
    at.button(key="train.start").click().run()
    assert any("Fix the 3 field(s) marked in red" in e.value for e in at.error), [e.value for e in at.error]
    from digitlab.dashboard.ui import loaders

    assert loaders.coordinator().latest_run is None


def test_the_form_shows_the_model_size_and_refuses_a_model_over_the_cap(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    assert any(c.value.endswith("MB of weights") and "parameters" in c.value for c in at.caption)
    at.text_input(key="train.opt.channels").set_value("512, 512").run()  # 512 x 7 x 7 into 8192: 205 million
    at.number_input(key="train.opt.hidden").set_value(8192).run()
    shown = " ".join(m.value for m in at.markdown)
    assert "parameters; the cap is 50,000,000" in shown
    assert not any(c.value.endswith("MB of weights") for c in at.caption)


def test_presets_fill_the_form(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    at.selectbox(key="train.preset").set_value("seed-cnn").run()
    assert at.selectbox(key="train.optimizer").value == "adadelta"
    assert at.number_input(key="train.batch_size").value == 512
    assert at.text_input(key="train.opt.channels").value == "8, 16"
    at.selectbox(key="train.model").set_value("mlp").run()
    assert at.selectbox(key="train.preset").value == "custom"
    assert at.text_input(key="train.opt.hidden").value == "512, 512, 512"


def test_a_tiny_training_job_runs_and_shows_up_in_compare(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    at.text_input(key="train.name").set_value("app test run")
    at.number_input(key="train.epochs").set_value(2)
    at.button(key="train.start").click().run()
    assert_clean(at)
    from digitlab.dashboard.ui import loaders

    job = loaders.coordinator().latest_run
    assert job is not None and job.join(120)
    at.run()  # the page polls; a full run shows the finished job
    assert_clean(at)
    assert any(m.label == "Status" and m.value == "completed" for m in at.metric)
    assert any(m.label == "Test accuracy" for m in at.metric)
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    table = at.table[0].value
    assert "app test run" in set(table["Run"])
    assert table.loc[table["Run"] == "app test run", "Status"].item() == "completed"


def test_a_running_job_is_followed_by_its_feed_and_its_end_shows_the_summary(app_env, tmp_path):
    """While a job runs the page hands the charts' frame the job's feed to follow (it does not poll the job
    itself); once the job has ended, the page's next run shows its summary and no feed. While no job runs, the
    frame watches the file naming the server's latest job, so that a job started in another tab shows."""
    from dataclasses import replace

    from digitlab.dashboard import live
    from digitlab.dashboard.jobs.follow import JobSnapshot
    from digitlab.dashboard.ui import live_chart, loaders

    app_env(tmp_path / "store")
    going = JobSnapshot(state="running", config=TrainConfig(model="mlp", epochs=1), owner="", started_at=5.0,
                        run_id="r1", train_size=1000, samples_seen=500, images_per_s=1000.0, batches_per_epoch=10,
                        epoch=1, batch=5, version=3)
    done = replace(going, state="finished", status="completed", samples_seen=1000, version=4,
                   final={"test_acc": 0.99, "test_loss": 0.05, "train_s": 1.0})

    class Job:  # what the page and the feed read of a job
        stop_grace_s = 10.0
        snap = going

        def snapshot(self):
            return self.snap

        @property
        def running(self):
            return self.snap.running

        def join(self, timeout=None):
            return not self.snap.running

    def frame_args(at):
        (frame,) = at.get("component_instance")
        return json.loads(frame.proto.json_args)

    def latest_job():
        return json.loads((live_chart.FOLDER / live_chart.LATEST_JOB_FILE).read_text())["job"]

    idle = open_app("pages/train.py")  # no job yet: the frame watches for the first, started in any tab
    assert_clean(idle)
    assert frame_args(idle)["watch"]["url"] == live_chart.LATEST_JOB_FILE and frame_args(idle)["watch"]["job"] is None

    loaders.coordinator()._latest_run = job = Job()
    at = open_app("pages/train.py")
    assert_clean(at)
    assert at.button(key="train.stop")
    args = frame_args(at)
    assert args["feed"]["job"] == live.job_key(going) and args["payload"]["running"]
    assert args["watch"] is None and latest_job() == live.job_key(going)  # what an idle tab's frame sees
    feed = json.loads((live_chart.FOLDER / args["feed"]["url"]).read_text())
    assert feed["job"] == live.job_key(going) and feed["progress"]["fraction"] == 0.5
    assert not at.metric

    job.snap = done  # the feed writes this, and the frame sets its value: the fragment runs again
    at.run()
    assert_clean(at)
    assert any(m.label == "Test accuracy" and m.value == "99.00%" for m in at.metric)
    assert frame_args(at)["feed"] is None and not frame_args(at)["payload"]["running"]
    assert frame_args(at)["watch"]["job"] == live.job_key(done)  # it watches for a job newer than the one it shows
    live_chart.follow(job).join(timeout=10)  # its feed has seen the end too
    assert not json.loads((live_chart.FOLDER / live.FEED_FILE).read_text())["running"]


def test_a_second_start_while_training_says_who_is_training(app_env, tmp_path):
    app_env(tmp_path / "store")
    first = open_app("pages/train.py")
    first.number_input(key="train.epochs").set_value(300)
    first.button(key="train.start").click().run()
    second = open_app("pages/train.py")
    second.button(key="train.start").click().run()
    warning = " ".join(w.value for w in second.warning)
    assert "Already training" in warning and "another tab" in warning
    from digitlab.dashboard.ui import loaders

    job = loaders.coordinator().latest_run
    job.stop()
    assert job.join(60) and job.snapshot().status == "stopped"


def test_compare_selects_tables_and_deletes_with_confirmation(several_runs):
    at = open_app("pages/compare.py")
    table = at.table[0].value
    assert {"tiny mlp", "mlp (shipped)", "cnn (shipped)"} <= set(table["Run"])
    assert list(table.columns[:5]) == ["Run", "Architecture", "Hyperparameters", "Parameters", "Test accuracy"]
    run_id = [r.id for r in RunStore(several_runs).list().runs if r.name == "tiny mlp"][0]
    at.session_state["compare.view"] = "Rename or delete"  # only the open tab is drawn
    at.run()
    at.button(key="compare.manage.delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="compare.manage.yes").click().run()
    assert_clean(at)
    assert not (several_runs / run_id).exists()
    assert "tiny mlp" not in set(at.table[0].value["Run"])
    assert (several_runs / "shipped-cnn").exists()


def gallery(at: AppTest) -> list[tuple[int, int]]:
    """(true, predicted) of every card in the gallery, from the cards' HTML."""
    cards = (re.search(r'data-true="(\d)" data-predicted="(\d)"', e.proto.body) for e in at.get("html"))
    return [(int(card[1]), int(card[2])) for card in cards if card]


@pytest.mark.parametrize("run_id", ["shipped-mlp", "shipped-lenet", "shipped-cnn", "shipped-resnet"])
def test_errors_renders_for_each_shipped_checkpoint(several_runs, run_id):
    at = open_app("pages/errors.py")
    at.selectbox(key="errors.run").set_value(run_id).run()
    assert_clean(at)
    header = at.subheader[0].value
    errors = int(header.split(" of ")[0].replace(",", ""))
    assert header.endswith("% accuracy)")
    shown = gallery(at)
    assert len(shown) == min(24, errors)
    assert len([b for b in at.button if (b.key or "").startswith("errors.inspect.")]) == len(shown)


def test_error_filters_change_the_gallery(several_runs):
    at = open_app("pages/errors.py")
    tiny = [r.id for r in RunStore(several_runs).list().runs if r.name == "tiny mlp"][0]
    at.selectbox(key="errors.run").set_value(tiny).run()
    everything = gallery(at)
    assert everything  # two epochs on 300 images leave mistakes to show
    assert all(true != predicted for true, predicted in everything)
    first_true = everything[0][0]
    at.selectbox(key="errors.true").set_value(first_true).run()
    assert_clean(at)
    filtered = gallery(at)
    assert filtered and all(true == first_true for true, _ in filtered)
    at.slider(key="errors.confidence").set_value((0.0, 0.0)).run()
    assert gallery(at) == []
    assert any("clear the filters" in c.value for c in at.caption)


def test_draw_renders_with_an_empty_canvas(several_runs):
    at = open_app("pages/draw.py")
    assert_clean(at)
    assert any("Draw a digit" in info.value for info in at.info)
    assert not draw_bars(at)  # no zero-filled bars
    assert set(at.multiselect(key="draw.models").value) == {"shipped-mlp", "shipped-lenet", "shipped-cnn",
                                                              "shipped-resnet"}


def test_draw_keeps_apart_two_runs_with_the_same_name(several_runs, monkeypatch):
    """Draw used to key the models by name: two runs called alike became one, and the guesses were mislabelled."""
    import shutil
    import sys
    import types

    from digitlab.bench.strokes import render_digit

    for twin in ("twin-a", "twin-b"):
        shutil.copytree(several_runs / "shipped-cnn", several_runs / twin)
        data = json.loads((several_runs / twin / "run.json").read_text())
        write_json(several_runs / twin / "run.json", {**data, "shipped": False, "name": "twin"})
    drawn = types.SimpleNamespace(image_data=render_digit(3))
    # The real canvas cannot be drawn on here: a stand-in returns a drawn 3, as the component would.
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", types.SimpleNamespace(st_canvas=lambda **_: drawn))
    at = open_app("pages/draw.py")
    at.multiselect(key="draw.models").set_value(["twin-a", "twin-b", "shipped-mlp"]).run()
    assert_clean(at)
    panels = draw_bars(at)
    assert len(panels) == 3, panels
    assert len({re.search(r"background:(#[0-9A-Fa-f]{6})", panel.replace("#c9d3df", "")).group(1)
                for panel in panels}) == 3  # each run in its own colour
    assert "3 models answered" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/errors.py", "pages/draw.py"])
def test_unreadable_runs_are_listed_with_their_reason_and_never_crash_a_page(several_runs, page):
    (several_runs / "broken-run").mkdir()
    (several_runs / "broken-run" / "run.json").write_text("{not json")
    (several_runs / "foreign").mkdir()
    (several_runs / "foreign" / "model.pt").write_bytes(b"\x80\x04pickle")
    at = open_app(page)
    assert_clean(at)
    expander = [e for e in at.expander if "2 unreadable run folder(s)" in e.label]
    assert expander
    reasons = " ".join(w.value for w in expander[0].warning)
    assert "broken-run" in reasons and "not valid JSON" in reasons and "not a digitlab run" in reasons


def test_compare_deletes_an_unreadable_folder_after_confirmation(several_runs):
    broken = several_runs / "broken-run"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    at = open_app("pages/compare.py")
    at.button(key="unreadable.broken-run.delete").click().run()
    assert any("cannot be undone" in w.value and "broken-run" in w.value for w in at.warning)
    assert broken.exists()
    at.button(key="unreadable.broken-run.yes").click().run()
    assert_clean(at)
    assert not broken.exists()
    assert not [e for e in at.expander if "unreadable" in e.label]
    assert (several_runs / "shipped-cnn").exists()


def test_live_charts_refuse_a_name_used_twice():
    """Each live chart is found again by its name on the next refresh: two charts with one name would share it."""
    from plotly import graph_objects as go

    from digitlab.dashboard.ui.live_chart import live_charts

    with pytest.raises(ValueError, match="unique across rows"):
        live_charts([{"loss": go.Figure()}, {"acc": go.Figure(), "loss": go.Figure()}], key="train.charts")


def test_the_sidebar_prefetches_the_element_code_of_this_streamlit(app_env, tmp_path):
    """The prefetch names Streamlit's element code by its files: a Streamlit whose files are named otherwise would
    make it quietly do nothing, and this test says so."""
    from digitlab.dashboard.ui import bootstrap

    app_env(tmp_path / "store")
    names = bootstrap.page_element_code_files()
    assert [name.split(".")[0] for name in names] == list(bootstrap.PAGE_ELEMENT_CODE)
    assert all((bootstrap.STREAMLIT_SCRIPTS / name).is_file() for name in names)
    at = open_app()
    scripts = [e.proto.body for e in at.sidebar if type(e).__name__ == "Html" and e.proto.unsafe_allow_javascript]
    assert len(scripts) == 1 and all(f'"{name}"' in scripts[0] for name in names)


@pytest.fixture
def read_only_app(several_runs, monkeypatch):
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    return several_runs


def stale_click(at: AppTest, key: str, monkeypatch) -> AppTest:
    """Click ``key`` as a tab drawn before read-only mode came on would: the control is enabled when clicked, and
    the click reaches a server that is read-only by then. (AppTest, like a browser, cannot click a disabled one.)
    Streamlit drops such a click, since the control is disabled when the script meets it; the actions behind the
    controls refuse on their own too (test_read_only_actions_refuse_whoever_calls_them)."""
    monkeypatch.delenv("DIGITLAB_READ_ONLY")
    at.run()
    button = at.button(key=key)
    assert not button.disabled
    button.click()
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    return at.run()


def test_read_only_mode_disables_train_and_refuses_it_when_forced(read_only_app, monkeypatch):
    at = open_app("pages/train.py")
    assert_clean(at)
    button = at.button(key="train.start")
    assert button.disabled and "read-only" in button.help
    assert any("read-only" in i.value for i in at.info)
    stale_click(at, "train.start", monkeypatch)
    assert_clean(at)
    from digitlab.dashboard.ui import loaders

    assert loaders.coordinator().latest_run is None


def test_read_only_mode_refuses_stop_even_when_forced(several_runs, monkeypatch):
    from digitlab.dashboard.ui import loaders

    at = open_app("pages/train.py")
    at.number_input(key="train.epochs").set_value(300)
    at.button(key="train.start").click().run()
    job = loaders.coordinator().latest_run
    try:
        monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
        at.run()
        assert at.button(key="train.stop").disabled
        stale_click(at, "train.stop", monkeypatch)
        assert_clean(at)
        assert job.running and not job.snapshot().stop_requested
    finally:
        monkeypatch.delenv("DIGITLAB_READ_ONLY")
        job.stop()
        job.join(60)


def test_read_only_mode_refuses_rename_and_delete_even_when_forced(read_only_app, monkeypatch):
    store = RunStore(read_only_app)
    run = next(r for r in store.list().runs if r.name == "tiny mlp")
    at = open_app("pages/compare.py")
    at.session_state["compare.view"] = "Rename or delete"
    at.run()
    assert at.button(key="compare.manage.rename").disabled and at.button(key="compare.manage.delete").disabled
    at.text_input(key=f"compare.manage.name.{run.id}").set_value("renamed anyway")
    stale_click(at, "compare.manage.rename", monkeypatch)
    at.session_state["compare.manage.confirm"] = run.id  # the confirmation, forced through session state
    at.run()
    assert at.button(key="compare.manage.yes").disabled
    stale_click(at, "compare.manage.yes", monkeypatch)
    assert_clean(at)
    assert store.read(run.id).name == "tiny mlp"


def test_read_only_mode_refuses_to_delete_an_unreadable_folder(read_only_app, monkeypatch):
    broken = read_only_app / "broken-run"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    at = open_app("pages/compare.py")
    assert at.button(key="unreadable.broken-run.delete").disabled
    at.session_state["unreadable.confirm"] = "broken-run"  # forced through session state
    at.run()
    assert at.button(key="unreadable.broken-run.yes").disabled
    stale_click(at, "unreadable.broken-run.yes", monkeypatch)
    assert_clean(at)
    assert broken.exists()


def test_read_only_actions_refuse_whoever_calls_them(read_only_app):
    """What every state-changing control calls, called directly: each refuses with the reason, and nothing changes."""
    from digitlab.dashboard.ui import actions, loaders
    from digitlab.dashboard.access import ReadOnlyError

    store = RunStore(read_only_app)
    run = next(r for r in store.list().runs if r.name == "tiny mlp")
    (read_only_app / "broken-run").mkdir()
    calls = {
        "Renaming a run": lambda: actions.rename_run(run.id, "renamed anyway"),
        "Deleting a run": lambda: actions.delete_run(run.id),
        "Deleting a run ": lambda: actions.delete_run("broken-run"),
        "Training": lambda: loaders.coordinator().start_run(TrainConfig(model="mlp", epochs=1)),
    }
    for action, call in calls.items():
        with pytest.raises(ReadOnlyError, match=f"{action.strip()} is turned off"):
            call()
    assert store.read(run.id).name == "tiny mlp" and (read_only_app / "broken-run").exists()
    assert loaders.coordinator().latest_run is None


def test_read_only_mode_still_shows_every_page(read_only_app):
    for page in PAGES:
        at = open_app(page)
        assert_clean(at)
    assert any("Read-only mode" in c.value for c in at.sidebar.caption)


@pytest.fixture
def repeated_runs(app_env, store_with_shipped, tiny_data):
    """Three runs of one config (seeds 0, 1, 2) and one of another, in a store beside the shipped runs."""
    store = app_env(store_with_shipped)
    repeat = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=2)
    for seed in range(3):
        record_training(RunStore(store), repeat.replace(seed=seed, name=f"repeat {seed}"),
                        train(repeat.replace(seed=seed), tiny_data))
    other = repeat.replace(lr=0.05, name="other")
    record_training(RunStore(store), other, train(other, tiny_data))
    return store


def chart_traces(at: AppTest, key_part: str) -> list[dict]:
    (chart,) = [c for c in at.get("plotly_chart") if key_part in c.proto.id]
    return json.loads(chart.proto.spec)["data"]


def test_compare_groups_repeats_into_a_band_and_keeps_a_single_run_single(repeated_runs):
    trained = [r.id for r in RunStore(repeated_runs).list().runs if not r.shipped]
    at = open_app("pages/compare.py")
    at.multiselect(key="compare.runs").set_value(trained).run()
    assert_clean(at)
    assert len(at.table[0].value) == 4  # ungrouped: one row per run
    assert len(chart_traces(at, "compare.chart.test_acc")) == 4
    at.toggle(key="compare.group").set_value(True).run()
    assert_clean(at)
    table = at.table[0].value
    assert sorted(table["Runs"]) == [1, 3]
    three = table[table["Runs"] == 3].iloc[0]
    runs = [r for r in RunStore(repeated_runs).list().runs if r.name.startswith("repeat")]
    accs = [r.test_acc for r in runs]
    assert three["Mean test accuracy"] == pytest.approx(sum(accs) / 3)
    assert sorted(three["Seeds"].split(", ")) == ["0", "1", "2"]
    assert three["Std"] == pytest.approx(statistics.stdev(accs))
    assert table[table["Runs"] == 1]["Std"].isna().all()  # a single run has no spread
    traces = chart_traces(at, "compare.chart.test_acc")
    bands = [t for t in traces if t.get("fill") == "tonexty"]
    means = [t for t in traces if t.get("showlegend", True) is not False]
    assert len(bands) == 1 and len(means) == 2  # one band (the 3 repeats), two mean lines, no band for "other"
    assert any("n=3" in t["name"] for t in means) and any("n=1" in t["name"] for t in means)


def test_compare_groups_of_one_run_each_draw_single_runs_without_error(several_runs):
    at = open_app("pages/compare.py")
    at.toggle(key="compare.group").set_value(True).run()
    assert_clean(at)
    traces = chart_traces(at, "compare.chart.test_acc")
    assert not [t for t in traces if t.get("fill") == "tonexty"]
    assert set(at.table[0].value["Runs"]) == {1}


def test_compare_says_whether_two_runs_differ_significantly(repeated_runs):
    at = open_app("pages/compare.py")
    ids = [r.id for r in RunStore(repeated_runs).list().runs if not r.shipped]
    at.multiselect(key="compare.runs").set_value(ids[:2]).run()
    line = " ".join(m.value for m in at.markdown)
    assert re.search(r"is right on \d+ images? that .* gets wrong, .* on \d+ that .*: p = ", line), line
    at.selectbox(key="compare.significance.second").set_value(ids[0]).run()
    assert any("compared with itself" in w.value for w in at.warning)
    assert_clean(at)


def test_errors_shows_the_significance_line_for_its_second_run(several_runs):
    at = open_app("pages/errors.py")
    at.selectbox(key="errors.versus").set_value("shipped-mlp").run()
    assert_clean(at)
    assert any(re.search(r"p = [\d.<]", c.value) for c in at.caption), [c.value for c in at.caption]


def test_the_form_refuses_a_validation_size_out_of_range(app_env, tmp_path):
    app_env(tmp_path / "store")
    at = open_app("pages/train.py")
    at.number_input(key="train.validation_size").set_value(30001).run()
    assert "validation_size must be between 0 and 30000, got 30001" in " ".join(m.value for m in at.markdown)
