"""My drawings, the Draw page's Save button and Compare's drawings column through AppTest (a stand-in canvas)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from digitlab.bench.strokes import render_digit
from digitlab.drawings import DrawingStore
from tests.test_app import app_env, assert_clean, canvas, draw_bars, open_app, shipped  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def eleven_drawings(tmp_path_factory) -> Path:
    """A drawing of each digit, and a 1 labelled 7 that every model gets wrong: saved once, copied per test."""
    store = DrawingStore(tmp_path_factory.mktemp("eleven") / "drawings")
    for digit in range(10):
        store.save(render_digit(digit), digit, 18)
    store.save(render_digit(1), 7, 18)
    return store.root


@pytest.fixture
def saved(shipped, tmp_path, eleven_drawings) -> DrawingStore:
    shutil.copytree(eleven_drawings, tmp_path / "drawings")
    return DrawingStore(tmp_path / "drawings")


def cards(at) -> list[str]:
    return [h.proto.body for h in at.get("html") if h.proto.body.startswith("<figure data-label")]


def labels_of(at) -> list[int]:
    return [int(re.search(r'data-label="(\d)"', card).group(1)) for card in cards(at)]


def card_key(drawing_id: str, action: str) -> str:
    return f"drawings.card.{drawing_id}.{action}"


def test_no_drawings_yet_says_how_to_make_some(shipped):
    at = open_app("pages/drawings.py")
    assert_clean(at)
    assert any("No drawings yet" in i.value for i in at.info)
    assert at.get("file_uploader") and not cards(at)


def test_the_grid_shows_each_label_and_each_models_guess_with_wrong_ones_marked(saved):
    at = open_app("pages/drawings.py")
    assert_clean(at)
    assert sorted(labels_of(at)) == [0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9]
    mislabelled = [c for c in cards(at) if 'data-label="7"' in c and 'data-wrong-count="0"' not in c]
    assert mislabelled
    assert all(c.count("✗") == int(re.search(r'data-wrong-count="(\d)"', c).group(1)) for c in cards(at))
    assert cards(at)[0].count("<div data-") == 4  # one guess per selected model (the four shipped ones)
    table = at.table[0].value
    assert len(table) == 4 and list(table["Drawings"]) == [11] * 4
    assert "7 (n=2)" in table.columns and "0 (n=1)" in table.columns
    # the wrong 7 counts against every model, over all the drawings and in the 7s' column
    assert all(a <= 10 / 11 for a in table["Accuracy"]) and all(a <= 0.5 for a in table["7 (n=2)"])


def test_filters_by_label_and_by_some_model_wrong(saved):
    at = open_app("pages/drawings.py")
    at.selectbox(key="drawings.label").set_value(7).run()
    assert labels_of(at) == [7, 7]
    at.selectbox(key="drawings.label").set_value("all").run()
    at.toggle(key="drawings.wrong").set_value(True).run()
    assert_clean(at)
    shown = cards(at)
    assert shown and all('data-wrong-count="0"' not in c for c in shown)
    assert len(shown) < 11


def test_relabel_and_delete_with_confirmation(saved):
    mislabelled = saved.list().drawings[-1]
    at = open_app("pages/drawings.py")
    at.selectbox(key=card_key(mislabelled.id, "label")).set_value(1).run()
    at.button(key=card_key(mislabelled.id, "relabel")).click().run()
    assert_clean(at)
    assert saved.load(mislabelled.id).label == 1 and sorted(labels_of(at)).count(1) == 2

    at.button(key=card_key(mislabelled.id, "delete")).click().run()
    assert len(saved.list().drawings) == 11  # not yet: it asks first
    assert any("Delete this drawing?" in w.value for w in at.warning)
    at.button(key=card_key(mislabelled.id, "no")).click().run()
    assert len(saved.list().drawings) == 11
    at.button(key=card_key(mislabelled.id, "delete")).click().run()
    at.button(key=card_key(mislabelled.id, "yes")).click().run()
    assert_clean(at)
    assert mislabelled.id not in [d.id for d in saved.list().drawings] and len(cards(at)) == 10


def test_look_inside_opens_the_drawing_on_the_inside_page(saved, canvas):
    drawing = saved.list().drawings[4]
    at = open_app("pages/drawings.py")
    at.multiselect(key="drawings.models").set_value(["shipped-lenet"]).run()
    at.button(key=card_key(drawing.id, "inside")).click().run()
    assert_clean(at)
    assert at.radio(key="inside.source").value == "carried"
    assert np.allclose(np.array(at.session_state["inside.drawing"]), drawing.image.numpy())
    assert at.multiselect(key="inside.models").value[0] == "shipped-lenet"


def test_a_corrupt_drawing_file_is_listed_and_the_others_still_show(saved):
    (saved.root / "20250101T000000000000-00000000000000aa.png").write_bytes(b"junk")
    at = open_app("pages/drawings.py")
    assert_clean(at)
    assert any("20250101T000000000000-00000000000000aa.png" in w.value and "not a PNG" in w.value for w in at.warning)
    assert len(cards(at)) == 11


def test_read_only_shows_the_drawings_and_scores_and_disables_every_change(saved, monkeypatch):
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    at = open_app("pages/drawings.py")
    assert_clean(at)
    assert any("Read-only" in i.value and "relabelled, deleted or imported" in i.value for i in at.info)
    assert len(cards(at)) == 11 and len(at.table[0].value) == 4
    drawing = saved.list().drawings[0]
    for action in ("relabel", "delete"):
        assert at.button(key=card_key(drawing.id, action)).disabled
    assert at.button(key="drawings.import").disabled and at.get("file_uploader")[0].proto.disabled
    assert not at.button(key=card_key(drawing.id, "inside")).disabled  # looking is not a change


def test_draw_saves_the_drawing_with_the_predicted_label_preselected(shipped, canvas, tmp_path):
    at = open_app("pages/draw.py")
    assert_clean(at)
    label_box = [s for s in at.selectbox if s.key and s.key.startswith("draw.save_label")][0]
    assert label_box.value == 3  # the prediction
    label_box.set_value(8).run()  # the person meant an 8
    at.button(key="draw.save").click().run()
    assert_clean(at)
    (drawing,) = DrawingStore(tmp_path / "drawings").list().drawings
    assert drawing.label == 8 and drawing.stroke_width == 18
    assert np.array_equal(drawing.rgba(), canvas.image_data)
    assert any("Saved as a **8**" in s.value for s in at.success)


def test_draw_an_empty_canvas_cannot_be_saved(shipped, canvas):
    canvas.image_data = np.zeros((280, 280, 4), np.uint8)
    at = open_app("pages/draw.py")
    assert_clean(at)
    assert at.button(key="draw.save").disabled


def assert_an_unwritable_folder_is_named_and_draw_still_predicts(tmp_path, monkeypatch) -> None:
    """Keep a drawing (saved, or added to the class collection) into a drawings folder that cannot be created: the
    error names the folder, and the guesses are still there."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DIGITLAB_DRAWINGS", str(blocker / "drawings"))
    at = open_app("pages/draw.py")
    at.button(key="draw.save").click().run()
    assert_clean(at)
    assert any(str(blocker / "drawings") in e.value.replace("\\", "") for e in at.error)
    assert draw_bars(at)


