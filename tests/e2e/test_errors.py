"""The Errors page: the gallery, and a click on the confusion matrix filtering it to one kind of mistake."""

import re

from playwright.sync_api import expect

CAPTION = re.compile(r"^(\d) → (\d) · \d+%$")
CARDS = "[data-testid='stHtml'] figure"


def gallery(tab) -> list[tuple[int, int]]:
    """(true, predicted) of every image card shown, read from the captions a user sees. The cards appear a moment
    after the script run ends, once the browser has loaded Streamlit's code for st.html, so wait for the first."""
    captions = tab.page.locator(f"{CARDS} figcaption")
    captions.first.wait_for(timeout=30000)
    pairs = []
    for text in captions.all_inner_texts():
        match = CAPTION.match(text.strip())
        assert match, text
        pairs.append((int(match.group(1)), int(match.group(2))))
    return pairs


def test_gallery_shows_misclassified_images_of_a_shipped_checkpoint(new_tab):
    tab = new_tab().open("errors")
    tab.page.wait_for_selector("text=test images misclassified", timeout=60000)
    shown = gallery(tab)
    assert shown and all(true != predicted for true, predicted in shown)
    images = tab.page.locator(f"{CARDS} img")
    expect(images).to_have_count(len(shown))
    assert all(images.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(images.count()))
    assert tab.exceptions() == [] and tab.console_errors == []


def test_clicking_a_confusion_cell_filters_the_gallery(new_tab):
    tab = new_tab().open("errors")
    tab.page.wait_for_selector("text=test images misclassified", timeout=60000)
    before = gallery(tab)
    true, predicted = before[0]  # a pair that certainly has errors
    plot = tab.page.locator(f"{tab.keyed('errors.matrix')} .js-plotly-plot")
    # Where the cell is on screen, from Plotly's own axes (x: predicted, y: true).
    x, y = plot.evaluate(
        """(gd, cell) => { const l = gd._fullLayout, box = gd.getBoundingClientRect();
                           return [box.left + l.xaxis._offset + l.xaxis.l2p(cell[1]),
                                   box.top + l.yaxis._offset + l.yaxis.l2p(cell[0])]; }""", [true, predicted])
    tab.page.mouse.click(x, y)
    tab.wait_for_rerun()
    tab.page.wait_for_function(
        """([cards, cell]) => Array.from(document.querySelectorAll(`${cards} figcaption`))
                             .some(e => e.innerText.trim().startsWith(cell))""", arg=[CARDS, f"{true} → {predicted}"],
        timeout=15000)
    after = gallery(tab)
    assert after and all(pair == (true, predicted) for pair in after)
    assert after != before or all(pair == (true, predicted) for pair in before)
    assert tab.exceptions() == []
