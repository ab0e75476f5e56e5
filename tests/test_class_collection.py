"""A class's collection (digitlab.drawings.class_collection): additions checked and bounded, each refusal with its
reason and nothing written; additions at the same instant both kept; listing and scoring read and predict only
what is new."""

import threading

import numpy as np
import pytest

from digitlab.bench.strokes import render_digit
from digitlab.drawings import (ClassCollection, ClassLimitError, DrawingsFolderError, DrawingStore,
                               InvalidDrawingError, class_mode)
from digitlab.drawings import store as drawing_store_module
from digitlab.drawings.class_collection import PER_SESSION
from digitlab.drawings.scores import Answers
from digitlab.store import load_run
from tests.conftest import SHIPPED


class Clock:
    """A clock the test moves: the 2 s between a tab's additions pass at once."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collection(tmp_path):
    clock = Clock()
    found = ClassCollection(DrawingStore(tmp_path / "class"), clock=clock)
    found.clock_ = clock
    return found


def files(collection) -> list[str]:
    return sorted(p.name for p in collection.store.root.glob("*.png"))


def test_an_addition_is_kept_as_a_drawing_with_its_label_and_nothing_about_who(collection):
    drawing_id = collection.add("tab-1", render_digit(7), 7, 18)
    (drawing,) = collection.store.list().drawings
    assert drawing.id == drawing_id and drawing.label == 7 and drawing.stroke_width == 18
    assert "tab-1" not in (collection.store.root / f"{drawing_id}.png").read_bytes().decode("latin-1")
    assert collection.added("tab-1") == 1 and collection.added("tab-2") == 0


@pytest.mark.parametrize("rgba, label, message", [
    (np.zeros((280, 280, 4), np.uint8), 3, "The canvas is empty: draw a digit"),
    (render_digit(3), "three", "A label is a whole number from 0 to 9, got 'three'"),
    (render_digit(3), 10, "A label is a whole number from 0 to 9, got 10"),
])
def test_an_empty_canvas_or_a_label_that_is_not_a_digit_is_refused_and_nothing_written(collection, rgba, label,
                                                                                       message):
    with pytest.raises(InvalidDrawingError, match=message):
        collection.add("tab-1", rgba, label, 18)
    assert files(collection) == [] and collection.added("tab-1") == 0  # and it does not count against the tab
    collection.add("tab-1", render_digit(3), 3, 18)  # a good one right after is taken


def test_a_second_addition_within_two_seconds_is_refused_saying_how_long_to_wait(collection):
    collection.add("tab-1", render_digit(1), 1, 18)
    collection.clock_.now += 0.5
    with pytest.raises(ClassLimitError, match=r"One drawing every 2 s: wait 1\.5 s, then add it"):
        collection.add("tab-1", render_digit(2), 2, 18)
    collection.add("tab-2", render_digit(2), 2, 18)  # another tab is not held back by it
    collection.clock_.now += 1.5
    collection.add("tab-1", render_digit(2), 2, 18)
    assert len(files(collection)) == 3


def test_the_201st_addition_of_a_tab_is_refused(collection):
    for i in range(PER_SESSION):
        collection.add("tab-1", render_digit(i % 10), i % 10, 18)
        collection.clock_.now += 2
    with pytest.raises(ClassLimitError, match=f"This tab has added {PER_SESSION} drawings, the most one may"):
        collection.add("tab-1", render_digit(4), 4, 18)
    assert len(files(collection)) == PER_SESSION
    collection.add("tab-2", render_digit(4), 4, 18)


def test_a_full_collection_refuses_more_saying_so(tmp_path):
    clock = Clock()
    collection = ClassCollection(DrawingStore(tmp_path / "class"), capacity=3, clock=clock)
    for i in range(3):
        collection.add(f"tab-{i}", render_digit(i), i, 18)
    with pytest.raises(ClassLimitError, match="The class collection is full .3 drawings.: nothing more"):
        collection.add("tab-9", render_digit(9), 9, 18)
    assert collection.store.count() == 3


def test_two_tabs_adding_at_the_same_instant_both_keep_theirs_under_names_of_their_own(collection):
    start = threading.Barrier(8)
    ids = []

    def add(tab: int) -> None:
        start.wait()
        ids.append(collection.add(f"tab-{tab}", render_digit(tab), tab, 18))

    threads = [threading.Thread(target=add, args=(tab,)) for tab in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids)) == 8 and sorted(f"{i}.png" for i in ids) == files(collection)
    assert sorted(d.label for d in collection.store.list().drawings) == list(range(8))


def test_a_folder_that_cannot_be_written_refuses_saying_which(collection, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(drawing_store_module, "atomic_write", refuse)
    with pytest.raises(DrawingsFolderError, match=f"Cannot write to the drawings folder {collection.store.root}"):
        collection.add("tab-1", render_digit(5), 5, 18)
    assert collection.added("tab-1") == 0


def test_class_mode_is_the_variable(monkeypatch):
    monkeypatch.delenv("DIGITLAB_CLASS", raising=False)
    assert not class_mode()
    monkeypatch.setenv("DIGITLAB_CLASS", "1")
    assert class_mode()


def test_listing_reads_only_the_drawings_it_has_not_read(collection, monkeypatch):
    for i in range(3):
        collection.add(f"tab-{i}", render_digit(i), i, 18)
    reads = []
    read = drawing_store_module.read_drawing
    monkeypatch.setattr(drawing_store_module, "read_drawing", lambda path: reads.append(path.name) or read(path))
    known = {}
    assert len(collection.store.list(known).drawings) == 3 and len(reads) == 3
    newest = collection.add("tab-9", render_digit(9), 9, 18)
    assert len(collection.store.list(known).drawings) == 4
    assert reads[3:] == [f"{newest}.png"]  # only the new one was read
    collection.store.delete(newest)
    assert len(collection.store.list(known).drawings) == 3 and len(known) == 3


def test_a_models_answers_are_computed_once_per_drawing(collection, monkeypatch):
    from digitlab.drawings import scores as scores_module

    for i in range(3):
        collection.add(f"tab-{i}", render_digit(i), i, 18)
    answers = Answers(load_run(SHIPPED / "shipped-cnn"))
    predicted = []
    predict = scores_module.predict
    monkeypatch.setattr(scores_module, "predict", lambda model, x: predicted.append(len(x)) or predict(model, x))
    first = answers.score(collection.store.list().drawings)
    collection.add("tab-9", render_digit(7), 7, 18)
    second = answers.score(collection.store.list().drawings)
    assert predicted == [3, 1] and second.count == 4
    assert {k: second.predicted[k] for k in first.predicted} == first.predicted
    assert second.accuracy == pytest.approx(sum(second.predicted[i] == l for i, l in second.labels.items()) / 4)
