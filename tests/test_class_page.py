"""A class at once through AppTest: in class mode (read-only, DIGITLAB_CLASS=1) Draw adds to the class collection
and nothing else changes; every refusal is shown with its reason; the Class board scores every model on the class's
drawings and shows the ones most models get wrong."""

import numpy as np
import pytest

from digitlab.bench.strokes import render_digit
from digitlab.dashboard.access import ReadOnlyError
from digitlab.drawings import DrawingStore
from tests.test_app import app_env, assert_clean, canvas, draw_bars, open_app, shipped  # noqa: F401  (fixtures)
from tests.test_drawings_page import assert_an_unwritable_folder_is_named_and_draw_still_predicts


@pytest.fixture
def class_server(shipped, monkeypatch, tmp_path) -> DrawingStore:
    """A classroom server: read-only, class drawing on; the collection is its drawings folder."""
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    monkeypatch.setenv("DIGITLAB_CLASS", "1")
    return DrawingStore(tmp_path / "drawings")


def test_draw_adds_to_the_class_collection_with_the_label_chosen(class_server, canvas):
    at = open_app("pages/draw.py")
    assert_clean(at)
    button = at.button(key="draw.save")
    assert not button.disabled and button.label == "Add to the class collection"
    [s for s in at.selectbox if s.key and s.key.startswith("draw.save_label")][0].set_value(8).run()
    at.button(key="draw.save").click().run()
    assert_clean(at)
    (drawing,) = class_server.list().drawings
    assert drawing.label == 8 and np.array_equal(drawing.rgba(), canvas.image_data)
    assert any("Added a **8** to the class collection" in s.value for s in at.success)


def test_a_second_addition_within_two_seconds_says_how_long_to_wait_and_keeps_the_drawing_on_screen(class_server,
                                                                                                     canvas):
    at = open_app("pages/draw.py")
    at.button(key="draw.save").click().run()
    at.button(key="draw.save").click().run()
    assert any("One drawing every 2 s" in e.value for e in at.error)
    assert class_server.count() == 1
    assert draw_bars(at)  # the guesses are still shown: nothing is lost


def test_an_empty_canvas_cannot_be_added(class_server, canvas):
    canvas.image_data = np.zeros((280, 280, 4), np.uint8)
    at = open_app("pages/draw.py")
    assert at.button(key="draw.save").disabled


def test_a_collection_folder_that_cannot_be_written_is_named_and_draw_still_predicts(class_server, canvas, tmp_path,
                                                                                     monkeypatch):
    assert_an_unwritable_folder_is_named_and_draw_still_predicts(tmp_path, monkeypatch)


def test_a_forged_delete_relabel_or_import_in_class_mode_is_refused_whoever_calls_it(class_server, canvas):
    from digitlab.dashboard.ui import actions

    kept = class_server.save(render_digit(4), 4, 18)
    calls = {"Deleting drawings": lambda: actions.delete_drawing(kept),
             "Relabelling drawings": lambda: actions.relabel_drawing(kept, 9),
             "Importing drawings": lambda: actions.import_drawings(class_server.export_zip()),
             "Saving drawings": lambda: actions.save_drawing(render_digit(2), 2, 18)}
    for action, call in calls.items():
        with pytest.raises(ReadOnlyError, match=f"{action} is turned off"):
            call()
    (drawing,) = class_server.list().drawings
    assert drawing.id == kept and drawing.label == 4


def test_without_class_mode_a_read_only_server_adds_nothing(shipped, canvas, monkeypatch, tmp_path):
    from digitlab.dashboard.ui import actions

    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    monkeypatch.delenv("DIGITLAB_CLASS", raising=False)
    at = open_app("pages/draw.py")
    assert at.button(key="draw.save").disabled
    with pytest.raises(ReadOnlyError, match="DIGITLAB_CLASS=1"):
        actions.add_class_drawing("tab", render_digit(2), 2, 18)
    assert DrawingStore(tmp_path / "drawings").count() == 0


def test_the_board_scores_every_model_on_the_class_drawings_and_shows_the_hardest(class_server):
    for digit in range(10):
        class_server.save(render_digit(digit), digit, 18)
    class_server.save(render_digit(1), 7, 18)  # a 1 labelled 7: every model gets it wrong
    at = open_app("pages/board.py")
    assert_clean(at)
    assert any("11 drawings from the class" in c.value for c in at.caption)
    assert sorted(m.label for m in at.metric) == ["cnn \\(shipped\\)", "lenet \\(shipped\\)", "mlp \\(shipped\\)",
                                                   "resnet \\(shipped\\)"]
    assert all(m.value.endswith("%") for m in at.metric)
    cards = [h.proto.body for h in at.get("html") if h.proto.body.startswith("<figure data-label")]
    assert cards and 'data-label="7" data-wrong-count="4"' in cards[0]  # most wrong first
    class_server.save(render_digit(5), 5, 18)
    at.run()  # as the board's next refresh does
    assert any("12 drawings from the class" in c.value for c in at.caption)


def test_the_board_with_no_drawings_says_how_a_class_adds_some(class_server):
    at = open_app("pages/board.py")
    assert_clean(at)
    assert any("Add to the class collection" in i.value for i in at.info)
