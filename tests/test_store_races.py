"""The run store against real processes racing it: a trainer, a reader, a renamer, a writer killed mid-write.

Each race is replayed step by step with pause points (digitlab.pause), so a test fails every time on code that has
the race, not once in a while.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitlab.store import RUN_FILE, WEIGHTS_FILE, RunBusyError, RunError, RunStore
from tests.pausing import pause_env, release, wait_reached

REPO = Path(__file__).resolve().parent.parent


def racer(pauses: Path, points: tuple[str, ...], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.racers", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pause_env(pauses, *points))


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def run_id_of(trainer: subprocess.Popen) -> str:
    return trainer.stdout.readline().strip()


def test_a_reader_never_marks_a_run_interrupted_that_its_trainer_just_finished(tmp_path, store_root, tiny_data_root):
    pauses = tmp_path / "pauses"
    trainer = racer(pauses, ("recorder.run_end",), "train", store_root, tiny_data_root)
    run_id = run_id_of(trainer)
    wait_reached(pauses, "recorder.run_end")  # trained, holding the lock, run.json still says running
    reader = racer(pauses, ("store.read.after_json",), "read", store_root, run_id)
    wait_reached(pauses, "store.read.after_json")  # the reader has seen "running"
    release(pauses, "recorder.run_end")
    assert finish(trainer).split()[-1] == "completed"  # the trainer wrote its end and released the lock
    release(pauses, "store.read.after_json")
    finish(reader)
    assert json.loads((store_root / run_id / RUN_FILE).read_text())["status"] == "completed"
    assert RunStore(store_root).read(run_id).status == "completed"


def test_a_running_run_cannot_be_renamed_and_a_finished_one_keeps_its_new_name(tmp_path, store_root,
                                                                                 tiny_data_root):
    pauses = tmp_path / "pauses"
    store = RunStore(store_root)
    trainer = racer(pauses, ("recorder.epoch_end",), "train", store_root, tiny_data_root)
    run_id = run_id_of(trainer)
    wait_reached(pauses, "recorder.epoch_end")  # epoch 1 done, about to write it
    try:
        store.rename(run_id, "renamed mid-run")
        refusal = None
    except RunError as err:
        refusal = str(err)
    release(pauses, "recorder.epoch_end")
    finish(trainer)
    record = store.read(run_id)
    assert record.status == "completed"
    # Either the rename was refused with a reason, or it stuck: never accepted and then silently undone.
    assert refusal is not None, f"the rename was accepted, and the trainer's next write left the name {record.name!r}"
    assert "training" in refusal
    store.rename(run_id, "renamed after")
    assert store.read(run_id).name == "renamed after"


def test_rename_and_delete_of_a_live_run_are_refused_with_a_reason(store_root):
    from digitlab.recorder import RunRecorder
    from tests.racers import TINY

    store = RunStore(store_root)
    recorder = RunRecorder(store, TINY)  # this process holds the run's lock, as its trainer would
    for action in (lambda: store.rename(recorder.run_id, "x"), lambda: store.delete(recorder.run_id)):
        with pytest.raises(RunBusyError, match="still training"):
            action()
    recorder._release_lock()


def _backdate(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_leftover_temporary_files_of_a_dead_writer_are_removed(tmp_path, store_root):
    pauses = tmp_path / "pauses"
    run = store_root / "some-run"
    run.mkdir(parents=True)
    writer = racer(pauses, ("files.atomic_write.before_replace",), "write-json", run / RUN_FILE)
    wait_reached(pauses, "files.atomic_write.before_replace")
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    (leftover,) = run.glob(".*.tmp")
    _backdate(leftover)
    RunStore(store_root).list()
    assert not leftover.exists()


def test_a_temporary_file_a_live_writer_holds_is_never_removed(tmp_path, store_root):
    pauses = tmp_path / "pauses"
    run = store_root / "some-run"
    run.mkdir(parents=True)
    writer = racer(pauses, ("files.atomic_write.before_replace",), "write-json", run / RUN_FILE)
    wait_reached(pauses, "files.atomic_write.before_replace")
    (pending,) = run.glob(".*.tmp")
    _backdate(pending)  # old, but its writer is alive: the lock it holds is what protects it
    RunStore(store_root).list()
    assert pending.exists()
    release(pauses, "files.atomic_write.before_replace")
    finish(writer)
    assert json.loads((run / RUN_FILE).read_text()) == {"written": True}
    assert not list(run.glob(".*.tmp"))


def test_an_unreadable_folder_can_be_deleted_but_not_a_live_or_shipped_one(store_root):
    store = RunStore(store_root)
    junk = store_root / "junk"
    junk.mkdir(parents=True)
    (junk / RUN_FILE).write_text("{not json")
    (junk / WEIGHTS_FILE).write_bytes(b"garbage")
    (reason,) = [reason for path, reason in store.list().unreadable if path == junk]
    assert "not valid JSON" in reason
    store.delete("junk")
    assert not junk.exists() and store.list().unreadable == []

    shipped = store_root / "shipped-cnn"
    shipped.mkdir()
    (shipped / RUN_FILE).write_text("{not json")
    with pytest.raises(RunError, match="shipped"):
        store.delete("shipped-cnn")
    assert shipped.exists()

    from digitlab.recorder import RunRecorder
    from tests.racers import TINY

    recorder = RunRecorder(store, TINY)
    (recorder.path / RUN_FILE).write_text("{half written")  # unreadable for now, but its trainer is alive
    with pytest.raises(RunBusyError):
        store.delete(recorder.run_id)
    assert recorder.path.exists()
    recorder._release_lock()


def test_a_trainer_killed_by_force_leaves_a_stopped_run_with_its_finished_epochs(tmp_path, store_root,
                                                                                  tiny_data_root):
    pauses = tmp_path / "pauses"
    store = RunStore(store_root)
    trainer = racer(pauses, ("recorder.run_end",), "train", store_root, tiny_data_root)
    run_id = run_id_of(trainer)
    wait_reached(pauses, "recorder.run_end")  # both epochs written, the end not yet
    with pytest.raises(RunBusyError):
        store.mark_stopped(run_id, "never while it lives")
    trainer.kill()
    trainer.wait(10)
    record = store.mark_stopped(run_id, "Ended by force after the grace period.")
    assert record.status == "stopped" and record.message == "Ended by force after the grace period."
    assert [e["epoch"] for e in record.epochs] == [1, 2] and record.final["epochs_done"] == 2
    assert record.final["test_acc"] == record.epochs[-1]["test_acc"] and record.usable
    assert store.mark_stopped(run_id, "again").message == "Ended by force after the grace period."  # ended: kept


def test_a_run_ended_by_force_before_its_first_epoch_is_kept_but_not_usable(store_root):
    from digitlab.recorder import RunRecorder
    from tests.racers import TINY

    store = RunStore(store_root)
    recorder = RunRecorder(store, TINY)
    recorder._release_lock()  # what the kernel does when the killed trainer's process ends
    record = store.mark_stopped(recorder.run_id, "Ended by force.")
    assert record.status == "stopped" and record.epochs == [] and not record.has_weights and not record.usable
    assert [r.id for r in store.list().runs] == [recorder.run_id]
