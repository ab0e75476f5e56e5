import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import psutil
import pytest

from digitlab.config import TrainConfig
from digitlab.dashboard.jobs.coordinator import Coordinator, JobBusyError
from digitlab.dashboard.jobs.follow import AdoptedJob, TrainingJob
from digitlab.recorder import RunRecorder
from digitlab.store import RunStore, load_model
from tests.conftest import REPO
from tests.pausing import pause_env, release, wait_reached

QUICK = TrainConfig(model="mlp", model_options={"hidden": [16]}, lr=0.01, batch_size=50, epochs=2)
SLOW = QUICK.replace(batch_size=4, epochs=200)  # thousands of batches: stops well before the end


def wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail("timed out")


@pytest.fixture
def manager(tiny_data_root, store_root):
    return Coordinator(RunStore(store_root), tiny_data_root)


def test_a_job_runs_to_completion_and_is_stored(manager):
    job = manager.start_run(QUICK, owner="tab-1")
    assert job.join(60)
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "completed" and snap.owner == "tab-1"
    assert len(snap.epochs) == 2 and snap.final["test_acc"] > 0 and snap.progress == 1.0
    assert snap.precision in ("fp32", "bf16") and snap.precision == manager.store.read(snap.run_id).data["precision"]
    assert len(snap.batches["loss"]) == 12  # 2 epochs x ceil(300 / 50)
    record = manager.store.read(snap.run_id)
    assert record.status == "completed" and record.final == snap.final


def test_snapshots_grow_while_it_runs(manager):
    job = manager.start_run(SLOW)
    wait_for(lambda: job.snapshot().batch >= 5)
    first = job.snapshot()
    wait_for(lambda: job.snapshot().samples_seen > first.samples_seen + 100)
    second = job.snapshot()
    assert second.version > first.version and second.running
    assert second.images_per_s > 0 and second.eta_s > 0 and 0 < second.progress < 1
    assert second.device_name.startswith("CPU") and second.param_count > 0
    job.stop()
    job.join(30)


def test_stop_ends_the_job_before_its_next_batch_and_keeps_the_run(monkeypatch, tmp_path, tiny_data_root,
                                                                    store_root):
    """The trainer checks the stop event before every batch (tests/test_engine.py holds the engine to one batch):
    pressed while the trainer is held at the end of epoch 1, the stop lets no batch of epoch 2 train."""
    pause_here(monkeypatch, tmp_path / "pause", "train.after_epoch")
    manager = Coordinator(RunStore(store_root), tiny_data_root)
    job = manager.start_run(SLOW)
    wait_reached(tmp_path / "pause", "train.after_epoch")
    job.stop()
    release(tmp_path / "pause", "train.after_epoch")
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.stop_requested and "during epoch 2" in snap.message
    assert snap.samples_seen == snap.epochs[0]["samples_seen"] == 300  # not one image of epoch 2
    record = manager.store.read(snap.run_id)
    assert record.status == "stopped" and len(record.epochs) == 1 and record.has_weights


def test_one_job_at_a_time(manager):
    job = manager.start_run(SLOW, owner="tab-1")
    with pytest.raises(JobBusyError) as busy:
        manager.start_run(QUICK, owner="tab-2")
    assert busy.value.snapshot.owner == "tab-1" and busy.value.snapshot.config == SLOW
    assert "already training" in str(busy.value)
    assert manager.latest_run is job  # no second job
    job.stop()
    job.join(30)
    second = manager.start_run(QUICK)  # free again once the first ended
    assert second.join(60) and second.snapshot().status == "completed"


def test_invalid_config_is_refused_before_any_thread(manager):
    with pytest.raises(ValueError, match="batch_size"):
        manager.start_run(QUICK.replace(batch_size=0))
    assert manager.latest_run is None


