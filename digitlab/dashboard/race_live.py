"""What the Train page shows of a race: one chart per metric with every run's curve in its own colour, each run's
progress line, and the table once the last run has ended. Built from the runs' snapshots, for the charts' frame
(digitlab.dashboard.ui.live_chart) as the live view of a single run is (digitlab.dashboard.live).

The x axis is the reader's choice (images seen, epoch or wall time): each trace carries its x values for the three
in ``meta``, and the frame draws the one chosen, so that a feed written once serves every tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from digitlab.dashboard import charts, live
from digitlab.dashboard.curves import X_AXES
from digitlab.dashboard.text import plotly_literal
from digitlab.recorder import downsample

SMOOTHING = 0.9
MAX_POINTS = 400  # per curve of the live charts: enough for the eye, and the feed stays small for eight runs
SUMMARY_COLUMNS = ["Run", "Status", "Test accuracy", "Test loss", "Train time (s)", "Parameters", "Images/s"]


def _x_values(trace: dict[str, list[float]], train_images: int) -> dict[str, list[float]]:
    """A trace's points on each x axis: images seen, epochs, seconds."""
    samples = downsample(trace.get("samples_seen", []), MAX_POINTS)
    return {"samples": samples, "epoch": [s / train_images for s in samples],
            "time": downsample(trace.get("elapsed_s", []), MAX_POINTS)}


def _lane_trace(name: str, colour: str, trace: dict[str, list[float]], values: list[float], train_images: int,
                mode: str, first_shown: bool) -> go.Scatter:
    xs = _x_values(trace, train_images)
    return go.Scatter(x=xs["samples"], y=downsample(values, MAX_POINTS), name=plotly_literal(name), mode=mode,
                      line={"color": colour, "width": 2.5}, marker={"size": 5, "color": colour}, legendgroup=name,
                      showlegend=first_shown, meta={"x": xs})


def race_chart_rows(lanes: Sequence[Any], colours: dict[str, str]) -> list[dict[str, go.Figure]]:
    """The race's charts: held-out accuracy, then training loss (smoothed) and held-out loss, each with one curve
    per run that has begun (``lanes``: JobSnapshots, keyed in ``colours`` by their config's name)."""
    figures: dict[str, go.Figure] = {}
    specs = (("acc", "Held-out accuracy", "Accuracy", "held_out", "accuracy", "lines+markers"),
             ("train_loss", "Training loss (smoothed)", "Cross-entropy", "batches", "loss", "lines"),
             ("held_loss", "Held-out loss", "Cross-entropy", "held_out", "loss", "lines+markers"))
    for key, title, y_title, source, field, mode in specs:
        traces = []
        for snap in lanes:
            trace = getattr(snap, source) or live.EMPTY_TRACE
            values = trace.get(field, [])
            if source == "batches":
                values = charts.ema(values, SMOOTHING)
            size = snap.train_size or 60000
            traces.append(_lane_trace(snap.config.name, colours[snap.config.name], trace, values, size, mode,
                                      first_shown=key == "acc"))
        layout = charts.base_layout(title, X_AXES["samples"], y_title, percent=key == "acc", log_y=key != "acc")
        layout["meta"] = {"x_titles": X_AXES}
        layout["hovermode"] = "closest"
        figures[key] = go.Figure(traces, layout)
    return [{"acc": figures["acc"]}, {"train_loss": figures["train_loss"], "held_loss": figures["held_loss"]}]


def lane_progress(snap, colour: str, stop_grace_s: float) -> dict[str, Any]:
    """A run's progress bar in the race: its name and colour, its fraction, and its line (or how it ended)."""
    if snap.running:
        text = live.progress_text(snap, stop_grace_s)
    else:
        final = snap.final
        accuracy = f"{final['test_acc']:.2%} on the test set" if "test_acc" in final else "no score"
        text = f"{snap.status}: {accuracy}, {live.format_seconds(final.get('train_s'))}"
    fraction = snap.progress if snap.running or snap.status != "completed" else 1.0
    return {"name": snap.config.name, "colour": colour, "fraction": fraction, "text": text,
            "eta_s": snap.eta_s if snap.running else None}


def summary_table(lanes: Sequence[Any]) -> pd.DataFrame:
    """One row per run of the finished race: how it ended, its test accuracy and loss, its time, size and speed."""
    rows = []
    for snap in lanes:
        final = snap.final
        train_s = final.get("train_s")
        rows.append({"Run": snap.config.name, "Status": snap.status, "Test accuracy": final.get("test_acc"),
                     "Test loss": final.get("test_loss"), "Train time (s)": train_s,
                     "Parameters": snap.param_count or None,
                     "Images/s": snap.samples_seen / train_s if train_s else None})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