def test_draw_a_folder_that_cannot_be_written_is_named_and_the_canvas_still_works(shipped, canvas, tmp_path,
                                                                                  monkeypatch):
    assert_an_unwritable_folder_is_named_and_draw_still_predicts(tmp_path, monkeypatch)


def test_draw_in_read_only_mode_cannot_save(shipped, canvas, monkeypatch):
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    at = open_app("pages/draw.py")
    assert at.button(key="draw.save").disabled
    assert any("Read-only mode" in c.value for c in at.caption)


def test_compare_has_a_my_drawings_column_with_the_count(saved):
    at = open_app("pages/compare.py")
    assert_clean(at)
    table = at.table[0].value
    assert table["My drawings"].notna().all() and (table["My drawings"] <= 10 / 11).all()
    assert "My drawings" in at.selectbox(key="compare.sort").options


def test_the_compare_table_shows_accuracy_on_the_drawings_with_their_count(saved):
    from digitlab.dashboard.compare import runs_table, styled_runs_table, with_drawings_column
    from digitlab.drawings import score
    from digitlab.store import RunStore

    store = RunStore()
    records = store.list().runs
    scores = {r.id: score(store.load(r.id), saved.list().drawings) for r in records[:2]}
    table = with_drawings_column(runs_table(records), scores)
    assert list(table.columns).index("My drawings") == list(table.columns).index("Test accuracy") + 1
    shown = styled_runs_table(table, 11).to_html()
    for result in scores.values():
        assert f"{result.accuracy:.1%} of 11" in shown
    assert shown.count("of 11") == 2  # the runs not scored show "–"


def test_read_only_refuses_every_change_even_when_forced(saved, monkeypatch):
    from digitlab.dashboard.ui import actions
    from digitlab.dashboard.access import ReadOnlyError

    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    drawing = saved.list().drawings[0]
    before = sorted(p.name for p in saved.root.iterdir())
    for action in (lambda: actions.save_drawing(render_digit(2), 2, 18), lambda: actions.relabel_drawing(drawing.id, 9),
                   lambda: actions.delete_drawing(drawing.id), lambda: actions.import_drawings(saved.export_zip())):
        with pytest.raises(ReadOnlyError, match="turned off"):
            action()
    assert sorted(p.name for p in saved.root.iterdir()) == before and saved.load(drawing.id).label == drawing.label
