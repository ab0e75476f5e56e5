"""The Study page's table of trials and its best-so-far chart, from a study's summary."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from digitlab import study


def trials_table(summary: study.Summary) -> pd.DataFrame:
    """One row per configuration's last attempt, from the study storage (so trials of other machines show too)."""
    rows = []
    for row in summary.rows:
        a = row.attrs
        rows.append({"Trial": row.number, "State": row.state,
                     "Parameters": ", ".join(f"{k}={v}" for k, v in row.params.items()),
                     "Epoch": a["epochs"] or 0, "Validation accuracy": a["val_acc"], "Test accuracy": a["test_acc"],
                     "Run": a["run_id"] or ""})
    return pd.DataFrame(rows, columns=["Trial", "State", "Parameters", "Epoch", "Validation accuracy",
                                       "Test accuracy", "Run"])


def best_so_far_figure(summary: study.Summary) -> go.Figure:
    """The best validation accuracy of the complete trials, by trial number (test accuracy without a split)."""
    key = "val_acc" if any(r.attrs["val_acc"] is not None for r in summary.rows) else "test_acc"
    done = sorted((r.number, r.attrs[key]) for r in summary.rows if r.state == "complete" and r.attrs[key] is not None)
    x, best, y = [], None, []
    for number, value in done:
        best = value if best is None else max(best, value)
        x.append(number)
        y.append(best)
    figure = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", line_shape="hv"))
    label = "validation" if key == "val_acc" else "test"
    figure.update_layout(title=f"Best {label} accuracy so far", xaxis_title="trial", yaxis_title=f"{label} accuracy",
                         height=300, margin=dict(l=10, r=10, t=40, b=10))
    # Whole trial numbers, about ten ticks at most (Plotly's own put 0.2, 0.4, ... under a 2-trial study).
    figure.update_xaxes(tick0=0, dtick=max(1, math.ceil(max(x, default=0) / 10)))
    return figure


def study_run_ids(summary: study.Summary) -> list[str]:
    """The runs of the study's last attempts, for Compare."""
    return [r.attrs["run_id"] for r in summary.rows if r.attrs["run_id"]]
