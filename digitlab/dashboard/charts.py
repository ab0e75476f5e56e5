"""Plotly figure builders: pure functions from numbers to figures, so they are tested without a browser.

Every figure sets ``uirevision``: when a page redraws it with new data, Plotly keeps the user's zoom and hidden
traces instead of resetting them.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from digitlab.dashboard.text import plotly_literal
from digitlab.recorder import downsample

# Vega's category10-like palette: distinct in colour-blind simulations and on a projector.
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D", "#FF9DA6",
           "#79706E")
TRAIN_COLOUR, TEST_COLOUR, VALIDATION_COLOUR = PALETTE[0], PALETTE[1], PALETTE[2]


# Past these, a curve costs the browser more than the eye gains (Compare's five charts of the four shipped runs took
# 350 ms of Chromium's main thread to draw, 250 ms with both limits): each marker is an SVG node of its own, and on
# 100 epochs they merge into a thick line; a chart about 650 px wide shows no more than CHART_POINTS points a curve.
MARKERS_UP_TO = 30
CHART_POINTS = 600


def colour_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to zero."""
    if weight <= 0:
        return list(values)
    out, average = [], 0.0
    for n, value in enumerate(values, start=1):
        average = average * weight + (1 - weight) * value
        out.append(average / (1 - weight**n))
    return out


def base_layout(title: str, x_title: str, y_title: str, height: int = 320, percent: bool = False,
            revision: str | None = None, log_y: bool = False) -> dict:
    """The layout every chart shares, as one dict: Figure(data, layout) validates it once, where a chain of
    update_* calls (and a named template) costs 10-20 ms per figure, paid on every live refresh. Colours and
    fonts come from the app's theme: Streamlit's chart theme, or the live charts' copy of it (ui/live_chart.html)."""
    axis = {"showgrid": True, "zeroline": False}
    y_axis = {**axis, "title": {"text": y_title}, "tickformat": ".1%" if percent else None}
    if log_y:
        # Labelled 0.01, 0.02, 0.05, 0.1...: Plotly's own minor labels on a log axis are bare digits.
        y_axis.update(type="log", tickvals=LOG_TICKS, ticktext=[f"{t:g}" for t in LOG_TICKS])
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 60, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        "hovermode": "x unified",
        "uirevision": revision or title,
        "xaxis": {**axis, "title": {"text": x_title}},
        "yaxis": y_axis,
    }


LOG_TICKS = [m * 10.0**e for e in range(-4, 2) for m in (1, 2, 5)]


@dataclass(frozen=True)
class Curve:
    """One trace of a live chart over a continuous epoch axis: ``style`` is "line", "faint" (raw values drawn thin
    behind their smoothing), "checks" (a line through each of its measurements, the first shown alone) or "points"
    (one per epoch end)."""

    name: str
    colour: str
    x: list[float]
    y: list[float]
    style: str = "line"


_CURVE_STYLES = {
    "line": {"mode": "lines", "line": {"width": 2.5}},
    "faint": {"mode": "lines", "line": {"width": 1}, "opacity": 0.3},
    "checks": {"mode": "lines+markers", "line": {"width": 2.5}, "marker": {"size": 5}},
    "points": {"mode": "markers", "marker": {"size": 9, "symbol": "diamond"}},
}


def epoch_axis_figure(curves: Sequence[Curve], title: str, y_title: str, x_max: float | None = None,
                      percent: bool = False, log_y: bool = False, waiting: str = "") -> go.Figure:
    """Curves against the epoch as a continuous axis, so that a one-epoch run grows across the chart while it
    trains. With ``x_max`` (the planned epochs) the axis spans the whole run from the start, so the curves grow
    across a still chart instead of rescaling it; ``waiting`` says when an empty chart fills."""
    traces = []
    for curve in curves:
        style = _CURVE_STYLES[curve.style]
        colour = {key: {**value, "color": curve.colour} for key, value in style.items() if isinstance(value, dict)}
        traces.append(go.Scatter(x=list(curve.x), y=list(curve.y), name=plotly_literal(curve.name),
                                 **{**style, **colour}))
    layout = base_layout(title, "Epoch", y_title, percent=percent, log_y=log_y)
    if x_max is not None:
        layout["xaxis"]["range"] = [0, x_max]
    if waiting and not any(curve.x for curve in curves):
        layout["yaxis"]["range"] = [0, 1]
        layout["annotations"] = [{"text": waiting, "showarrow": False, "x": (x_max or 1) / 2, "y": 0.5,
                                  "font": {"color": "#999"}}]
    return go.Figure(traces, layout)


