"""Train and Compare on real MNIST in a real browser: live curves, Stop, reload, a second tab, then Compare.

The tests run in file order and build on each other: the runs trained here are the ones Compare shows.
"""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import wait_until

LIVE_CHARTS, LOSS_CHART = "train.charts", "batch_loss"


@pytest.fixture(autouse=True)
def needs_real_data(app_server):
    if not app_server.real_data:
        pytest.skip("training in the browser needs the real MNIST (set DIGITLAB_DATA)")


def metric(tab, label: str) -> str:
    card = tab.page.locator("[data-testid='stMetric']").filter(has=tab.page.get_by_text(label, exact=True))
    return card.locator("[data-testid='stMetricValue']").inner_text().strip()


def loss_points(tab) -> int:
    lengths = tab.trace_lengths(LIVE_CHARTS, LOSS_CHART)
    return lengths[0] if lengths else 0


def start_training(tab, epochs: int | None = None, name: str | None = None) -> None:
    if epochs is not None:
        tab.enter_text("train.epochs", str(epochs))
    if name is not None:
        tab.enter_text("train.name", name)
    tab.button("train.start").click()
    tab.button("train.stop").wait_for(timeout=30000)


# Counts the page's script runs (a fragment's included) from now on: Streamlit marks each on the app's root.
COUNT_SCRIPT_RUNS = """() => {
    window.scriptRuns = 0;
    const app = document.querySelector("[data-testid='stApp']");
    new MutationObserver(() => {
        if (app.getAttribute("data-test-script-state") === "running") window.scriptRuns += 1;
    }).observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
}"""


def test_fast_preset_curves_grow_live_and_it_reaches_98_5_percent(new_tab):
    tab = new_tab().open("train")
    start_training(tab, name="e2e fast")
    tab.wait_for_idle()
    tab.page.evaluate(COUNT_SCRIPT_RUNS)
    seen = [loss_points(tab)]
    deadline = time.time() + 60
    while len(set(seen)) < 3 and time.time() < deadline:  # the chart gained points at least twice
        time.sleep(0.5)
        seen.append(loss_points(tab))
    assert len(set(seen)) >= 3, seen
    assert seen == sorted(seen)  # points are added, never reset
    assert tab.button("train.stop").is_visible()  # all while it was still training
    # The charts grew without a script run: each one took ~0.17 s of the browser's CPU from the training.
    assert tab.page.evaluate("window.scriptRuns") == 0
    tab.page.get_by_text("Test accuracy", exact=True).wait_for(timeout=120000)
    accuracy = float(metric(tab, "Test accuracy").rstrip("%")) / 100
    assert accuracy >= 0.985
    assert metric(tab, "Status") == "completed"
    assert tab.exceptions() == [] and tab.console_errors == []


def test_stop_ends_a_second_run_within_seconds(new_tab):
    tab = new_tab().open("train")
    start_training(tab, epochs=3, name="e2e stopped")
    wait_until(lambda: loss_points(tab) >= 20, 60, "the second run to train a little")
    pressed = time.time()
    tab.button("train.stop").click()
    # The deadline is the wait: the trainer stops before its next batch (tests/test_jobs.py holds it to that), and
    # the summary follows within seconds, later on a loaded host.
    tab.page.get_by_text("Status", exact=True).wait_for(timeout=15000)
    print(f"stop took {time.time() - pressed:.2f} s")
    assert metric(tab, "Status") == "stopped"
    assert metric(tab, "Epochs") != "3 of 3"  # it ended early
    assert tab.exceptions() == []


def test_an_idle_tab_shows_a_run_started_in_another_without_a_click(new_tab):
    watcher = new_tab().open("train")  # it shows the stopped run's summary; nothing is done in it from now on
    starter = new_tab().open("train")
    start_training(starter, epochs=20, name="e2e reloaded")  # outlasts the next 3 tests on a slow host; they stop it
    watcher.button("train.stop").wait_for(timeout=15000)
    expect(watcher.page.get_by_text("started in another tab")).to_be_visible()
    first = wait_until(lambda: loss_points(watcher), 30, "the watching tab's chart")
    wait_until(lambda: loss_points(watcher) > first, 30, "the watching tab's chart to keep updating")
    assert watcher.exceptions() == [] and watcher.console_errors == []


