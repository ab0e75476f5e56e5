"""Compare, grouped, in a real browser: three repeats of one config become one band, a fourth run stays single."""

import json
import shutil

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Tab, serve_app

REPEATS = {"repeat a": 0, "repeat b": 1, "repeat c": 2}


def copy_run(source, target, name: str, seed: int, shift: float) -> None:
    """A run folder made from a shipped one: another name and seed, its curve moved by ``shift``, so the repeats
    spread as real repeats do."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "predictions.safetensors"))
    data = json.loads((target / "run.json").read_text())
    data.update(name=name, shipped=False, config={**data["config"], "seed": seed})
    for epoch in data["epochs"]:
        epoch["test_acc"] = min(1.0, epoch["test_acc"] + shift)
    (target / "run.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def grouped_app(chromium_path, tmp_path_factory, e2e_data_root):
    from tests.conftest import SHIPPED

    store = tmp_path_factory.mktemp("groups") / "checkpoints"
    store.mkdir()
    for i, (name, seed) in enumerate(REPEATS.items()):
        copy_run(SHIPPED / "shipped-cnn", store / f"2026-repeat-{i}", name, seed, shift=0.002 * (i - 1))
    copy_run(SHIPPED / "shipped-lenet", store / "2026-other", "other", 0, shift=0.0)
    with serve_app(store, e2e_data_root, tmp_path_factory.mktemp("groups-log") / "streamlit.log") as url:
        yield url


def choose(tab: Tab, key: str, labels: list[str]) -> None:
    """Make the multiselect ``key`` hold exactly the options whose labels start with ``labels``, by typing."""
    box = tab.page.locator(tab.keyed(key))
    box.get_by_role("button", name="Clear all").click()
    tab.wait_for_rerun()
    for label in labels:
        box.locator("input").fill(label)
        tab.page.keyboard.press("Enter")
        tab.wait_for_rerun()


def test_three_repeats_are_one_band_and_a_fourth_run_stays_single(browser, grouped_app):
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    tab = Tab(context.new_page(), grouped_app).open("compare")
    choose(tab, "compare.runs", [*REPEATS, "other"])
    tab.page.get_by_text("Group repeats", exact=False).click()
    tab.wait_for_rerun()
    chart = tab.page.locator(f"{tab.keyed('compare.chart.test_acc')} .js-plotly-plot")
    chart.wait_for(timeout=30000)
    tab.page.wait_for_function("plot => plot.data && plot.data.length > 0", arg=chart.element_handle())
    traces = chart.evaluate("plot => plot.data.map(t => ({fill: t.fill || null, legend: t.showlegend !== false, "
                            "name: t.name || ''}))")
    bands = [t for t in traces if t["fill"] == "tonexty"]
    means = [t for t in traces if t["legend"]]
    assert len(bands) == 1
    assert sorted(t["name"].split(" (")[-1] for t in means) == ["n=1)", "n=3)"]
    expect(tab.page.locator("[data-testid='stTable'] tbody tr")).to_have_count(2)  # drawn once its code has loaded
    assert tab.exceptions() == [] and tab.console_errors == []
    context.close()
