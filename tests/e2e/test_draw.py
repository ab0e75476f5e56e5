"""Drawing with the mouse, as a person would: strokes of the size and place people use on a 280 px canvas."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import canvas_box, draw

pytestmark = pytest.mark.no_mnist  # Draw reads no MNIST


def shown_digit(tab) -> str:
    return tab.page.locator("[data-testid='draw-prediction']").inner_text().strip()


def test_drawn_digits_are_recognised_and_clear_empties_the_prediction(new_tab):
    tab = new_tab().open("draw")
    tab.page.wait_for_selector("text=Draw a digit on the black canvas")
    for digit in (1, 0, 7):
        draw(tab, digit)
        assert shown_digit(tab) == str(digit), f"drew a {digit}"
        tab.click_button("Clear")
        tab.page.wait_for_selector("text=Draw a digit on the black canvas", timeout=15000)
        assert tab.page.locator("[data-testid='draw-prediction']").count() == 0
    assert tab.exceptions() == [] and tab.console_errors == []


def test_a_small_digit_in_a_corner_is_recognised(new_tab):
    tab = new_tab().open("draw")
    draw(tab, 7, box=(15, 15, 75, 95))
    assert shown_digit(tab) == "7"


def test_every_selected_model_answers(new_tab):
    tab = new_tab().open("draw")
    chips = tab.page.locator(tab.keyed("draw.models")).locator("[data-tag]")
    expect(chips).to_have_count(4)  # the four shipped checkpoints by default
    draw(tab, 0)
    # One bar chart per model, each with its ten bars: expect() retries until the page shows them.
    expect(tab.page.locator("[data-testid='draw-bars']")).to_have_count(4)
    expect(tab.page.locator("[data-testid='draw-bars'] [title$='%']")).to_have_count(40)
    text = tab.page.locator("[data-testid='stMainBlockContainer']").inner_text()
    assert "All 4 models say 0." in text or "The models disagree" in text


# Counts, in window.sends, the clicks on the canvas's own "send this drawing" button: the page presses it at each
# pen-up, so that the drawing goes out at once, not 200 ms later.
COUNT_SENDS = """() => {
    window.sends = 0;
    for (const host of document.querySelectorAll('*')) {
        const send = host.shadowRoot?.querySelector('button[aria-label="Update the app with this drawing"]');
        if (send) send.addEventListener('click', () => { window.sends += 1; }, true);
    } }"""


def test_each_stroke_is_sent_as_the_pen_lifts_not_after_the_canvas_own_wait(new_tab):
    """streamlit-drawable-canvas sends a drawing 200 ms after the last pen-up; the page presses its send button at
    each pen-up instead. Broken (a new canvas naming its button otherwise, the script not installed), no press."""
    tab = new_tab().open("draw")
    canvas_box(tab)  # mounted
    tab.page.evaluate(COUNT_SENDS)
    draw(tab, 7)  # one stroke
    assert tab.page.evaluate("window.sends") == 1
    assert shown_digit(tab) == "7"
