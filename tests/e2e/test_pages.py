"""Every page opens in a real browser with no Streamlit exception and no console errors."""

import pytest

PAGES = ["", "train", "compare", "errors", "draw", "study"]


@pytest.mark.parametrize("path", PAGES)
def test_page_opens_cleanly(new_tab, path):
    tab = new_tab().open(path)
    tab.page.wait_for_selector("h1", timeout=30000)
    assert tab.exceptions() == []
    # The app's own navigation runs even on a first visit straight to a page (not Streamlit's pages/ listing).
    nav = tab.page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Train" in nav and "Compare" in nav and "app" not in nav.split()
    assert tab.console_errors == []


def test_page_switch_keeps_the_sidebar(new_tab):
    tab = new_tab().open()
    for label, heading in (("Compare", "Compare"), ("Errors", "Errors"), ("Draw", "Draw"), ("Train", "Train")):
        tab.page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
        tab.page.wait_for_selector(f"h1:has-text('{heading}')", timeout=30000)
        tab.wait_for_rerun()
        assert tab.exceptions() == []
    assert tab.console_errors == []
