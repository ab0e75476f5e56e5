"""What the Train page shows of a training job while it runs: its progress bar and live charts, as a payload for
the charts' frame (digitlab.dashboard.ui.live_chart).

The page draws the first payload; a JobFeed writes later ones to a file that the frame reads, so the page is not
rerun to update them. Both build them here, from the job's snapshot.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io

from digitlab.dashboard import charts
from digitlab.dashboard.curves import train_size
from digitlab.engine import HELD_OUT_SIZE
from digitlab.files import atomic_write

FEED_FILE = "job-feed.json"  # a server runs one job at a time: one feed, whose payload names its job

EMPTY_TRACE = {"samples_seen": [], "elapsed_s": [], "loss": [], "accuracy": []}
SMOOTHING = 0.9  # of the per-batch training curves, as TensorBoard's default


def held_out_label(split: str, size: int) -> str:
    """What the held-out checks measure, for a legend: "test subset, 1,000 images"."""
    subset = "subset" if size >= HELD_OUT_SIZE else "split"  # the engine measures a smaller split whole
    return f"{split} {subset}, {size:,} images"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def progress_text(snap, stop_grace_s: float) -> str:
    """The line above a running job's progress bar (plain text): where it is and how fast, or why it waits."""
    if snap.stop_requested:
        return f"Stopping... (ended by force if it has not stopped {stop_grace_s:g} s after the request)"
    if snap.message:
        return snap.message
    return (f"Epoch {snap.epoch}/{snap.config.epochs} · batch {snap.batch}/{snap.batches_per_epoch} · "
            f"{snap.images_per_s:,.0f} images/s · ETA {format_seconds(snap.eta_s)} · lr {snap.lr:.3g}")


def _epoch_ends(epochs, metric: str) -> tuple[list[float], list[float]]:
    ended = [e for e in epochs if e.get(metric) is not None]
    return [e["epoch"] for e in ended], [e[metric] for e in ended]


def chart_rows(batches: dict, held_out: dict, held_out_name: str, train_images: int, epochs,
               total_epochs: int) -> list[dict[str, go.Figure]]:
    """The live charts, in rows, all against the epoch as a continuous axis (a run trains on ``train_images``
    images an epoch): the batch loss; then accuracy (training, smoothed; the held-out checks, named
    ``held_out_name``; the full test and validation sets at each epoch's end) and the held-out loss."""
    def epochs_of(trace: dict) -> list[float]:
        return [s / train_images for s in trace.get("samples_seen", [])]

    x_batches, x_held = epochs_of(batches), epochs_of(held_out)
    held_colour = charts.VALIDATION_COLOUR if held_out_name.startswith("validation") else charts.TEST_COLOUR
    rows = {}
    for metric, title, y_title in (("acc", "Accuracy", "Accuracy"), ("loss", "Held-out loss", "Cross-entropy")):
        curves = []
        if metric == "acc" and batches.get("accuracy"):
            curves.append(charts.Curve("training, smoothed", charts.TRAIN_COLOUR, x_batches,
                                       charts.ema(batches["accuracy"], SMOOTHING)))
        curves.append(charts.Curve(held_out_name, held_colour, x_held,
                                   held_out.get("accuracy" if metric == "acc" else "loss", []), "checks"))
        for split, colour in (("test", charts.TEST_COLOUR), ("val", charts.VALIDATION_COLOUR)):
            x, y = _epoch_ends(epochs, f"{split}_{metric}")
            if x or split == "test":
                name = "test set" if split == "test" else "validation set"
                curves.append(charts.Curve(f"{name}, each epoch's end", colour, x, y, "points"))
        rows[metric] = charts.epoch_axis_figure(curves, title, y_title, total_epochs, percent=metric == "acc",
                                                log_y=metric == "loss", waiting="from the first batches")
    loss = charts.batch_loss_figure(x_batches, batches.get("loss", []), SMOOTHING, x_max=total_epochs)
    return [{"batch_loss": loss}, rows]


