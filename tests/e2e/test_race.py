"""A race in a real browser, on the tests' small data: three presets (their epochs raised, so that they train for a
while on 300 images) train side by side, each run's curve grows while it trains, another tab follows the race by
itself, one run is stopped from its own Stop, the others finish, and the summary and Compare show exactly those
runs."""

import time

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Tab, copy_shipped, serve_app, wait_until
from tests.fakedata import write_tiny_mnist

LANES = {"fast": ("fast", 250), "race-mlp": ("race-mlp", 250), "long lenet": ("race-lenet", 1000)}
CHARTS = "train.charts"
pytestmark = pytest.mark.no_mnist


@pytest.fixture(scope="module")
def small_data_app(chromium_path, tmp_path_factory):
    """The app over the tests' small MNIST, whatever DIGITLAB_DATA says: the race lasts as long in both CI passes."""
    data = write_tiny_mnist(tmp_path_factory.mktemp("race-mnist"))
    store = copy_shipped(tmp_path_factory.mktemp("race") / "checkpoints")
    with serve_app(store, data, tmp_path_factory.mktemp("race-log") / "streamlit.log") as url:
        yield url


def pick_preset(tab: Tab, name: str) -> None:
    tab.page.locator(tab.keyed("train.preset")).get_by_role("combobox").click()
    tab.page.get_by_role("option", name=name, exact=True).click()
    tab.wait_for_rerun()


def test_a_race_of_three_grows_side_by_side_one_is_stopped_and_compare_shows_exactly_its_runs(browser,
                                                                                                small_data_app):
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    watcher = Tab(context.new_page(), small_data_app).open("train")  # left alone: it must show the race by itself
    tab = Tab(context.new_page(), small_data_app).open("train")
    try:
        for name, (preset, epochs) in LANES.items():
            tab.page.get_by_role("tab", name="Train one run").click()
            pick_preset(tab, preset)
            tab.enter_text("train.epochs", str(epochs))
            tab.enter_text("train.name", name)
            tab.page.get_by_role("tab", name="Race several").click()
            tab.button("race.add_form").click()
            tab.wait_for_rerun()
        tab.enter_text("race.name", "e2e race")
        tab.button("race.start").click()
        tab.button("race.stop_all").wait_for(timeout=30000)

        # Each run's held-out accuracy curve (one trace per run on the accuracy chart) grows at least twice while
        # the run trains, without any click.
        growth = [0, 0, 0]
        seen = None
        deadline = time.time() + 60
        while min(growth) < 2 and time.time() < deadline:
            lengths = tab.trace_lengths(CHARTS, "acc")
            if lengths and len(lengths) == 3:
                if seen is not None:
                    lines = tab.progress_lines(CHARTS)
                    for i, (now, before) in enumerate(zip(lengths, seen)):
                        growth[i] += now > before and i < len(lines) and "Epoch" in lines[i]
                seen = lengths
            time.sleep(0.3)
        assert min(growth) >= 2, f"curves grew {growth} times while their runs trained"
        watcher.button("race.stop_all").wait_for(timeout=15000)  # another tab follows the race, without a click
        assert watcher.trace_lengths(CHARTS, "acc") is not None

        frame = tab.page.frame_locator(f"{tab.keyed(CHARTS)} iframe")
        frame.locator("#progress > div").nth(2).get_by_role("button", name="Stop").click()  # the long LeNet
        wait_until(lambda: (lines := tab.progress_lines(CHARTS)) and lines[2].startswith("long lenet")
                   and "stopped" in lines[2], 30, "the stopped run's bar to say so")
        tab.button("race.compare").wait_for(timeout=120000)  # the last run has ended
        table = tab.page.locator("[data-testid='stTable']")
        expect(table).to_contain_text("long lenet")
        rows = table.locator("tbody tr").all_inner_texts()
        assert len(rows) == 3
        assert sorted("stopped" in row for row in rows) == [False, False, True]
        assert all("completed" in row for row in rows if "long lenet" not in row)
        assert tab.exceptions() == [] and tab.console_errors == []

        tab.button("race.compare").click()
        tab.page.wait_for_url("**/compare", timeout=30000)
        tab.wait_for_rerun()
        chips = tab.page.locator(tab.keyed("compare.runs")).locator("[data-tag]")
        expect(chips).to_have_count(3)
        assert sorted(t.split(" · ")[0] for t in chips.all_inner_texts()) == sorted(
            f"e2e race: {name}" for name in LANES)
    finally:
        context.close()