def test_a_crash_inside_the_worker_becomes_a_failed_run(tiny_data_root, store_root, tmp_path):
    # Labels out of range: cross-entropy raises inside training.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_data_root, broken)
    labels = broken / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8:] = bytes(20 + b for b in raw[8:])
    labels.write_bytes(bytes(raw))
    manager = Coordinator(RunStore(store_root), broken)
    job = manager.start_run(QUICK)
    assert job.join(60)  # it ends: no hung page
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "failed"
    assert "Training failed" in snap.message and "out of bounds" in snap.message
    (record,) = manager.store.list().runs
    assert record.status == "failed" and "out of bounds" in record.message


def test_missing_data_fails_the_job_with_the_reason(store_root, tmp_path):
    job = Coordinator(RunStore(store_root), tmp_path / "nowhere").start_run(QUICK)
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "failed" and str(tmp_path / "nowhere") in snap.message


def test_a_killed_training_process_becomes_a_failed_job_and_an_interrupted_run(manager):
    job = manager.start_run(SLOW)
    wait_for(lambda: job.snapshot().epoch >= 2)
    os.kill(job.trainer.process.pid, signal.SIGKILL)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "ended unexpectedly" in snap.message
    record = manager.store.read(snap.run_id)
    assert record.status == "interrupted" and len(record.epochs) >= 1


def pause_here(monkeypatch, folder, *points) -> None:
    """Make the children started from now on stop at ``points`` (a spawned child copies os.environ at start)."""
    for name, value in pause_env(folder, *points).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)


def test_stop_ends_a_trainer_stuck_before_its_data_by_force(monkeypatch, tmp_path, tiny_data_root, store_root):
    """Stuck before its first batch (in an MNIST download, say), the trainer never sees the stop event: after the
    grace period its process is ended, and no run is left."""
    pause_here(monkeypatch, tmp_path / "pause", "train.before_data")
    manager = Coordinator(RunStore(store_root), tiny_data_root, stop_grace_s=1.0)
    job = manager.start_run(QUICK)
    wait_reached(tmp_path / "pause", "train.before_data")
    pressed = time.perf_counter()
    job.stop()
    assert job.join(15)
    assert 1.0 <= time.perf_counter() - pressed < 10
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "stopped" and snap.stop_requested
    assert "by force" in snap.message and "grace period" in snap.message
    assert not job.trainer.process.is_alive()
    assert manager.store.list().runs == []


def test_a_stop_the_trainer_ignores_ends_it_by_force_and_keeps_its_finished_epochs(
        monkeypatch, tmp_path, tiny_data_root, store_root):
    pause_here(monkeypatch, tmp_path / "pause", "train.after_epoch")
    manager = Coordinator(RunStore(store_root), tiny_data_root, stop_grace_s=1.0)
    job = manager.start_run(SLOW)
    wait_reached(tmp_path / "pause", "train.after_epoch")  # epoch 1 is written; the trainer hangs after it
    job.stop()
    assert job.join(15)
    snap = job.snapshot()
    assert snap.status == "stopped" and "by force" in snap.message and len(snap.epochs) == 1
    assert snap.final["epochs_done"] == 1
    record = manager.store.read(snap.run_id)
    assert record.status == "stopped" and "by force" in record.message and len(record.epochs) == 1
    assert record.final["test_acc"] == record.epochs[0]["test_acc"]
    assert load_model(record) is not None  # the weights of epoch 1's end


def test_clear_caches_keeps_the_running_job(monkeypatch, tiny_data_root, store_root):
    import streamlit as st

    from digitlab.dashboard.ui import loaders

    monkeypatch.setenv("DIGITLAB_CHECKPOINTS", str(store_root))
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data_root))
    job = loaders.coordinator().start_run(SLOW)
    st.cache_resource.clear()  # the menu's "Clear caches"
    assert loaders.coordinator().latest_run is job and job.running
    job.stop()
    assert job.join(30)


