"""The Study page in a real browser: a repeat study of 2 tiny runs, started on the page, ends in a grouped Compare
whose accuracy chart draws one band."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Tab, serve_app
from tests.fakedata import write_tiny_mnist

pytestmark = [pytest.mark.timeout(300), pytest.mark.no_mnist]


@pytest.fixture(scope="module")
def study_app(chromium_path, tmp_path_factory):
    # The tiny MNIST whatever DIGITLAB_DATA says: two runs in seconds, not minutes.
    data = write_tiny_mnist(tmp_path_factory.mktemp("study-tiny-mnist"))
    store = tmp_path_factory.mktemp("study") / "checkpoints"
    with serve_app(store, data, tmp_path_factory.mktemp("study-log") / "streamlit.log") as url:
        yield url


def test_a_repeat_started_on_the_study_page_ends_in_a_grouped_compare_with_a_band(browser, study_app):
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    tab = Tab(context.new_page(), study_app).open("study")
    tab.page.get_by_role("tab", name="Build one").click()
    tab.enter_text("study.name", "browser rep")
    for key, value in (("study.repeat", "2"), ("study.epochs", "2"), ("study.validation", "50"),
                       ("study.workers", "1")):
        tab.enter_text(key, value)
    tab.click_button("Start the study")
    compare = tab.page.get_by_role("button", name="Compare the study's runs, grouped →")
    compare.wait_for(timeout=180000)
    expect(tab.page.locator("[data-testid='stCaptionContainer']", has_text="study=browser rep trials=2 complete=2")
           ).to_have_count(1)
    # The page reruns as the study ends (and a new trainer is readied): a click during that rerun hits a button
    # that is being replaced, as a person's would. Click on the settled page.
    tab.wait_for_idle()
    compare.click()
    tab.page.wait_for_url("**/compare", timeout=30000)
    tab.wait_for_idle()
    chart = tab.page.locator(f"{tab.keyed('compare.chart.test_acc')} .js-plotly-plot")
    chart.wait_for(timeout=30000)
    tab.page.wait_for_function("plot => plot.data && plot.data.length > 0", arg=chart.element_handle())
    fills = chart.evaluate("plot => plot.data.map(t => t.fill || null)")
    assert fills.count("tonexty") == 1
    expect(tab.page.locator("[data-testid='stTable'] tbody tr")).to_have_count(1)
    assert tab.exceptions() == [] and tab.console_errors == []
    context.close()
