"""Inside, as a user gets there: from a drawing on Draw, and from an Errors card's "Look inside" link.

Two cheap shipped models (the MLP and LeNet-5) keep the one-time embedding of the training images short in CI.
"""

import re

from playwright.sync_api import expect

from tests.e2e.browser import draw

MODELS = ("shipped-mlp", "shipped-lenet")


def keep_only(tab, key: str, keep: tuple[str, ...]) -> None:
    """Remove every chip of the keyed multiselect whose run is not in ``keep``."""
    chips = tab.page.locator(tab.keyed(key)).locator("[data-tag]")
    chips.first.wait_for(timeout=30000)  # the multiselect is drawn once the browser has loaded its code
    for label in chips.evaluate_all("tags => tags.map(t => t.getAttribute('aria-label'))"):
        if not any(label.startswith(run_id.removeprefix("shipped-") + " (shipped)") for run_id in keep):
            tab.page.get_by_role("button", name=f"Remove {label}", exact=True).click()
            tab.wait_for_rerun()
    expect(chips).to_have_count(len(keep))


def expect_model_column(tab, run_id: str, digit: int | None = None) -> None:
    """The column of one model: its answer, an attribution overlay, 8 neighbours, the map and feature maps."""
    column = tab.page.locator(tab.keyed(f"inside.model.{run_id}"))
    answer = str(digit) if digit is not None else r"\d"
    expect(column.get_by_text(re.compile(rf"^says {answer} \(\d+%\)$"))).to_be_visible(timeout=120000)
    expect(column.get_by_text(re.compile(r"^Occlusion for \d$"))).to_be_visible()  # the default method
    neighbours = column.locator("[data-testid='inside-neighbours'] figure")
    expect(neighbours).to_have_count(8, timeout=120000)  # the first visit embeds the training images
    captions = neighbours.locator("figcaption").all_inner_texts()
    assert all(re.fullmatch(r"\d · (0|1)\.\d\d", c.strip()) for c in captions), captions
    expect(column.locator(".js-plotly-plot")).to_have_count(1)  # the embedding map
    layers = column.get_by_text(re.compile(r" · (conv|pool|dense|output|residual block) · "))
    assert layers.count() >= 3
    images = column.locator("[data-testid='stImage'] img")
    assert images.count() >= 1 + layers.count()  # the overlay and one grid per layer
    assert all(images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(images.count()))


def test_a_drawing_then_an_errors_card_open_inside_for_two_models(new_tab):
    tab = new_tab().open("draw")
    keep_only(tab, "draw.models", MODELS)
    draw(tab, 3)
    tab.click_button("Look inside this drawing")
    tab.page.wait_for_url(re.compile(r"/inside"), timeout=30000)
    tab.wait_for_idle(180)
    expect(tab.page.get_by_role("radiogroup").get_by_text("The drawing from Draw")).to_be_visible()
    for run_id in MODELS:
        expect_model_column(tab, run_id, 3)
    assert tab.exceptions() == [] and tab.console_errors == []

    tab.open(f"errors?run={MODELS[0]}")
    tab.page.wait_for_selector("text=test images misclassified", timeout=60000)
    # The caption and the button of one card, read through their card: the captions are st.html, whose code the
    # browser loads lazily, so the first caption on the page may belong to another card than the first button.
    card_button = tab.page.get_by_role("button", name=re.compile(r"^#\d+$")).first
    index = int(card_button.inner_text().strip().lstrip("#"))
    card = card_button.locator("xpath=ancestor::div[.//figure][1]")
    expect(card.locator("figure")).to_have_count(1, timeout=30000)
    true_digit = int(card.locator("figcaption").inner_text(timeout=30000).split("→")[0])
    card_button.click()  # the card opens larger, in a dialog with the link
    tab.page.get_by_role("dialog").get_by_role("link", name="Look inside").click()
    tab.page.wait_for_url(re.compile(rf"/inside\?test={index}&run={MODELS[0]}"), timeout=30000)
    tab.wait_for_idle(180)
    expect(tab.page.get_by_text(f"Test image #{index}: labelled {true_digit}")).to_be_visible()
    for run_id in MODELS:  # the run from the card, and the one remembered from before
        expect_model_column(tab, run_id)
    assert tab.exceptions() == [] and tab.console_errors == []