def test_an_error_in_the_follower_fails_the_job_and_stops_the_trainer(manager, monkeypatch):
    apply = TrainingJob._apply

    def broken(self, kind, payload):
        if kind == "epoch":
            raise RuntimeError("follower broke")
        apply(self, kind, payload)

    monkeypatch.setattr(TrainingJob, "_apply", broken)
    job = manager.start_run(SLOW)
    assert job.join(30)  # never "running" forever
    snap = job.snapshot()
    assert snap.status == "failed" and "follower broke" in snap.message
    assert not job.trainer.process.is_alive()  # asked to stop, it stopped
    (record,) = manager.store.list().runs
    assert record.status == "stopped" and record.epochs


ORPHAN_SCRIPT = """
import sys, time
from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.store import RunStore
from tests.test_jobs import SLOW
manager = Coordinator(RunStore(sys.argv[1]), sys.argv[2])
if sys.argv[3] == "warm":
    manager.warm_up()
    while manager.warm_trainer is None or not manager.warm_trainer.ready.is_set():
        time.sleep(0.02)
job = manager.start_run(SLOW.replace(epochs=1000), owner="tab-1")
while not job.snapshot().epochs:
    time.sleep(0.02)
print(job.snapshot().run_id, flush=True)
time.sleep(300)
"""


def orphan_a_trainer(store_root, data_root, env=None, warm=False) -> str:
    """Start a trainer through a Coordinator in another process (``warm``: the one it kept ready), then kill that
    process (a server's kill -9) once an epoch has finished: the trainer goes on alone. Its run id."""
    server = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, str(store_root), str(data_root),
                               "warm" if warm else "cold"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        run_id = server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    assert run_id, "the first server did not start a run"
    return run_id


def test_a_new_manager_adopts_a_trainer_whose_server_was_killed_and_stops_it(tiny_data_root, store_root):
    run_id = orphan_a_trainer(store_root, tiny_data_root)
    manager = Coordinator(RunStore(store_root), tiny_data_root)
    job = manager.latest_run
    assert isinstance(job, AdoptedJob) and job.running
    first = job.snapshot()
    assert first.run_id == run_id and first.owner == "tab-1" and first.config.epochs == 1000
    wait_for(lambda: job.snapshot().samples_seen > first.samples_seen + 300, 30)  # still training, and seen
    second = job.snapshot()
    assert len(second.epochs) > len(first.epochs) and second.images_per_s > 0 and second.batches["loss"]
    with pytest.raises(JobBusyError):
        manager.start_run(QUICK)
    job.stop()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.status == "stopped" and "Stopped by request" in snap.message
    record = manager.store.read(run_id)
    assert record.status == "stopped" and len(record.epochs) >= len(second.epochs) and record.has_weights
    assert Coordinator(manager.store).latest_run is None  # nothing left to adopt


def test_an_adopted_trainer_that_ignores_stop_is_ended_by_force(tmp_path, tiny_data_root, store_root):
    env = pause_env(tmp_path / "pause", "train.after_epoch")
    run_id = orphan_a_trainer(store_root, tiny_data_root, env)
    manager = Coordinator(RunStore(store_root), tiny_data_root, stop_grace_s=1.0)
    job = manager.latest_run
    assert job.snapshot().run_id == run_id
    job.stop()
    assert job.join(15)
    snap = job.snapshot()
    assert snap.status == "stopped" and "by force" in snap.message and len(snap.epochs) == 1
    record = manager.store.read(run_id)
    assert record.status == "stopped" and len(record.epochs) == 1 and record.has_weights


def test_a_cli_run_in_the_same_store_is_not_adopted(store_root):
    recorder = RunRecorder(RunStore(store_root), QUICK)  # training, lock held, as `python -m digitlab train`
    assert RunStore(store_root).read(recorder.run_id).status == "running"
    assert Coordinator(RunStore(store_root)).latest_run is None
    recorder.fail(RuntimeError("the test is over"))


def test_read_only_mode_refuses_to_start_or_stop_a_job(manager, monkeypatch):
    from digitlab.dashboard.access import ReadOnlyError

    job = manager.start_run(SLOW)
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="Training is turned off"):
        manager.start_run(QUICK)
    with pytest.raises(ReadOnlyError, match="Stopping a run is turned off"):
        job.stop()
    assert job.running and not job.snapshot().stop_requested
    monkeypatch.delenv("DIGITLAB_READ_ONLY")
    job.stop()
    assert job.join(30) and job.snapshot().status == "stopped"


