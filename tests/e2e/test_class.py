"""A class at once in a real browser, on a classroom server (read-only, DIGITLAB_CLASS=1): two tabs add drawings to
the class collection, a third tab's Class board shows both within 2 s of the second, without a click, and a forged
delete changes nothing."""

import time

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Tab, copy_shipped, draw, save_drawing, serve_app, wait_until
from tests.fakedata import write_tiny_mnist

ADD, ADDED = "Add to the class collection", "Added a {label} to the class collection"


pytestmark = pytest.mark.no_mnist


@pytest.fixture(scope="module")
def class_app(chromium_path, tmp_path_factory):
    # The tests' small MNIST whatever DIGITLAB_DATA says: drawing and the board read no MNIST.
    data = write_tiny_mnist(tmp_path_factory.mktemp("class-mnist"))
    store = copy_shipped(tmp_path_factory.mktemp("class") / "checkpoints")
    env = {"DIGITLAB_READ_ONLY": "1", "DIGITLAB_CLASS": "1"}
    with serve_app(store, data, tmp_path_factory.mktemp("class-log") / "streamlit.log", env) as url:
        yield url, store.parent / "drawings"


def board_count(tab: Tab) -> int:
    """The board's count of the class's drawings (0 before the first)."""
    caption = tab.page.get_by_text("from the class so far")
    if not caption.count():
        return 0
    return int(caption.first.inner_text().split(" drawing")[0].replace(",", ""))


def test_two_tabs_add_drawings_the_board_shows_both_within_two_seconds_and_a_forged_delete_changes_nothing(
        browser, class_app):
    url, folder = class_app
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    try:
        board = Tab(context.new_page(), url).open("board")
        expect(board.page.get_by_text("No drawings yet")).to_be_visible(timeout=30000)
        first, second = Tab(context.new_page(), url).open("draw"), Tab(context.new_page(), url).open("draw")
        draw(first, 4)
        save_drawing(first, 4, ADD, ADDED)
        draw(second, 7)
        save_drawing(second, 7, ADD, ADDED)
        added = time.time()
        wait_until(lambda: board_count(board) == 2, 2.0, "the board to show both drawings within 2 s")
        print(f"the board showed the second drawing {time.time() - added:.2f} s after it was added")
        assert len(list(folder.glob("*.png"))) == 2
        expect(board.page.locator("[data-testid='stMetric']")).to_have_count(4)  # the four shipped models scored

        # A forged delete: the disabled control enabled in the page and clicked anyway. Nothing changes.
        mine = Tab(context.new_page(), url).open("drawings")
        edit = mine.page.get_by_role("button", name="Edit").first
        edit.click()
        delete = mine.page.get_by_role("button", name="Delete…")
        expect(delete).to_be_disabled()
        delete.evaluate("button => { button.disabled = false; button.removeAttribute('disabled'); button.click(); }")
        mine.wait_for_rerun()
        assert len(list(folder.glob("*.png"))) == 2 and board_count(board) == 2
        assert all(tab.exceptions() == [] for tab in (board, first, second, mine))
    finally:
        context.close()