def batch_loss_figure(x: Sequence[float], loss: Sequence[float], smoothing: float = 0.9,
                      x_max: float | None = None) -> go.Figure:
    """Per-batch training loss, raw (faint) and smoothed."""
    curves = [Curve("batch loss", TRAIN_COLOUR, list(x), list(loss), "faint"),
              Curve("smoothed", TRAIN_COLOUR, list(x), ema(loss, smoothing))]
    return epoch_axis_figure(curves, "Training loss per batch", "Cross-entropy", x_max, log_y=True)


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    x: list[float]
    y: list[float]
    markers: bool = False  # per-epoch points, drawn as markers where there are few (MARKERS_UP_TO)

    def drawn(self) -> dict:
        return drawn(self.x, self.y, self.markers)


def drawn(x: Sequence[float], y: Sequence[float], markers: bool = False) -> dict:
    """The Scatter arguments that draw a curve: thinned to CHART_POINTS points (averaged in equal buckets), and with
    markers only on a short per-epoch curve."""
    markers = markers and len(x) <= MARKERS_UP_TO
    return {"x": downsample(x, CHART_POINTS), "y": downsample(y, CHART_POINTS),
            "mode": "lines+markers" if markers else "lines"}


def overlay_figure(series: Sequence[Series], title: str, x_title: str, y_title: str, percent: bool = False,
                   log_y: bool = False) -> go.Figure:
    traces = [go.Scatter(**s.drawn(), name=plotly_literal(s.name), line={"color": s.colour, "width": 2.5},
                         marker={"size": 7}) for s in series]
    layout = base_layout(title, x_title, y_title, percent=percent, height=360, log_y=log_y)
    # Run names are long: the legend goes under the plot, where it can wrap.
    layout.update(hovermode="closest", legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0,
                                               "xanchor": "left"})
    return go.Figure(traces, layout)


@dataclass(frozen=True)
class GroupSeries:
    """One group of runs on one metric: its mean per epoch, the std there (None where one run has that epoch, so no
    band), and each run's own (x, y), drawn faintly behind."""

    name: str
    colour: str
    x: list[float]
    mean: list[float]
    std: list[float | None]
    runs: list[tuple[list[float], list[float]]]


def _translucent(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def group_figure(groups: Sequence[GroupSeries], title: str, x_title: str, y_title: str, percent: bool = False,
                 log_y: bool = False) -> go.Figure:
    """Each group as its mean line with a shaded ±1 std band where two or more runs have that epoch, and its single
    runs faint behind; one legend entry per group, which shows or hides all of it."""
    traces = []
    for g in groups:
        name = plotly_literal(g.name)
        for x, y in g.runs:
            traces.append(go.Scatter(**drawn(x, y), line={"color": g.colour, "width": 1}, opacity=0.35,
                                     legendgroup=name, showlegend=False, hoverinfo="skip"))
        banded = [(x, m, s) for x, m, s in zip(g.x, g.mean, g.std) if s is not None]
        if banded:
            x, upper, lower = zip(*[(x, m + s, m - s) for x, m, s in banded])
            traces.append(go.Scatter(**drawn(x, upper), line={"width": 0}, legendgroup=name, showlegend=False,
                                     hoverinfo="skip"))
            traces.append(go.Scatter(**drawn(x, lower), line={"width": 0}, fill="tonexty",
                                     fillcolor=_translucent(g.colour, 0.22), legendgroup=name, showlegend=False,
                                     hoverinfo="skip"))
        # A band over a single epoch has no width to show: there the spread is an error bar.
        spread = {"error_y": {"array": [s or 0 for s in g.std], "color": g.colour, "thickness": 2, "width": 6}
                  } if len(banded) == 1 else {}
        traces.append(go.Scatter(**drawn(g.x, g.mean, markers=True), name=name, legendgroup=name,
                                 line={"color": g.colour, "width": 3}, marker={"size": 7}, **spread))
    layout = base_layout(title, x_title, y_title, percent=percent, height=360, log_y=log_y)
    layout.update(hovermode="closest", legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0,
                                               "xanchor": "left"})
    return go.Figure(traces, layout)


