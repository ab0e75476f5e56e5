import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.engine import train
from digitlab.recorder import RunRecorder, downsample, record_training
from digitlab.shipping import ship
from digitlab.store import (
    INTERRUPTED_MESSAGE,
    LOCK_FILE,
    RUN_FILE,
    WEIGHTS_FILE,
    InvalidRunIdError,
    ProtectedRunError,
    RunError,
    RunStore,
    atomic_write,
    load_run,
    write_json,
)

REPO = Path(__file__).resolve().parent.parent
TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=2, name="tiny")


@pytest.fixture
def trained(tiny_data, store_root):
    store = RunStore(store_root)
    return store, record_training(store, TINY, train(TINY, tiny_data))


def test_round_trip(trained, tiny_data):
    store, record = trained
    assert record.status == "completed" and record.name == "tiny"
    assert (record.path / WEIGHTS_FILE).is_file() and (record.path / RUN_FILE).is_file()
    data = json.loads((record.path / RUN_FILE).read_text())
    assert data["config"] == TINY.to_dict()
    assert [e["epoch"] for e in data["epochs"]] == [1, 2]
    assert data["versions"]["torch"] == torch.__version__ and data["versions"]["digitlab"]
    assert data["device"] == "cpu" and data["param_count"] > 0
    assert len(data["batches"]["loss"]) == 10 and data["final"]["train_s"] > 0
    loaded = load_run(record.id, root=store.root)
    assert loaded.config == TINY and not loaded.model.training
    assert loaded.metrics["final"]["test_acc"] == record.final["test_acc"]
    assert load_run(record.path).id == record.id  # by folder path too
    from digitlab.engine import evaluate
    from digitlab.data import to_device

    _, acc = evaluate(loaded.model, to_device(tiny_data, torch.device("cpu")).test)
    assert acc == pytest.approx(record.final["test_acc"])


def test_listing_reports_unreadable_folders_without_failing(trained):
    store, record = trained
    corrupt = store.root / "corrupt"
    corrupt.mkdir()
    (corrupt / RUN_FILE).write_text('{"config": {"model": "cnn"', encoding="utf-8")
    foreign = store.root / "foreign"
    foreign.mkdir()
    torch.save({"w": torch.zeros(1)}, foreign / "model.pt")
    no_weights = store.root / "no-weights"
    no_weights.mkdir()
    (no_weights / RUN_FILE).write_text((record.path / RUN_FILE).read_text())
    bad_config = store.root / "bad-config"
    bad_config.mkdir()
    write_json(bad_config / RUN_FILE, {"status": "completed", "config": {"model": "cnn", "colour": "red"}})
    wrong_weights = store.root / "wrong-weights"
    wrong_weights.mkdir()
    write_json(wrong_weights / RUN_FILE, {**json.loads((record.path / RUN_FILE).read_text()),
                                          "config": {**TINY.to_dict(), "model_options": {"hidden": [99]}}})
    (wrong_weights / WEIGHTS_FILE).write_bytes((record.path / WEIGHTS_FILE).read_bytes())
    (store.root / "stray-file.txt").write_text("not a run")

    listing = store.list()
    assert [r.id for r in listing.runs] == [record.id]
    reasons = {path.name: reason for path, reason in listing.unreadable}
    assert "not valid JSON" in reasons["corrupt"]
    assert "not a digitlab run" in reasons["foreign"] and "model.pt" in reasons["foreign"]
    assert "weights.safetensors is missing" in reasons["no-weights"]
    assert "colour" in reasons["bad-config"]
    assert "another architecture" in reasons["wrong-weights"] and "1.weight" in reasons["wrong-weights"]
    with pytest.raises(RunError, match="another architecture"):
        store.load("wrong-weights")


def test_garbage_weights_file_is_a_clear_error(trained):
    store, record = trained
    (record.path / WEIGHTS_FILE).write_bytes(b"\x80\x04this is a pickle, not safetensors")
    with pytest.raises(RunError, match="cannot be read"):
        store.load(record.id)


@pytest.mark.parametrize("bad_id", ["../escape", "..", "a/b", "/etc", ".hidden", "", "a\\b", "x" * 200, "a..b"])
def test_traversal_ids_are_refused(store_root, bad_id):
    store = RunStore(store_root)
    with pytest.raises(InvalidRunIdError):
        store.path_for(bad_id)
    with pytest.raises(InvalidRunIdError):
        store.delete(bad_id)


def test_generated_ids_are_safe_and_unique(store_root):
    store = RunStore(store_root)
    ids = {store.create_folder(TINY)[0] for _ in range(20)}
    assert len(ids) == 20
    for run_id in ids:
        assert store.path_for(run_id).parent == store.root


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind


