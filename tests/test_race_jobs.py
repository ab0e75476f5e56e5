"""Races on the coordinator: runs training at the same time in trainers of their own, the cores shared out, those
beyond the capacity queued; Stop for one run and for all; a failing run; refusals; adoption after a restart."""

import os
import signal
import subprocess
import sys

import pytest

from digitlab import study
from digitlab.dashboard.access import ReadOnlyError
from digitlab.dashboard.jobs.coordinator import Coordinator, JobBusyError, RaceBusyError
from digitlab.dashboard.jobs.race_job import RaceJob
from digitlab.store import RunStore
from tests.conftest import REPO
from tests.test_jobs import QUICK, SLOW, wait_for

LONG = QUICK.replace(batch_size=4, epochs=200)  # trains until stopped


def race_of(*lanes):
    return study.define_race("race", [(f"lane {i}", config) for i, config in enumerate(lanes)])


def test_a_race_trains_its_runs_at_the_same_time_with_the_cores_shared_out(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root, capacity=3)
    race = jobs.start_race(race_of(QUICK, QUICK.replace(lr=0.02), QUICK.replace(batch_size=30)), owner="tab-1")
    assert len(race.lanes) == 3 and all(lane.trainer is not None for lane in race.lanes)  # none waits
    assert {lane._order[3] for lane in race.lanes} == {max(1, (os.cpu_count() or 1) // 3)}  # threads per trainer
    assert race.join(120)
    snaps = race.snapshots()
    assert [s.status for s in snaps] == ["completed"] * 3
    # Each has learnt which configuration it trains (its run's name says).
    assert sorted(s.config.name for s in snaps) == ["race: lane 0", "race: lane 1", "race: lane 2"]
    runs = {r.id: r for r in RunStore(store_root).list().runs}
    assert sorted(runs) == sorted(race.run_ids())
    assert sorted(r.name for r in runs.values()) == ["race: lane 0", "race: lane 1", "race: lane 2"]
    assert all(r.study["name"] == "race" and r.data.get("held_out") for r in runs.values())
    assert all(s.held_out.get("accuracy") and s.batches.get("accuracy") for s in snaps)  # live accuracy, each run
    _, summary = race.read_trials()
    assert summary.count("complete") == 3 and jobs.latest_study is race and jobs.latest is race


def test_runs_beyond_the_capacity_wait_and_start_as_others_end(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root, capacity=1)
    race = jobs.start_race(race_of(QUICK, QUICK.replace(lr=0.02)))
    first, second = race.lanes
    assert first.trainer is not None and second.trainer is None  # waiting: no process started for it yet
    assert second.running and second.snapshot().message.startswith("Waiting for a free trainer")
    with pytest.raises(RaceBusyError, match="Race race is running"):
        jobs.start_run(QUICK)  # a waiting run holds the server too
    assert race.join(120)
    assert [s.status for s in race.snapshots()] == ["completed", "completed"]


def test_stop_all_while_a_run_waits_stops_the_others_and_the_waiting_one_never_starts(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root, capacity=1)
    race = jobs.start_race(race_of(LONG, LONG.replace(lr=0.02)))
    first, waiting = race.lanes
    wait_for(lambda: first.snapshot().epoch >= 2)
    race.stop()
    assert race.join(30)
    assert first.snapshot().status == "stopped" and waiting.snapshot().status == "stopped"
    assert waiting.trainer is None and "Stopped before it started" in waiting.snapshot().message
    assert [r.name for r in RunStore(store_root).list().runs] == ["race: lane 0"]  # no run of the waiting one
    assert jobs.start_run(QUICK).join(60)  # the server is free again


def test_one_run_stopped_the_others_go_on(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root, capacity=2)
    race = jobs.start_race(race_of(LONG, QUICK.replace(epochs=3)))
    wait_for(lambda: all(lane.snapshot().epoch >= 1 for lane in race.lanes))  # each has learnt its configuration
    long_lane = next(lane for lane in race.lanes if lane.snapshot().config.epochs == LONG.epochs)
    long_lane.stop()
    assert race.join(120)
    assert {s.config.name: s.status for s in race.snapshots()} == {"race: lane 0": "stopped",
                                                                    "race: lane 1": "completed"}


def test_a_run_whose_trainer_dies_fails_and_the_others_finish(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root, capacity=2)
    race = jobs.start_race(race_of(LONG, QUICK.replace(epochs=3)))
    wait_for(lambda: all(lane.snapshot().epoch >= 1 for lane in race.lanes))
    doomed = next(lane for lane in race.lanes if lane.snapshot().config.epochs == LONG.epochs)
    os.kill(doomed.trainer.process.pid, signal.SIGKILL)
    assert race.join(120)
    by_status = {s.status: s for s in race.snapshots()}
    assert set(by_status) == {"failed", "completed"}
    assert "ended unexpectedly" in by_status["failed"].message


def test_a_race_while_a_run_trains_is_refused_with_the_reason(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    run = jobs.start_run(SLOW)
    try:
        with pytest.raises(JobBusyError, match="A run is training: one job at a time"):
            jobs.start_race(race_of(QUICK, QUICK))
        assert jobs.latest_race is None
    finally:
        run.stop()
        assert run.join(30)


def test_read_only_mode_starts_no_race_and_stops_none(tiny_data_root, store_root, monkeypatch):
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    race = jobs.start_race(race_of(LONG, LONG))
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="Starting a race is turned off"):
        jobs.start_race(race_of(QUICK, QUICK))
    with pytest.raises(ReadOnlyError, match="Stopping a race is turned off"):
        race.stop()
    assert race.running  # still visible and running
    monkeypatch.delenv("DIGITLAB_READ_ONLY")
    race.stop()
    assert race.join(30)


def test_a_finished_race_cannot_start_again_and_says_so(tiny_data_root, store_root):
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    assert jobs.start_race(race_of(QUICK, QUICK)).join(120)
    with pytest.raises(study.StudyError, match="race 'race' has ended: each of its configurations has a run"):
        jobs.start_race(race_of(QUICK, QUICK))
    assert jobs.start_run(QUICK).join(60)  # the refusal let the server go


ORPHAN_RACE_SCRIPT = """
import sys, time
from digitlab import study
from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.store import RunStore
from tests.test_race_jobs import LONG
jobs = Coordinator(RunStore(sys.argv[1]), sys.argv[2], capacity=2)
race = jobs.start_race(study.define_race("orphan", [("a", LONG), ("b", LONG)]))
while not all(lane.snapshot().epochs for lane in race.lanes):
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(300)
"""


def test_a_server_killed_mid_race_leaves_the_runs_training_and_a_new_one_adopts_them_as_the_race(
        tiny_data_root, store_root):
    server = subprocess.Popen([sys.executable, "-c", ORPHAN_RACE_SCRIPT, str(store_root), str(tiny_data_root)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
    finally:
        server.kill()  # a kill -9: the trainers go on alone
        server.wait()
        server.stdout.close()
    jobs = Coordinator(RunStore(store_root), tiny_data_root)
    race = jobs.latest_race
    assert isinstance(race, RaceJob) and race.spec.name == "orphan" and len(race.lanes) == 2
    assert race.running and jobs.latest is race and jobs.latest_study is race
    first = [s.samples_seen for s in race.snapshots()]
    wait_for(lambda: all(s.samples_seen > n for s, n in zip(race.snapshots(), first)), 30)  # still training
    with pytest.raises(RaceBusyError):
        jobs.start_run(QUICK)
    race.stop()
    assert race.join(30)
    assert {s.status for s in race.snapshots()} == {"stopped"}
