"""What the robustness views show, from digitlab.robustness's numbers: the sweep, accuracy-against-ε and
corruption figures, and the Compare table's corrupted-mean column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from digitlab.dashboard.charts import base_layout
from digitlab.dashboard.text import plotly_literal
from digitlab.robustness import CORRUPTIONS, CorruptionResult

CORRUPTED_COLUMN = "Corrupted mean accuracy"


@dataclass(frozen=True)
class SweepLine:
    """One model along a sweep: its confidence in the digit it is judged on, and its answer, at each step."""

    name: str
    colour: str
    digit: int  # the true class, or the model's unperturbed answer
    confidence: list[float]
    predicted: list[int]
    changes: list[int]  # steps whose answer differs from the step before


def sweep_figure(values: Sequence[float], lines: Sequence[SweepLine], x_title: str, identity: float,
                 judged_on: str) -> go.Figure:
    """One curve per model of its confidence in its digit along the sweep; a ring where its answer changes,
    labelled with the new answer; a dotted line at the unperturbed image."""
    traces = []
    for line in lines:
        name = plotly_literal(line.name)
        traces.append(go.Scatter(
            x=list(values), y=line.confidence, name=name, mode="lines+markers", legendgroup=name,
            line={"color": line.colour, "width": 2.5}, marker={"size": 5},
            customdata=line.predicted,
            hovertemplate=f"{name}<br>%{{x:.3g}}: P({line.digit}) %{{y:.1%}}, says %{{customdata}}<extra></extra>"))
        traces.append(go.Scatter(
            x=[values[i] for i in line.changes], y=[line.confidence[i] for i in line.changes], mode="markers+text",
            name=f"{name}: answer changes", legendgroup=name, showlegend=False,
            text=[f"→{line.predicted[i]}" for i in line.changes], textposition="top center",
            textfont={"color": line.colour, "size": 13},
            marker={"size": 13, "symbol": "circle-open", "color": line.colour, "line": {"width": 2.5}},
            hovertemplate=f"{name} now says %{{text}}<extra></extra>"))
    layout = base_layout(f"Confidence in {judged_on}", x_title, "Confidence", height=380, percent=True,
                     revision="robustness-sweep")
    layout["yaxis"].update(range=[-0.03, 1.1], tickformat=".0%")
    layout.update(hovermode="closest", shapes=[{
        "type": "line", "x0": identity, "x1": identity, "y0": 0, "y1": 1, "yref": "paper",
        "line": {"dash": "dot", "width": 1, "color": "#888888"}}],
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "xanchor": "left"})
    return go.Figure(traces, layout)


@dataclass(frozen=True)
class CurveLine:
    name: str
    colour: str
    accuracy: list[float]


def epsilon_figure(epsilons: Sequence[float], lines: Sequence[CurveLine], attack: str, images: int,
                   current: float | None = None) -> go.Figure:
    """Accuracy against ε, one line per model, and a dotted line at the ε chosen above."""
    traces = [go.Scatter(x=list(epsilons), y=line.accuracy, name=plotly_literal(line.name), mode="lines+markers",
                         line={"color": line.colour, "width": 2.5}, marker={"size": 7},
                         hovertemplate=f"{plotly_literal(line.name)}<br>ε %{{x:.2f}}: %{{y:.1%}}<extra></extra>")
              for line in lines]
    layout = base_layout(f"Accuracy against ε ({attack}), on {images:,} fixed test images", "ε (share of the pixel "
                     "range)", "Accuracy", height=360, percent=True, revision="robustness-epsilon")
    layout["yaxis"].update(range=[0, 1.02], tickformat=".0%")
    shapes = [] if current is None else [{"type": "line", "x0": current, "x1": current, "y0": 0, "y1": 1,
                                          "yref": "paper", "line": {"dash": "dot", "width": 1, "color": "#888888"}}]
    layout.update(hovermode="closest", shapes=shapes,
                  legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "xanchor": "left"})
    return go.Figure(traces, layout)


def corruption_figure(results: Sequence[tuple[str, str, CorruptionResult]]) -> go.Figure:
    """Grouped bars: per corruption (the clean test set first, the mean last), one bar per run.
    results: (name, colour, result) per run."""
    labels = ["Clean", *(c.label for c in CORRUPTIONS.values()), "Mean"]
    traces = [go.Bar(x=labels, y=[result.clean, *result.accuracy.values(), result.mean], name=plotly_literal(name),
                     marker_color=colour,
                     hovertemplate=f"{plotly_literal(name)}<br>%{{x}}: %{{y:.2%}}<extra></extra>")
              for name, colour, result in results]
    layout = base_layout("Accuracy on each corruption of the test set (MNIST-C)", "", "Accuracy", height=420,
                     percent=True, revision="robustness-corruptions")
    layout["yaxis"].update(range=[0, 1.02], tickformat=".0%")
    layout["xaxis"].update(tickangle=-35)
    layout.update(hovermode="closest", barmode="group",
                  legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"})
    return go.Figure(traces, layout)


def with_corrupted_means(table: pd.DataFrame, means: dict[str, float | None]) -> pd.DataFrame:
    """The runs table with its "Corrupted mean accuracy" column filled from ``means`` (run id -> mean accuracy over
    the corruptions, None where not benchmarked yet)."""
    return table.assign(**{CORRUPTED_COLUMN: [means.get(run_id) for run_id in table["id"]]})


def worst_corruptions(result: CorruptionResult, count: int = 3) -> list[tuple[str, float]]:
    """The corruptions that cost the run the most accuracy: (label, accuracy), worst first."""
    ranked = sorted(result.accuracy.items(), key=lambda item: item[1])[:count]
    return [(CORRUPTIONS[name].label, acc) for name, acc in ranked]
