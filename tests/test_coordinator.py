"""The coordinator owns every job of a server: one check-and-start under one lock, a capacity and a queue."""

import threading

import pytest

from digitlab import study
from digitlab.dashboard.jobs.coordinator import Coordinator, JobBusyError, StudyBusyError
from digitlab.store import RunStore
from tests.pausing import release, wait_reached
from tests.test_jobs import QUICK, SLOW, pause_here, wait_for


def test_a_train_click_while_a_study_is_being_created_is_refused(monkeypatch, tmp_path, tiny_data_root, store_root):
    """The study's definition goes to the database before its trainer gets it. A Train click in that window used to
    pass the study check (no study job yet) and start a second job beside the study."""
    pause_here(monkeypatch, tmp_path / "pause", "study.create")
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data_root))
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    started = []
    starting = threading.Thread(target=lambda: started.append(
        jobs.start_study(study.define_study("window", QUICK, repeat=1, validation_size=50), workers=1)))
    starting.start()
    wait_reached(tmp_path / "pause", "study.create")
    try:
        with pytest.raises(StudyBusyError, match="Study window is running, and a study is this server's one job"):
            jobs.start_run(QUICK)
    finally:
        release(tmp_path / "pause", "study.create")
        starting.join(60)
    (study_job,) = started
    assert jobs.latest_run is None and jobs.running_study() is study_job  # exactly one job, the study
    assert study_job.join(120) and study_job.failure() is None
    assert [r.status for r in RunStore(store_root).list().runs] == ["completed"]


def test_a_study_while_a_run_trains_is_refused_and_holds_nothing(tmp_path, tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    run = jobs.start_run(SLOW)
    try:
        with pytest.raises(JobBusyError, match="A run is training: one job at a time"):
            jobs.start_study(study.define_study("refused", QUICK, validation_size=50), workers=1,
                             storage=f"sqlite:///{tmp_path / 'studies.db'}")
        assert jobs.latest_study is None and jobs.running_study() is None
    finally:
        run.stop()
        assert run.join(30)
    second = jobs.start_run(QUICK)  # the refusal left nothing behind that holds the server
    assert second.join(60) and second.snapshot().status == "completed"


def test_a_study_the_storage_refuses_releases_the_server(tmp_path, tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study.create_or_resume(study.define_study("taken", QUICK, repeat=2, validation_size=50), study.open_storage(url))
    with pytest.raises(study.StudyError, match="exists with another definition"):
        jobs.start_study(study.define_study("taken", QUICK, repeat=3, validation_size=50), workers=1, storage=url)
    assert jobs.running_study() is None and jobs.latest_study is None
    run = jobs.start_run(QUICK)
    assert run.join(60) and run.snapshot().status == "completed"


def test_a_study_whose_trainer_cannot_load_mnist_says_what_train_says(monkeypatch, tmp_path, store_root):
    """Train names the folder and the missing files; a study said only "exit code 1; see the server log"."""
    nowhere = tmp_path / "nowhere"
    jobs = Coordinator(RunStore(store_root), nowhere)
    run = jobs.start_run(QUICK)
    assert run.join(60)
    train_says = run.snapshot().message
    assert str(nowhere) in train_says
    job = jobs.start_study(study.define_study("no data", QUICK, validation_size=50), workers=1,
                           storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert job.join(60)
    failure = job.failure()
    assert failure is not None and "exit code" not in failure
    assert str(nowhere) in failure and "train-images-idx3-ubyte" in failure
