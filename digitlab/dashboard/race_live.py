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
from digitlab.dashboard.access import read_only
from digitlab.dashboard.curves import X_AXES
from digitlab.dashboard.text import plotly_literal
from digitlab.recorder import downsample

SMOOTHING = 0.9
# While a run of the race has not shown its first batches, the feed is written this often, not at its usual beat:
# the charts show each run from its first batches, however late its trainer got going.
FIRST_POINTS_EVERY_MS = 200
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


def lane_label(snap, race_name: str) -> str:
    """A run's name in its race: its run's name without the race's ("fast" for "class demo: fast")."""
    return snap.config.name.removeprefix(f"{race_name}: ")


def race_chart_rows(snaps: Sequence[Any], race_name: str) -> list[dict[str, go.Figure]]:
    """The race's charts: held-out accuracy, then training loss (smoothed) and held-out loss, each with one curve
    per run (``snaps``: JobSnapshots, the i-th in the palette's i-th colour, as Compare colours runs)."""
    figures: dict[str, go.Figure] = {}
    specs = (("acc", "Held-out accuracy", "Accuracy", "held_out", "accuracy", "lines+markers"),
             ("train_loss", "Training loss (smoothed)", "Cross-entropy", "batches", "loss", "lines"),
             ("held_loss", "Held-out loss", "Cross-entropy", "held_out", "loss", "lines+markers"))
    for key, title, y_title, source, field, mode in specs:
        traces = []
        for i, snap in enumerate(snaps):
            trace = getattr(snap, source) or live.EMPTY_TRACE
            values = trace.get(field, [])
            if source == "batches":
                values = charts.ema(values, SMOOTHING)
            traces.append(_lane_trace(lane_label(snap, race_name), charts.colour_for(i), trace, values,
                                      snap.train_size or 60000, mode, first_shown=key == "acc"))
        layout = charts.base_layout(title, X_AXES["samples"], y_title, percent=key == "acc", log_y=key != "acc")
        layout["meta"] = {"x_titles": X_AXES}
        layout["hovermode"] = "closest"
        figures[key] = go.Figure(traces, layout)
    return [{"acc": figures["acc"]}, {"train_loss": figures["train_loss"], "held_loss": figures["held_loss"]}]


def lane_progress(snap, label: str, colour: str, stop_grace_s: float, lane: int) -> dict[str, Any]:
    """A run's progress bar in the race: its label and colour, its fraction, its line (or how it ended), and
    whether its Stop is offered (``lane``: its place among the race's runs, which the Stop names)."""
    if snap.running:
        text = live.progress_text(snap, stop_grace_s)
    else:
        final = snap.final
        accuracy = f"{final['test_acc']:.2%} on the test set" if "test_acc" in final else "no score"
        text = f"{snap.status}: {accuracy}, {live.format_seconds(final.get('train_s'))}"
    fraction = 1.0 if snap.status == "completed" else snap.progress
    return {"name": label, "colour": colour, "fraction": fraction, "text": text,
            "eta_s": snap.eta_s if snap.running else None, "lane": lane,
            "stoppable": snap.running and not snap.stop_requested and not read_only()}


def race_payload(race) -> dict[str, Any]:
    """What the charts' frame shows of a race (a RaceJob) now: its charts, each run's progress bar, and which race
    and which of its snapshots (the sum of its runs' versions, which only grows)."""
    ordered = race.ordered()
    snaps = [snap for _, snap in ordered]
    progress = [lane_progress(snap, lane_label(snap, race.spec.name), charts.colour_for(i), race.stop_grace_s,
                              race.lanes.index(lane)) for i, (lane, snap) in enumerate(ordered)]
    waiting = any(snap.running and not snap.batches.get("loss") for snap in snaps)
    return live.payload(race_chart_rows(snaps, race.spec.name), progress, race.key, sum(s.version for s in snaps),
                        running=race.running, every_ms=FIRST_POINTS_EVERY_MS if waiting else None)


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