def test_reload_during_training_shows_the_job_still_updating(new_tab):
    tab = new_tab().open("train")  # the run of the previous test is still training
    tab.button("train.stop").wait_for(timeout=30000)
    wait_until(lambda: loss_points(tab) >= 5, 60, "training to start")
    tab.page.reload()
    tab.wait_for_rerun()
    tab.button("train.stop").wait_for(timeout=30000)  # the running job is shown again
    first = wait_until(lambda: loss_points(tab), 30, "the chart after the reload")
    wait_until(lambda: loss_points(tab) > first, 30, "the chart to keep updating after the reload")
    assert tab.exceptions() == []


def test_zoom_on_the_live_loss_chart_survives_the_refreshes(new_tab):
    tab = new_tab().open("train")  # the run of the previous test is still training
    wait_until(lambda: loss_points(tab), 30, "the live chart")
    frame = tab.page.frame_locator(f"{tab.keyed(LIVE_CHARTS)} iframe")
    plot = frame.locator(f"[data-chart='{LOSS_CHART}']")
    plot.evaluate("plot => { window.zoomedPlot = plot; }")
    box = plot.locator(".nsewdrag").first.bounding_box()
    tab.page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    tab.page.mouse.down()
    tab.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.7, steps=5)
    tab.page.mouse.up()
    zoomed = plot.evaluate("plot => plot._fullLayout.xaxis.range")
    assert zoomed[0] > 0.1, zoomed  # the x axis spans 0 to 5 epochs before the zoom
    before = loss_points(tab)
    wait_until(lambda: loss_points(tab) > before, 30, "a refresh after the zoom")
    after = loss_points(tab)
    wait_until(lambda: loss_points(tab) > after, 30, "a second refresh")
    assert plot.evaluate("plot => plot._fullLayout.xaxis.range") == zoomed
    assert plot.evaluate("plot => plot === window.zoomedPlot")  # updated in place, never redrawn from scratch
    assert tab.exceptions() == [] and tab.console_errors == []


def test_a_second_tab_is_told_someone_is_already_training(new_tab):
    other = new_tab().open("train")  # the run of the previous test is still training
    other.button("train.stop").wait_for(timeout=30000)
    other.button("train.start").click()
    other.wait_for_rerun()
    warning = other.page.locator("[data-testid='stAlertContentWarning']").inner_text()
    assert "Already training" in warning and "another tab" in warning
    other.button("train.stop").click()
    other.page.get_by_text("Status", exact=True).wait_for(timeout=15000)
    assert metric(other, "Status") == "stopped"


def test_compare_shows_the_new_runs_beside_a_shipped_one(new_tab):
    tab = new_tab().open("compare")
    cells = tab.page.locator("[data-testid='stTable'] td")
    wait_until(lambda: "e2e fast" in cells.all_text_contents(), 15, "the runs table")
    runs = {text for text in cells.all_text_contents() if re.fullmatch(r"e2e .*|\w+ \(shipped\)", text)}
    assert {"e2e fast", "e2e stopped", "cnn (shipped)"} <= runs
    # One trace per selected run, on every overlaid chart.
    selected = tab.page.locator(tab.keyed("compare.runs")).locator("[data-tag]").count()
    assert selected == len(runs)
    for key in ("compare.chart.test_acc", "compare.chart.test_loss", "compare.chart.train_loss"):
        wait_until(lambda: tab.trace_lengths(key), 15, f"the {key} chart")
        assert len(tab.trace_lengths(key)) == selected
    assert tab.exceptions() == [] and tab.console_errors == []