def empty_chart_rows(total_epochs: int) -> list[dict[str, go.Figure]]:
    """The charts before any run, drawn so that the frame has loaded plotly.js before the click."""
    return chart_rows(EMPTY_TRACE, EMPTY_TRACE, held_out_label("test", HELD_OUT_SIZE), 1, (), total_epochs)


def job_chart_rows(snap) -> list[dict[str, go.Figure]]:
    size = snap.train_size or train_size({"epochs": list(snap.epochs)})
    name = held_out_label(snap.held_out_split or "test", snap.held_out_size or HELD_OUT_SIZE)
    return chart_rows(snap.batches or EMPTY_TRACE, snap.held_out or EMPTY_TRACE, name, size, snap.epochs,
                      snap.config.epochs)


def job_key(snap) -> str:
    """Tells one job from another (a server runs one at a time) by its start time and who started it, hashed: the
    feed is readable by whoever can reach the server, and a tab's id is nobody else's business."""
    return hashlib.sha256(f"{snap.started_at!r}/{snap.owner}".encode()).hexdigest()[:16]


def job_progress(snap, stop_grace_s: float) -> dict[str, Any] | None:
    """The progress bar of a running job (its fraction, its line, and the seconds its batches have left, if
    known), None once it has finished."""
    if not snap.running:
        return None
    return {"fraction": snap.progress, "text": progress_text(snap, stop_grace_s), "eta_s": snap.eta_s}


def payload(rows: Sequence[Mapping[str, go.Figure]], progress: dict[str, Any] | list | None = None,
            job: str | None = None, version: int = 0, running: bool | None = None,
            every_ms: float | None = None) -> dict[str, Any]:
    """What the frame shows at one moment: figures by name, a progress bar (or a race's, one per run) or None, and
    (for a job) which job and which of its snapshots, so that the frame never replaces newer figures with older
    ones. A job with a progress bar runs, unless ``running`` says otherwise. ``every_ms``: when the feed writes the
    next one, if sooner than its usual beat."""
    names = [list(row) for row in rows]
    figures = {name: plotly.io.to_json(figure, validate=False) for row in rows for name, figure in row.items()}
    if len(figures) != sum(map(len, names)):
        raise ValueError(f"chart names must be unique across rows: {names}")
    return {"rows": names, "figures": figures, "progress": progress, "job": job, "version": version,
            "running": progress is not None if running is None else running, "every_ms": every_ms}


def job_payload(job) -> dict[str, Any]:
    """The payload of a TrainingJob or AdoptedJob as it is now."""
    snap = job.snapshot()
    return payload(job_chart_rows(snap), job_progress(snap, job.stop_grace_s), job_key(snap), snap.version)


class JobFeed(threading.Thread):
    """Writes a running job's payload (``build(job)``) to ``path`` every ``every_s`` seconds, and its last one as
    soon as the job ends, then stops. ``job``: a TrainingJob or AdoptedJob (snapshot(), join(), stop_grace_s), or a
    race with its own ``build`` and ``key``."""

    def __init__(self, job, path: Path, every_s: float, build: Callable[[Any], dict[str, Any]] = job_payload,
                 key: str | None = None):
        super().__init__(name="digitlab-live-feed", daemon=True)
        self.job, self.path, self.every_s, self.build = job, path, every_s, build
        self.key = key or job_key(job.snapshot())

    def publish(self, update: dict[str, Any] | None = None) -> bool:
        """Write ``update`` (by default, the job's payload now); True while the job runs."""
        update = self.build(self.job) if update is None else update
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(update)), sync=False)
        return update["running"]

    def run(self) -> None:
        update = None
        while update is None or update["running"]:
            if update is not None:
                self.job.join(update["every_ms"] / 1000 if update["every_ms"] else self.every_s)
            update = self.build(self.job)
            self.publish(update)