# --- the warm trainer ------------------------------------------------------------------------------------------------

@pytest.fixture
def warm_manager(monkeypatch, tiny_data_root, store_root):
    """A manager that keeps a trainer ready, as the dashboard's does; its idle trainer is ended afterwards."""
    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "1")
    manager = Coordinator(RunStore(store_root), tiny_data_root)
    yield manager
    manager.close()


def ready_trainer(manager):
    """warm_up(), then the ready trainer once it has loaded MNIST."""
    manager.warm_up()
    wait_for(lambda: manager.warm_trainer is not None and manager.warm_trainer.ready.is_set())
    return manager.warm_trainer


def process_ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_train_hands_its_config_to_the_ready_trainer_and_a_fresh_one_is_ready_after_the_run(warm_manager):
    warm = ready_trainer(warm_manager)
    job = warm_manager.start_run(QUICK, owner="tab-1")
    assert job.trainer.process is warm.process  # no process started at the click
    assert warm_manager.warm_trainer is None  # taken
    assert job.join(60) and job.snapshot().status == "completed"
    assert warm_manager.store.read(job.snapshot().run_id).data["pid"] == warm.process.pid
    wait_for(lambda: warm_manager.warm_trainer is not None)
    after = warm_manager.warm_trainer
    assert after.process.pid != warm.process.pid  # one trainer per run: nothing of the first run is left in it
    wait_for(lambda: process_ended(warm.process.pid), 10)
    second = warm_manager.start_run(QUICK.replace(epochs=1))
    assert second.trainer.process is after.process and second.join(60) and second.snapshot().status == "completed"


def test_a_warm_trainer_crash_fails_the_run_and_a_new_trainer_is_made_ready(warm_manager):
    warm = ready_trainer(warm_manager)
    job = warm_manager.start_run(SLOW)
    wait_for(lambda: job.snapshot().epoch >= 2)
    os.kill(warm.process.pid, signal.SIGKILL)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "ended unexpectedly" in snap.message
    assert warm_manager.store.read(snap.run_id).status == "interrupted"
    wait_for(lambda: warm_manager.warm_trainer is not None)
    assert warm_manager.warm_trainer.process.is_alive()


def test_a_forced_stop_replaces_the_warm_trainer(monkeypatch, tmp_path, tiny_data_root, store_root):
    pause_here(monkeypatch, tmp_path / "pause", "train.after_epoch")
    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "1")
    manager = Coordinator(RunStore(store_root), tiny_data_root, stop_grace_s=1.0)
    try:
        warm = ready_trainer(manager)
        pause_here(monkeypatch, tmp_path / "pause-none", "nowhere")  # the next trainer must not hang too
        job = manager.start_run(SLOW)
        wait_reached(tmp_path / "pause", "train.after_epoch")
        job.stop()
        assert job.join(15)
        snap = job.snapshot()
        assert snap.status == "stopped" and "by force" in snap.message and len(snap.epochs) == 1
        assert not warm.process.is_alive()
        wait_for(lambda: manager.warm_trainer is not None)
        assert manager.warm_trainer.process.pid != warm.process.pid
        second = manager.start_run(QUICK)
        assert second.join(60) and second.snapshot().status == "completed"
    finally:
        manager.close()


IDLE_SERVER_SCRIPT = """
import sys, time
from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.store import RunStore
manager = Coordinator(RunStore(sys.argv[1]), sys.argv[2])
manager.warm_up()
while manager.warm_trainer is None or not manager.warm_trainer.ready.is_set():
    time.sleep(0.02)
print(manager.warm_trainer.process.pid, flush=True)
time.sleep(300)
"""


