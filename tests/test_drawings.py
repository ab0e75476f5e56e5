"""My drawings (digitlab.drawings): the store against killed and concurrent savers, archives good and bad, scoring,
and the CLI."""

from __future__ import annotations

import csv
import io
import signal
import stat
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.drawings import archive as drawings_archive
from digitlab.__main__ import main
from digitlab.bench.strokes import render_digit
from digitlab.drawings import (
    LABELS_FILE,
    ArchiveRefusedError,
    DrawingsError,
    DrawingsFolderError,
    DrawingStore,
    InvalidDrawingError,
    UnknownDrawingError,
    drawings_root,
    score,
)
from digitlab.predict import predict
from digitlab.store import LoadedRun, RunStore
from tests.pausing import pause_env, release, wait_reached

REPO = Path(__file__).resolve().parent.parent
BEFORE_REPLACE = "files.atomic_write.before_replace"


@pytest.fixture
def store(tmp_path) -> DrawingStore:
    return DrawingStore(tmp_path / "drawings")


def contents(store: DrawingStore) -> set[tuple[bytes, tuple, int, str, int | None]]:
    """What the drawings hold, whatever their ids: raw pixels, shape, label, time, stroke width."""
    return {(d.rgba().tobytes(), d.rgba().shape, d.label, d.saved_at, d.stroke_width) for d in store.list().drawings}


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def saver(pauses: Path, root: Path, digit: int, *points: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.racers", "save-drawing", str(root), str(digit)], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pause_env(pauses, *points))


def test_a_saved_drawing_keeps_its_raw_rgba_label_time_and_stroke_width(store):
    rgba = render_digit(4, stroke_width=11)
    rgba[0, 0] = (1, 2, 3, 4)  # any RGBA value, not only ink and background, comes back as it was
    drawing_id = store.save(rgba, 4, 11)
    (drawing,) = store.list().drawings
    assert drawing.id == drawing_id and drawing.label == 4 and drawing.stroke_width == 11
    assert np.array_equal(drawing.rgba(), rgba) and drawing.rgba().dtype == np.uint8
    assert drawing.saved_at.endswith("+00:00") and drawing.image.shape == (28, 28)
    assert store.load(drawing_id).label == 4


def test_the_drawings_folder_defaults_to_drawings_in_the_working_directory_and_is_git_ignored(monkeypatch):
    monkeypatch.delenv("DIGITLAB_DRAWINGS", raising=False)
    assert drawings_root() == Path("drawings")
    monkeypatch.setenv("DIGITLAB_DRAWINGS", "/somewhere/else")
    assert drawings_root() == Path("/somewhere/else")
    ignored = subprocess.run(["git", "check-ignore", "-q", "drawings/x.png"], cwd=REPO)
    assert ignored.returncode == 0


@pytest.mark.parametrize("label", [-1, 10, "x", "", 3.5, None, True])
def test_a_label_outside_0_to_9_is_refused_and_nothing_is_written(store, label):
    with pytest.raises(InvalidDrawingError, match="whole number from 0 to 9"):
        store.save(render_digit(3), label, 18)
    assert files(store.root) == []


def test_an_empty_canvas_cannot_be_saved(store):
    with pytest.raises(InvalidDrawingError, match="empty"):
        store.save(np.zeros((280, 280, 4), np.uint8), 1, 18)
    assert files(store.root) == []


def test_a_folder_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = DrawingStore(blocker / "drawings")
    with pytest.raises(DrawingsFolderError, match=str(blocker / "drawings")):
        store.save(render_digit(1), 1, 18)
    assert store.list().drawings == []  # reading it still works: nothing there


def test_a_corrupt_file_is_listed_as_unreadable_and_the_others_still_work(store):
    kept = store.save(render_digit(2), 2, 18)
    (store.root / "20250101T000000000000-00000000000000aa.png").write_bytes(b"not a png at all")
    Image.new("RGBA", (10, 10)).save(store.root / "20250101T000000000000-00000000000000bb.png")  # no label chunk
    good = (store.root / f"{kept}.png").read_bytes()
    (store.root / "20250101T000000000000-00000000000000cc.png").write_bytes(good[: len(good) // 2])  # truncated
    listing = store.list()
    assert [d.id for d in listing.drawings] == [kept]
    reasons = {path.name[-6:-4]: reason for path, reason in listing.unreadable}
    assert "not a PNG" in reasons["aa"] and "not saved by digitlab" in reasons["bb"] and reasons["cc"]
    with pytest.raises(DrawingsError, match="unreadable"):
        store.load("20250101T000000000000-00000000000000aa")
    store.delete("20250101T000000000000-00000000000000aa")  # an unreadable drawing can still be deleted
    assert len(store.list().unreadable) == 2
    assert store.export_zip()  # and the readable ones still export


def test_relabel_and_delete(store):
    first, second = store.save(render_digit(1), 1, 18), store.save(render_digit(7), 1, 18)
    before = store.load(second)
    store.relabel(second, "7")
    after = store.load(second)
    assert after.label == 7 and after.saved_at == before.saved_at and np.array_equal(after.rgba(), before.rgba())
    with pytest.raises(InvalidDrawingError):
        store.relabel(second, 11)
    assert store.load(second).label == 7
    store.delete(first)
    assert [d.id for d in store.list().drawings] == [second]
    with pytest.raises(UnknownDrawingError, match="no drawing"):
        store.relabel(first, 3)
    with pytest.raises(UnknownDrawingError, match="not a drawing id"):
        store.delete("../../etc/passwd")


def test_a_saver_killed_mid_save_loses_nothing_saved_before(tmp_path, store):
    saved = [store.save(render_digit(d), d, 18) for d in (0, 5)]
    before = contents(store)
    pauses = tmp_path / "pauses"
    doomed = saver(pauses, store.root, 8, BEFORE_REPLACE)
    wait_reached(pauses, BEFORE_REPLACE)  # its file is written to a temporary name, not yet renamed
    assert any(name.endswith(".tmp") for name in files(store.root))
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    listing = store.list()
    assert [d.id for d in listing.drawings] == saved and listing.unreadable == []
    assert contents(store) == before
    assert store.save(render_digit(8), 8, 18) in [d.id for d in store.list().drawings]  # and saving goes on


def test_a_relabel_killed_mid_write_leaves_the_old_label(tmp_path, store):
    drawing_id = store.save(render_digit(6), 6, 18)
    pauses = tmp_path / "pauses"
    doomed = subprocess.Popen([sys.executable, "-m", "tests.racers", "relabel-drawing", str(store.root), drawing_id,
                               "0"], cwd=REPO, env=pause_env(pauses, BEFORE_REPLACE))
    wait_reached(pauses, BEFORE_REPLACE)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    assert store.load(drawing_id).label == 6


def test_two_savers_at_once_both_keep_their_drawings(tmp_path, store):
    pauses = [tmp_path / "pauses-a", tmp_path / "pauses-b"]
    savers = [saver(folder, store.root, digit, BEFORE_REPLACE) for folder, digit in zip(pauses, (3, 9))]
    for folder in pauses:  # both are mid-save at the same time, each with its file written under a temporary name
        wait_reached(folder, BEFORE_REPLACE)
    assert sum(name.endswith(".tmp") for name in files(store.root)) == 2
    for folder in pauses:
        release(folder, BEFORE_REPLACE)
    ids = []
    for proc in savers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    listing = store.list()
    assert sorted(d.id for d in listing.drawings) == sorted(ids) and len(set(ids)) == 2
    assert sorted(d.label for d in listing.drawings) == [3, 9]


def test_export_then_import_gives_back_the_same_drawings_and_labels(tmp_path, store):
    for digit, width in ((0, 12), (3, 18), (3, 30), (9, 18)):
        store.save(render_digit(digit, stroke_width=width), digit, width)
    archive = store.export_zip()
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        rows = list(csv.DictReader(io.StringIO(z.read(LABELS_FILE).decode())))
        assert list(rows[0]) == ["file", "label", "saved_at", "stroke_width"]
        assert sorted(z.namelist()) == sorted([LABELS_FILE, *(r["file"] for r in rows)])
    copy = DrawingStore(tmp_path / "elsewhere")
    report = copy.import_zip(archive)
    assert len(report.imported) == 4 and report.refused == []
    assert contents(copy) == contents(store)
    again = copy.import_zip(archive)  # importing the same archive twice adds nothing
    assert again.imported == [] and all("already among the drawings" in r for _, r in again.refused)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_png(digit: int) -> bytes:
    return png(Image.fromarray(render_digit(digit), "RGBA"))


def labels_csv(rows: list[tuple[str, object]]) -> bytes:
    return ("file,label\n" + "".join(f"{file},{label}\n" for file, label in rows)).encode()


def symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a.png", canvas_png(1))
        link = zipfile.ZipInfo("b.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
        z.writestr(LABELS_FILE, labels_csv([("a.png", 1), ("b.png", 2)]))
    return buffer.getvalue()


def too_many_members_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.png", canvas_png(1))
        for i in range(10_000):
            z.writestr(f"empty/{i}.txt", b"")
    return buffer.getvalue()


def oversized_zip() -> bytes:
    """A small archive whose directory says it holds 201 MB: refused on the claim, before reading a byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a.png", canvas_png(1))
        z.writestr(LABELS_FILE, labels_csv([("a.png", 1)]))
        z.infolist()[0].file_size = 201_000_000  # the central directory is written from this at close
    return buffer.getvalue()


BAD_ARCHIVES = {
    "parent": (lambda: zip_of({"a.png": canvas_png(1), "../evil.png": canvas_png(2)}), "points outside"),
    "nested parent": (lambda: zip_of({"a/../../evil.png": canvas_png(2)}), "points outside"),
    "absolute": (lambda: zip_of({"/tmp/evil.png": canvas_png(2)}), "points outside"),
    "drive letter": (lambda: zip_of({"C:/evil.png": canvas_png(2)}), "points outside"),
    "backslashes": (lambda: zip_of({"..\\evil.png": canvas_png(2)}), "points outside"),
    "symlink": (symlink_zip, "symbolic link"),
    "10,001 members": (too_many_members_zip, "10,001 members, more than the 10,000 allowed"),
    "201 MB claimed": (oversized_zip, "201 MB uncompressed, more than the 200 MB allowed"),
    "not a zip": (lambda: b"PK\x03\x04 this is no archive", "not a zip archive"),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_a_bad_archive_is_refused_whole_with_its_reason_and_nothing_is_written(store, case):
    make, reason = BAD_ARCHIVES[case]
    kept = store.save(render_digit(5), 5, 18)
    before = files(store.root)
    with pytest.raises(ArchiveRefusedError, match=reason):
        store.import_zip(make())
    assert files(store.root) == before and [d.id for d in store.list().drawings] == [kept]


def test_a_bad_archive_into_a_new_folder_does_not_even_create_it(store):
    with pytest.raises(ArchiveRefusedError):
        store.import_zip(symlink_zip())
    assert not store.root.exists()


def test_more_bytes_than_allowed_are_refused_even_when_the_directory_understates_them(store, monkeypatch):
    """The bytes really decompressed are counted too: here the limit is lowered, so that three members' worth of
    real bytes cross it while the declared sizes are checked against the real limit."""
    members = {f"{d}.png": canvas_png(d) for d in range(3)}
    archive = zip_of({**members, LABELS_FILE: labels_csv([(name, i) for i, name in enumerate(members)])})
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        declared = sum(m.file_size for m in z.infolist())
    monkeypatch.setattr(drawings_archive, "_check_members", lambda members: members)  # as if the claim were small
    monkeypatch.setattr(drawings_archive, "MAX_ARCHIVE_BYTES", declared - 10)
    with pytest.raises(ArchiveRefusedError, match="more than its directory claims"):
        store.import_zip(archive)
    assert not store.root.exists()


def test_bad_members_are_listed_with_their_reason_and_the_rest_imported(tmp_path, store):
    paper = Image.new("L", (120, 160), 255)  # a grey scan: dark ink on white paper, no alpha
    paper.paste(0, (55, 20, 65, 140))
    jpeg = io.BytesIO()
    paper.save(jpeg, format="JPEG")
    members = {
        "good.png": canvas_png(7),
        "scan.jpg": jpeg.getvalue(),
        "notes.txt": b"hello",
        "broken.png": canvas_png(2)[:200],
        "huge.png": png(Image.new("L", (2001, 10))),
        "empty.png": png(Image.new("RGBA", (280, 280))),
        "unlabelled.png": canvas_png(3),
        "twelve.png": canvas_png(4),
    }
    rows = [(name, 7 if name == "good.png" else 1) for name in members if name not in ("unlabelled.png",)]
    rows = [(name, 12 if name == "twelve.png" else label) for name, label in rows]
    report = store.import_zip(zip_of({**members, LABELS_FILE: labels_csv(rows)}))
    refused = dict(report.refused)
    assert set(refused) == {"notes.txt", "broken.png", "huge.png", "empty.png", "unlabelled.png", "twelve.png"}
    assert "not a readable image" in refused["notes.txt"] and "not a readable image" in refused["broken.png"]
    assert "2,001 × 10 pixels, over the 2,000 × 2,000 allowed" in refused["huge.png"]
    assert "no drawing" in refused["empty.png"]
    assert refused["unlabelled.png"] == "no valid label: labels.csv has no row for it"
    assert "labels.csv gives '12'" in refused["twelve.png"]
    imported = {d.id: d for d in store.list().drawings}
    assert set(imported) == set(report.imported) and sorted(d.label for d in imported.values()) == [1, 7]
    (scan,) = [d for d in imported.values() if d.label == 1]
    rgba = scan.rgba()
    assert rgba.shape == (160, 120, 4) and (rgba[..., 3] == 255).all()  # opaque RGBA
    assert rgba[80, 60, 0] > 200 and rgba[5, 5, 0] < 50  # inverted: light ink on black, as the canvas draws
    assert scan.stroke_width is None


def test_an_archive_without_labels_imports_nothing_and_says_why(store):
    report = store.import_zip(zip_of({"a.png": canvas_png(1)}))
    assert report.imported == [] and report.refused == [("a.png", "no valid label: the archive has no labels.csv")]
    assert not store.root.exists()


def test_a_zipped_folder_is_read_relative_to_its_labels_file(tmp_path, store):
    store.save(render_digit(2), 2, 18)
    archive = store.export_zip()
    nested = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as z, zipfile.ZipFile(nested, "w") as out:
        for info in z.infolist():
            out.writestr(f"my drawings/{info.filename}", z.read(info))
    copy = DrawingStore(tmp_path / "copy")
    assert len(copy.import_zip(nested.getvalue()).imported) == 1 and contents(copy) == contents(store)


@pytest.fixture(scope="module")
def shipped_cnn() -> LoadedRun:
    return RunStore(REPO / "checkpoints").load("shipped-cnn")


def test_score_counts_per_digit_and_preprocesses_as_draw_does_with_the_runs_scaling(store, shipped_cnn):
    for digit in range(10):
        store.save(render_digit(digit, box=(40 + 8 * digit, 30, 150 + 8 * digit, 230)), digit, 18)
    store.save(render_digit(1), 7, 18)  # labelled wrong on purpose: no model can get it right
    listing = store.list()
    for run in (shipped_cnn, replace(shipped_cnn, record=replace(shipped_cnn.record,
                                                                   config=shipped_cnn.config.replace(
                                                                       input_scaling="half")))):
        result = score(run, listing.drawings)
        # What Draw shows for each drawing: the canvas through the run's own input_from_canvas.
        expected = {d.id: predict(run.model, run.input_from_canvas(d.rgba()))[0].argmax().item()
                    for d in listing.drawings}
        assert result.predicted == expected
        assert result.count == 11 and result.correct == sum(expected[d.id] == d.label for d in listing.drawings)
        assert result.accuracy == result.correct / 11
        per_digit = result.per_digit
        assert [count for _, count in per_digit.values()] == [1, 1, 1, 1, 1, 1, 1, 2, 1, 1]
        assert sum(correct for correct, _ in per_digit.values()) == result.correct
        assert listing.drawings[-1].id in result.wrong or expected[listing.drawings[-1].id] == 7
    assert score(shipped_cnn, []).accuracy is None


def test_cli_eval_drawings(tmp_path, store, capsys, monkeypatch):
    for digit in (1, 1, 4):
        store.save(render_digit(digit), digit, 18)
    (store.root / "20250101T000000000000-00000000000000aa.png").write_bytes(b"junk")
    out = str(REPO / "checkpoints")
    assert main(["eval", "shipped-cnn", "--out", out, "--drawings", str(store.root)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("run=shipped-cnn drawings=3 drawings_acc=") and "unreadable=1" in lines[0]
    correct = int(lines[0].split("correct=")[1].split()[0])
    assert lines[0].split("drawings_acc=")[1].split()[0] == f"{correct / 3:.4f}"
    assert len(lines) == 11 and lines[2].startswith("  1: ") and lines[2].split()[1].endswith("/2")
    assert lines[5].startswith("  4: ") and lines[5].split()[1].endswith("/1") and lines[1] == "  0: 0/0"
    assert "skipped 20250101T000000000000-00000000000000aa.png" in captured.err

    monkeypatch.setenv("DIGITLAB_DRAWINGS", str(store.root))  # --drawings alone: the setting's folder
    assert main(["eval", "shipped-cnn", "--out", out, "--drawings"]) == 0
    assert capsys.readouterr().out.startswith("run=shipped-cnn drawings=3 ")

    (tmp_path / "empty").mkdir()
    assert main(["eval", "shipped-cnn", "--out", out, "--drawings", str(tmp_path / "empty")]) == 2
    assert "no readable drawings in" in capsys.readouterr().err
    assert main(["eval", "shipped-cnn", "--out", out, "--drawings", str(tmp_path / "missing")]) == 2
    assert f"the drawings folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
