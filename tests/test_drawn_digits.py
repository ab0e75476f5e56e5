"""digitlab.bench.drawn_digits: generated canvas drawings in many hands, saved as a drawings folder."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.__main__ import main as digitlab_main
from digitlab.bench.drawn_digits import CANVAS, drawn_digits, main, save_drawn_digits
from digitlab.drawings import DrawingStore, score
from digitlab.models import create_model
from digitlab.store import RunStore

REPO = Path(__file__).resolve().parents[1]


def ink_boxes(drawings) -> np.ndarray:
    """(N, 4) top, bottom, left, right of each drawing's ink on the canvas."""
    boxes = []
    for _, rgba, _ in drawings:
        rows, cols = np.nonzero(rgba[..., 3])
        boxes.append((rows.min(), rows.max(), cols.min(), cols.max()))
    return np.array(boxes)


def test_drawings_come_in_turn_vary_in_size_place_and_pen_and_fit_the_canvas():
    drawings = list(drawn_digits(60, seed=0))
    assert [digit for digit, _, _ in drawings] == [i % 10 for i in range(60)]
    assert all(rgba.shape == (CANVAS, CANVAS, 4) and rgba.dtype == np.uint8 for _, rgba, _ in drawings)
    boxes = ink_boxes(drawings)
    heights = boxes[:, 1] - boxes[:, 0]
    assert heights.max() > 2 * heights.min()
    assert np.ptp(boxes[:, 0]) > CANVAS / 3 and np.ptp(boxes[:, 2]) > CANVAS / 3  # placed all over
    assert boxes.min() > 0 and boxes.max() < CANVAS - 1  # no digit runs off the canvas
    pens = [pen for _, _, pen in drawings]
    assert min(pens) <= 8 and max(pens) >= 25
    # The same seed draws the same hands; another seed, others.
    again = list(drawn_digits(60, seed=0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(drawings, again))
    assert not any(np.array_equal(a[1], b[1]) for a, b in zip(drawings, drawn_digits(60, seed=1)))


def test_a_trained_model_reads_them_and_an_untrained_one_does_not(tmp_path):
    store = save_drawn_digits(tmp_path / "drawn", 50, seed=0)
    drawings = store.list().drawings
    assert len(drawings) == 50 and sorted(d.label for d in drawings) == sorted(i % 10 for i in range(50))
    shipped = RunStore(REPO / "checkpoints").load("shipped-cnn")
    assert score(shipped, drawings).accuracy >= 0.9
    torch.manual_seed(0)
    untrained = dataclasses.replace(shipped, model=create_model(shipped.config.model,
                                                                **shipped.config.model_options).eval())
    assert score(untrained, drawings).accuracy < 0.3


def test_the_command_adds_them_and_eval_scores_them(tmp_path, capsys):
    folder = tmp_path / "drawn"
    assert main([str(folder), "--count", "20", "--seed", "3"]) == 0
    assert f"added 20 drawn digits to {folder}" in capsys.readouterr().out
    assert main([str(folder), "--count", "10"]) == 0  # a second batch joins the first; nothing is replaced
    assert DrawingStore(folder).count() == 30
    assert digitlab_main(["eval", "shipped-cnn", "--out", str(REPO / "checkpoints"), "--drawings", str(folder)]) == 0
    assert capsys.readouterr().out.split("\n")[1].startswith("run=shipped-cnn drawings=30 drawings_acc=")


@pytest.mark.parametrize("count", ["0", "-5"])
def test_a_count_below_one_is_refused(tmp_path, capsys, count):
    with pytest.raises(ValueError, match=f"count must be at least 1, got {count}"):
        drawn_digits(int(count))  # at the call, before any drawing is taken
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "drawn"), "--count", count])
    assert exit_.value.code == 2
    assert f"--count must be at least 1, got {count}" in capsys.readouterr().err
    assert not (tmp_path / "drawn").exists()


def test_an_unwritable_folder_is_named_with_what_to_do(tmp_path, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        main([str(blocker / "drawn"), "--count", "3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"Cannot create the drawings folder {blocker / 'drawn'}" in err and "DIGITLAB_DRAWINGS" in err
    assert blocker.read_text() == "not a folder"
