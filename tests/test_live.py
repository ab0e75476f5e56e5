"""The Train page's live view without a browser: the progress line, the payloads the charts' frame shows, and the
feed that hands it a running job's later payloads."""

import json
import threading
from dataclasses import replace

import pytest

from digitlab.config import TrainConfig
from digitlab.dashboard import live
from digitlab.dashboard.jobs.follow import JobSnapshot

RUNNING = JobSnapshot(state="running", config=TrainConfig(model="mlp", epochs=2), owner="tab-1", started_at=100.5,
                      run_id="r1", train_size=1000, samples_seen=500, images_per_s=250.0, batches_per_epoch=10,
                      epoch=1, batch=5, lr=0.01, version=7,
                      batches={"samples_seen": [100, 200, 300], "elapsed_s": [0.4, 0.8, 1.2], "loss": [2.1, 1.5, 1.1]})
FINISHED = replace(RUNNING, state="finished", status="completed", samples_seen=2000, version=9,
                   epochs=({"epoch": 1, "test_acc": 0.9, "test_loss": 0.3}, {"epoch": 2, "test_acc": 0.95,
                                                                              "test_loss": 0.2}),
                   final={"test_acc": 0.95, "test_loss": 0.2, "train_s": 8.0})


class FakeJob:
    """What the live view reads of a job: its snapshots, join() and the Stop grace period."""

    stop_grace_s = 10.0

    def __init__(self, snap):
        self.snap = snap
        self.ended = threading.Event()

    def snapshot(self):
        return self.snap

    def join(self, timeout=None):
        return self.ended.wait(timeout)

    def end(self, snap):
        self.snap = snap
        self.ended.set()


def test_the_progress_line_says_where_a_run_is_and_how_long_it_has_left():
    text = live.progress_text(RUNNING, stop_grace_s=10)
    assert text == "Epoch 1/2 · batch 5/10 · 250 images/s · ETA 6 s · lr 0.01"
    assert live.progress_text(replace(RUNNING, message="Starting..."), 10) == "Starting..."
    stopping = live.progress_text(replace(RUNNING, stop_requested=True, message="Starting..."), stop_grace_s=7)
    assert stopping.startswith("Stopping...") and "7 s" in stopping


@pytest.mark.parametrize("seconds, text", [(None, "–"), (4.4, "4 s"), (59.6, "1 min 00 s"), (754, "12 min 34 s")])
def test_format_seconds(seconds, text):
    assert live.format_seconds(seconds) == text


def test_a_running_job_s_payload_has_its_progress_its_figures_and_which_snapshot_it_is():
    payload = live.job_payload(FakeJob(RUNNING))
    assert payload["running"] and payload["progress"]["fraction"] == pytest.approx(0.25)
    assert payload["rows"] == [["batch_loss"], ["acc", "loss"]]
    loss = json.loads(payload["figures"]["batch_loss"])
    assert loss["data"][0]["y"] == [2.1, 1.5, 1.1]
    assert loss["data"][0]["x"] == [0.1, 0.2, 0.3]  # in epochs: samples seen over the training set's size
    assert payload["job"] == live.job_key(RUNNING) and payload["version"] == 7
    json.dumps(payload)  # written to the feed as JSON as it is

    done = live.job_payload(FakeJob(FINISHED))
    assert not done["running"] and done["progress"] is None and done["job"] == payload["job"]
    test = next(trace for trace in json.loads(done["figures"]["acc"])["data"]
                if trace["name"] == "test set, each epoch's end")
    assert test["y"] == [0.9, 0.95] and test["x"] == [1, 2]


def test_jobs_are_told_apart_by_when_and_by_whom_they_were_started():
    assert live.job_key(RUNNING) != live.job_key(replace(RUNNING, started_at=100.6))
    assert live.job_key(RUNNING) != live.job_key(replace(RUNNING, owner="tab-2"))
    assert live.job_key(RUNNING) == live.job_key(FINISHED)
    assert "tab-1" not in live.job_key(RUNNING)  # the feed does not publish who started it


def test_the_feed_writes_a_job_s_last_payload_as_soon_as_it_ends_and_then_stops(tmp_path):
    job, path = FakeJob(RUNNING), tmp_path / "feed.json"
    feed = live.JobFeed(job, path, every_s=60.0)  # a minute between routine writes
    assert feed.publish()
    assert json.loads(path.read_text())["version"] == 7
    feed.start()
    job.end(FINISHED)
    feed.join(timeout=10)  # woken by the job's end, not after its minute
    assert not feed.is_alive()
    last = json.loads(path.read_text())
    assert not last["running"] and last["version"] == 9 and last["progress"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["feed.json"]  # written whole: no temporary file left


def test_the_server_keeps_one_feed_per_job():
    from digitlab.dashboard.ui import live_chart

    def written_job():
        return json.loads((live_chart.FOLDER / live.FEED_FILE).read_text())["job"]

    first = FakeJob(RUNNING)
    feed = live_chart.follow(first)
    assert live_chart.follow(first) is feed and written_job() == live.job_key(RUNNING)
    first.end(FINISHED)
    feed.join(timeout=10)
    second = FakeJob(replace(RUNNING, started_at=200.0, version=1))
    other = live_chart.follow(second)
    try:
        assert other is not feed and written_job() == live.job_key(second.snap)
    finally:
        second.end(replace(second.snap, state="finished"))
        other.join(timeout=10)
    assert not feed.is_alive() and not other.is_alive()


def test_accuracy_grows_inside_the_first_epoch_on_the_live_charts():
    """A one-epoch run's accuracy chart is not empty until the epoch ends: the held-out checks and the smoothed
    training accuracy are drawn against the epoch as a continuous axis."""
    snap = replace(RUNNING, held_out_split="test", held_out_size=1000,
                   batches={**RUNNING.batches, "accuracy": [0.3, 0.6, 0.8]},
                   held_out={"samples_seen": [100, 200], "elapsed_s": [0.5, 0.9], "loss": [1.2, 0.7],
                             "accuracy": [0.55, 0.81]})
    figures = live.job_payload(FakeJob(snap))["figures"]
    acc = {t["name"]: t for t in json.loads(figures["acc"])["data"]}
    held = acc["test subset, 1,000 images"]
    assert held["x"] == [0.1, 0.2] and held["y"] == [0.55, 0.81]  # in epochs, before the first has ended
    assert acc["training, smoothed"]["x"] == [0.1, 0.2, 0.3] and len(acc["training, smoothed"]["y"]) == 3
    assert acc["test set, each epoch's end"]["y"] == []  # no epoch has ended yet
    loss = {t["name"]: t for t in json.loads(figures["loss"])["data"]}
    assert loss["test subset, 1,000 images"]["y"] == [1.2, 0.7]
    assert live.held_out_label("validation", 500) == "validation split, 500 images"
