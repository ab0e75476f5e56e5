"""My drawings in the browser: draw, save with a label, then find the drawing in My drawings and its count in
Compare's column."""

from playwright.sync_api import expect

from tests.e2e.browser import draw, save_drawing


def test_a_saved_drawing_shows_in_my_drawings_and_in_compares_column(new_tab):
    tab = new_tab().open("draw")
    draw(tab, 4)
    save_drawing(tab, 4)
    assert tab.page.locator("[data-testid='draw-prediction']").count() == 0  # the canvas is clear for the next one

    tab.open("drawings")
    cards = tab.page.locator("figure[data-label]")
    expect(cards).to_have_count(1)
    assert cards.first.get_attribute("data-label") == "4"
    expect(cards.first.locator("div[data-right], div[data-wrong]")).to_have_count(4)  # the four shipped models
    expect(tab.page.locator("[data-testid='stTable']")).to_contain_text("4 (n=1)")

    tab.open("compare")
    table = tab.page.locator("[data-testid='stTable']")
    expect(table).to_contain_text("My drawings")
    expect(table).to_contain_text("% of 1")
    assert tab.exceptions() == [] and tab.console_errors == []