def test_a_running_run_of_a_dead_process_becomes_interrupted(store_root, tiny_data):
    store = RunStore(store_root)
    recorder = RunRecorder(store, TINY)
    assert store.read(recorder.run_id).status == "running"  # this process holds the lock
    recorder._release_lock()  # what the kernel does when the process dies
    record = store.read(recorder.run_id)
    assert record.status == "interrupted"
    assert json.loads((record.path / RUN_FILE).read_text())["status"] == "interrupted"


def test_read_only_mode_shows_a_dead_trainers_run_as_interrupted_and_changes_nothing(store_root, monkeypatch):
    store = RunStore(store_root)
    recorder = RunRecorder(store, TINY)
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    assert store.read(recorder.run_id).status == "running"  # this process holds the lock: its trainer is alive
    recorder._release_lock()  # the trainer died
    (store_root / ".deleted-old").mkdir()  # a delete that crashed half-way
    leftover = recorder.path / ".run.json.0badf00d.tmp"  # a write that never finished
    leftover.write_text("{")
    os.utime(leftover, (time.time() - 3600,) * 2)

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(store_root)): p.read_bytes() if p.is_file() else b"" for p in store_root.rglob("*")}

    for lock in ("held by no one", "absent, as in a copied store"):
        if lock.startswith("absent"):
            (recorder.path / LOCK_FILE).unlink()
        before = files()
        record = store.read(recorder.run_id)
        assert (record.status, record.message) == ("interrupted", INTERRUPTED_MESSAGE), lock
        assert [r.status for r in store.list().runs] == ["interrupted"]
        assert files() == before, lock


def test_killed_training_process_leaves_finished_epochs(tiny_data_root, store_root):
    """kill -9 in the middle of training: the epochs written so far survive, and the run reads as interrupted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "train", "--preset", "fast", "--epochs", "200", "--batch-size", "16",
         "--data", str(tiny_data_root), "--out", str(store_root), "--quiet", "--no-download"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = list(store_root.glob("*/run.json"))
            if runs and len(json.loads(runs[0].read_text() or "{}").get("epochs", [])) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training wrote no epoch within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    listing = RunStore(store_root).list()
    assert listing.unreadable == []
    (record,) = listing.runs
    assert record.status == "interrupted" and len(record.epochs) >= 2
    assert RunStore(store_root).load(record.id).model is not None


def test_downsample_bounds_the_points_and_keeps_the_mean():
    values = [float(i) for i in range(10_001)]  # buckets of 6 values
    small = downsample(values, 2000)
    assert len(small) <= 2000
    assert small[0] == pytest.approx(2.5) and sum(small) / len(small) == pytest.approx(5000, rel=0.01)
    assert downsample(values[:5], 2000) == values[:5]


def test_delete_rename_and_shipped_protection(trained, tiny_data):
    store, record = trained
    store.rename(record.id, "  renamed  ")
    assert store.read(record.id).name == "renamed"
    with pytest.raises(RunError):
        store.rename(record.id, "   ")
    shipped = ship(store, record.id, tiny_data).record
    assert shipped.id == "shipped-mlp" and shipped.shipped
    with pytest.raises(ProtectedRunError):
        store.delete(shipped.id)
    with pytest.raises(ProtectedRunError):
        store.rename(shipped.id, "mine now")
    assert store.read(shipped.id).shipped


def test_delete_removes_the_folder(trained):
    store, record = trained
    store.delete(record.id)
    assert not record.path.exists()
    assert store.list().runs == [] and store.list().unreadable == []
    assert not any(store.root.iterdir())


def test_a_run_being_trained_cannot_be_deleted(store_root):
    store = RunStore(store_root)
    recorder = RunRecorder(store, TINY)
    with pytest.raises(ProtectedRunError, match="still training"):
        store.delete(recorder.run_id)
    recorder._release_lock()  # the trainer died: now it is interrupted, and may go
    store.delete(recorder.run_id)
    assert not (store.root / recorder.run_id).exists()


def test_a_crash_inside_training_marks_the_run_failed(store_root, tiny_data):
    store = RunStore(store_root)

    def crashing():
        yield from train(TINY, tiny_data)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        record_training(store, TINY, crashing())
    (record,) = store.list().runs
    assert record.status == "failed" and "out of memory" in record.message


def test_nothing_in_the_library_unpickles():
    """No torch.load anywhere in digitlab/: weights are safetensors and run.json is JSON."""
    import re

    sources = "\n".join(p.read_text() for p in (REPO / "digitlab").rglob("*.py"))
    assert not re.search(r"torch\.load\(|import pickle|pickle\.loads?\(|weights_only=False", sources)