def test_an_idle_warm_trainer_ends_when_its_server_dies(monkeypatch, tiny_data_root, store_root):
    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "1")
    server = subprocess.Popen([sys.executable, "-c", IDLE_SERVER_SCRIPT, str(store_root), str(tiny_data_root)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(server.stdout.readline())
        assert not process_ended(pid)
    finally:
        server.kill()  # a kill -9: no exit handler of the server's runs
        server.wait()
        server.stdout.close()
    wait_for(lambda: process_ended(pid), 5)


def test_read_only_mode_keeps_no_trainer_ready(warm_manager, monkeypatch):
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    before = {child.pid for child in psutil.Process().children()}
    warm_manager.warm_up()
    for thread in threading.enumerate():
        if thread.name == "digitlab-warm-up":
            thread.join()
    assert warm_manager.warm_trainer is None
    assert {child.pid for child in psutil.Process().children()} <= before


def test_clear_caches_keeps_the_ready_trainer(monkeypatch, tiny_data_root, store_root):
    import streamlit as st

    from digitlab.dashboard.ui import loaders

    monkeypatch.setenv("DIGITLAB_CHECKPOINTS", str(store_root))
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data_root))
    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "1")
    manager = loaders.coordinator()
    try:
        warm = ready_trainer(manager)
        st.cache_resource.clear()  # the menu's "Clear caches"
        assert loaders.coordinator().warm_trainer is warm and warm.process.is_alive()
    finally:
        manager.close()


def test_a_trainer_started_warm_outlives_its_server_and_is_adopted(tiny_data_root, store_root):
    run_id = orphan_a_trainer(store_root, tiny_data_root, {**os.environ, "DIGITLAB_WARM_TRAINER": "1"}, warm=True)
    manager = Coordinator(RunStore(store_root), tiny_data_root)
    job = manager.latest_run
    assert isinstance(job, AdoptedJob) and job.running and job.snapshot().run_id == run_id
    first = job.snapshot().samples_seen
    wait_for(lambda: job.snapshot().samples_seen > first, 30)  # still training, alone
    job.stop()
    assert job.join(10) and job.snapshot().status == "stopped"


def test_a_study_runs_in_the_ready_trainer_as_its_first_worker(monkeypatch, tiny_data_root, store_root):
    from digitlab import study

    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "1")
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data_root))
    store = RunStore(store_root)
    jobs = Coordinator.for_store(store)
    try:
        warm = ready_trainer(jobs)
        spec = study.define_study("warm", QUICK, repeat=2, validation_size=50)
        running = jobs.start_study(spec, workers=2)
        assert running.process is warm.process and jobs.warm_trainer is None
        assert running.join(120)  # the study job reaps its process: a second join could race it
        assert running.process.exitcode == 0
        runs = store.list().runs
        assert len(runs) == 2 and {r.status for r in runs} == {"completed"}
        assert warm.process.pid in {r.data["pid"] for r in runs}  # it trained, it did not only wait
        jobs.warm_up()  # the Train page's next visit: a trainer is made ready again
        wait_for(lambda: jobs.warm_trainer is not None)
    finally:
        jobs.close()


def test_a_trainer_spawned_from_a_script_run_does_not_run_the_script(tmp_path, tiny_data_root, monkeypatch):
    """Streamlit runs a page as the module __main__ with the page's __file__, and a process spawned then runs its
    parent's main file again before its target ("safe importing of the main module"): app.py's whole page, in every
    trainer, which then held its own Coordinator (adopting the runs of the store) and the pages' modules."""
    from digitlab.dashboard.jobs.trainer import WarmTrainer

    marker = tmp_path / "the script ran here"
    script = tmp_path / "page.py"
    script.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text(__name__)\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    trainer = WarmTrainer(RunStore(tmp_path / "store"), tiny_data_root)
    try:
        assert trainer.ready.wait(120), "the trainer never got ready"
    finally:
        trainer.close()
    assert sys.modules["__main__"] is page  # the parent's main module is left as it was
    assert not marker.exists(), f"the trainer ran the page script as {marker.read_text()}"