def small_multiples_figure(panels: Sequence[tuple[str, Sequence[Series]]], x_title: str, y_title: str,
                           percent: bool = False, log_y: bool = False) -> go.Figure:
    """One panel per run, all on the same axes, so shapes compare at a glance."""
    columns = min(len(panels), 3) or 1
    rows = -(-len(panels) // columns) or 1
    fig = make_subplots(rows=rows, cols=columns, shared_xaxes="all", shared_yaxes="all",
                        subplot_titles=[plotly_literal(title) for title, _ in panels], horizontal_spacing=0.04,
                        vertical_spacing=0.12)
    legend_done = set()
    for i, (_, lines) in enumerate(panels):
        for s in lines:
            fig.add_scatter(**s.drawn(), name=plotly_literal(s.name), line={"color": s.colour, "width": 2},
                            marker={"size": 5}, legendgroup=s.name, showlegend=s.name not in legend_done,
                            row=i // columns + 1, col=i % columns + 1)
            legend_done.add(s.name)
    layout = base_layout("", "", "", height=260 * rows + 40, percent=percent, revision="small-multiples", log_y=log_y)
    shared_y = {key: value for key, value in layout.pop("yaxis").items() if key != "title"}
    layout.pop("xaxis")
    # The legend sits above the panels, left, clear of the panel titles.
    layout.update(hovermode="closest", margin={"l": 10, "r": 10, "t": 80, "b": 10},
                  legend={"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 1,
                          "yanchor": "top"})
    fig.update_layout(layout)
    fig.update_xaxes(showgrid=True, zeroline=False)
    fig.update_yaxes(**shared_y)
    fig.update_xaxes(title_text=x_title, row=rows)
    fig.update_yaxes(title_text=y_title, col=1)
    return fig


def confusion_figure(confusion: Sequence[Sequence[int]], selected: tuple[int, int] | None = None) -> go.Figure:
    """A confusion matrix (rows: true class, columns: predicted) coloured by the off-diagonal counts.

    The diagonal is grey: it dwarfs the errors and would wash out the colour scale. Each cell also carries an
    invisible square marker, because Streamlit selects points of scatter traces, not of heatmaps.
    """
    size = len(confusion)
    # Zero cells stay blank so the few real confusions stand out.
    off = [[None if t == p or not confusion[t][p] else confusion[t][p] for p in range(size)] for t in range(size)]
    diag = [[confusion[t][p] if t == p else None for p in range(size)] for t in range(size)]
    axis = {"x": list(range(size)), "y": list(range(size)), "xgap": 2, "ygap": 2}
    traces = [
        go.Heatmap(z=diag, colorscale=[[0, "#e8e8e8"], [1, "#e8e8e8"]], showscale=False, hoverinfo="skip", **axis),
        go.Heatmap(z=off, colorscale="OrRd", colorbar={"title": {"text": "errors"}, "thickness": 12}, zmin=0,
                   hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", **axis),
    ]
    text_colour = []
    peak = max((v for row in off for v in row if v is not None), default=1) or 1
    cells_x, cells_y, labels = [], [], []
    for t in range(size):
        for p in range(size):
            count = confusion[t][p]
            cells_x.append(p)
            cells_y.append(t)
            labels.append(str(count) if count else "")
            text_colour.append("#777" if t == p else ("white" if count > 0.6 * peak else "#333"))
    traces.append(go.Scatter(
        x=cells_x, y=cells_y, mode="markers+text", text=labels, textfont={"color": text_colour, "size": 12},
        marker={"symbol": "square", "size": 34, "opacity": 0.01, "color": "#000"},
        customdata=[[y, x] for x, y in zip(cells_x, cells_y)], showlegend=False, name="cell",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra>click to filter</extra>",
    ))
    layout = base_layout("Confusion matrix (click a cell to filter)", "Predicted digit", "True digit", height=480,
                     revision="confusion")
    layout.update(hovermode="closest", dragmode=False, clickmode="event+select", plot_bgcolor="#f7f7f7")
    layout["xaxis"].update(dtick=1, showgrid=False, range=[-0.5, size - 0.5], constrain="domain", fixedrange=True)
    layout["yaxis"].update(dtick=1, showgrid=False, range=[size - 0.5, -0.5], scaleanchor="x", constrain="domain",
                           fixedrange=True)
    if selected is not None:
        t, p = selected
        layout["shapes"] = [{"type": "rect", "x0": p - 0.5, "x1": p + 0.5, "y0": t - 0.5, "y1": t + 0.5,
                             "line": {"color": "#1f4e79", "width": 3}}]
    return go.Figure(traces, layout)


def per_class_figure(accuracy: Sequence[float]) -> go.Figure:
    worst = min(range(len(accuracy)), key=lambda i: accuracy[i])
    colours = [PALETTE[3] if i == worst else PALETTE[0] for i in range(len(accuracy))]
    bars = go.Bar(x=list(range(len(accuracy))), y=list(accuracy), marker_color=colours,
                  text=[f"{a:.1%}" for a in accuracy], textposition="outside", cliponaxis=False,
                  hovertemplate="digit %{x}: %{y:.2%}<extra></extra>")
    layout = base_layout("Accuracy per class", "True digit", "Accuracy", percent=True, height=300)
    low = min(accuracy, default=0)
    layout["yaxis"]["range"] = [max(0.0, low - (1 - low) * 0.5 - 0.002), 1.0005]
    layout["xaxis"].update(dtick=1, showgrid=False)
    layout["hovermode"] = "closest"
    return go.Figure(bars, layout)


def probability_figure(probs: Sequence[float], title: str = "", height: int = 240,
                       colour: str = PALETTE[0]) -> go.Figure:
    """Bars of the 10 class probabilities; the predicted class stands out."""
    best = max(range(len(probs)), key=lambda i: probs[i])
    colours = [colour if i == best else "#c9d3df" for i in range(len(probs))]
    bars = go.Bar(x=list(range(len(probs))), y=list(probs), marker_color=colours,
                  text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs], textposition="outside", cliponaxis=False,
                  hovertemplate="%{x}: %{y:.1%}<extra></extra>")
    title = plotly_literal(title)
    layout = base_layout(title, "", "", height=height, revision=f"probs-{title}")
    layout["yaxis"].update(range=[0, 1.15], tickformat=".0%", showticklabels=False, showgrid=False)
    layout["xaxis"].update(dtick=1, showgrid=False, tickfont={"size": 14})
    layout.update(hovermode="closest", margin={"l": 5, "r": 5, "t": 40 if title else 10, "b": 5}, showlegend=False)
    return go.Figure(bars, layout)


PROBABILITY_BAR_PX = 120  # the height of a bar at probability 1


def probability_bars_html(panels: Sequence[tuple[str, Sequence[float], str]]) -> str:
    """Each (title, 10 class probabilities, colour) as a bar chart in plain HTML, two side by side (one when alone):
    the predicted class in the colour, its percentage above each bar of 1% or more, the exact one on hover. Draw
    shows these on every pen-up: HTML costs the server and the browser a fraction of what a Plotly chart does, which
    is what lets one server answer a class drawing at once. Titles are escaped."""
    cards = []
    for title, probs, colour in panels:
        best = max(range(len(probs)), key=lambda i: probs[i])
        columns = "".join(
            f"<div title='{digit}: {p:.1%}' style='flex:1;display:flex;flex-direction:column;align-items:center;"
            f"justify-content:flex-end'><span style='font-size:0.72rem;opacity:0.75'>"
            f"{f'{p:.0%}' if p >= 0.01 else '&nbsp;'}</span><div style='width:78%;height:"
            f"{max(2, round(p * PROBABILITY_BAR_PX))}px;border-radius:3px 3px 0 0;"
            f"background:{colour if digit == best else '#c9d3df'}'></div></div>"
            for digit, p in enumerate(probs))
        digits = "".join(f"<div style='flex:1;text-align:center;{'font-weight:700' if digit == best else ''}'>"
                         f"{digit}</div>" for digit in range(len(probs)))
        cards.append(
            f"<div data-testid='draw-bars'><div style='font-weight:600;margin-bottom:4px'>{html.escape(title)}</div>"
            f"<div style='display:flex;align-items:flex-end;height:{PROBABILITY_BAR_PX + 22}px'>{columns}</div>"
            f"<div style='display:flex;border-top:1px solid rgba(128,128,128,0.4);padding-top:2px'>{digits}</div>"
            f"</div>")
    per_row = 2 if len(cards) > 1 else 1
    return (f"<div style='display:grid;grid-template-columns:repeat({per_row},minmax(0,1fr));gap:20px 28px'>"
            f"{''.join(cards)}</div>")


def embedding_figure(xy: Sequence[Sequence[float]], labels: Sequence[int], predicted: Sequence[int],
                     here: tuple[float, float] | None, title: str = "", height: int = 340) -> go.Figure:
    """The test images on a 2-D map, one colour per true class, misclassified ones ringed, and the current input
    as a star. WebGL points: 10,000 of them per model stay smooth. Each class is named by a label at its median
    point instead of a legend, which would take half of a narrow column (four models side by side)."""
    traces, names = [], []
    for digit in range(10):
        points = [i for i, label in enumerate(labels) if label == digit]
        if points:
            names.append({"x": statistics.median(xy[i][0] for i in points),
                          "y": statistics.median(xy[i][1] for i in points), "text": f"<b>{digit}</b>",
                          "showarrow": False, "bgcolor": colour_for(digit), "font": {"color": "#111111", "size": 11},
                          "borderpad": 1, "opacity": 0.9})
        traces.append(go.Scattergl(
            x=[xy[i][0] for i in points], y=[xy[i][1] for i in points], mode="markers", name=str(digit),
            marker={"size": 3, "color": colour_for(digit), "opacity": 0.6}, hoverinfo="name"))
    wrong = [i for i, (label, guess) in enumerate(zip(labels, predicted)) if label != guess]
    traces.append(go.Scattergl(
        x=[xy[i][0] for i in wrong], y=[xy[i][1] for i in wrong], mode="markers", name="misread",
        marker={"size": 7, "symbol": "circle-open", "color": "#888888", "line": {"width": 1}},
        text=[f"#{i}: {labels[i]} read as {predicted[i]}" for i in wrong], hoverinfo="text"))
    if here is not None:
        traces.append(go.Scatter(x=[here[0]], y=[here[1]], mode="markers", name="this input",
                                 marker={"size": 16, "symbol": "star", "color": "#111111",
                                         "line": {"width": 1.5, "color": "#ffffff"}}, hoverinfo="name"))
    layout = base_layout(title, "PC 1", "PC 2", height=height)
    layout.update(hovermode="closest", showlegend=False, annotations=names)
    if not title:
        layout["margin"] = {**layout["margin"], "t": 10}
    return go.Figure(traces, layout)
