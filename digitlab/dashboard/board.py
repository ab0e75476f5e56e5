"""What the Class board shows of the class's drawings: each model's accuracy on them, per digit, and the drawings
most models get wrong. From the drawings and each model's answers (digitlab.drawings.Answers), no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from digitlab.dashboard.charts import base_layout, colour_for
from digitlab.dashboard.drawings import digit_counts
from digitlab.dashboard.text import plotly_literal
from digitlab.drawings import DIGITS, Drawing, DrawingScore


def hardest(drawings: Sequence[Drawing], scores: Mapping[str, DrawingScore], count: int) -> list[Drawing]:
    """The ``count`` drawings most of the models get wrong (at least one), most wrong first, then newest first."""
    wrong_sets = [set(result.wrong) for result in scores.values()]
    wrong = {d.id: sum(d.id in wrong_ids for wrong_ids in wrong_sets) for d in drawings}
    missed = [d for d in drawings if wrong[d.id]]
    return sorted(missed, key=lambda d: (wrong[d.id], d.saved_at, d.id), reverse=True)[:count]


def per_digit_figure(scores: Mapping[str, DrawingScore], names: Mapping[str, str]) -> go.Figure:
    """Each model's accuracy on the class's drawings of each digit, as bars side by side; the x axis says how many
    drawings each digit has."""
    counts = digit_counts(scores)
    x = [f"{digit} (n={counts[digit]})" for digit in DIGITS]
    bars = []
    for i, (run_id, result) in enumerate(scores.items()):
        per_digit = result.per_digit
        bars.append(go.Bar(x=x, y=[correct / n if n else None for correct, n in per_digit.values()],
                           name=plotly_literal(names.get(run_id, run_id)), marker_color=colour_for(i),
                           hovertemplate="%{x}: %{y:.0%}<extra>%{fullData.name}</extra>"))
    layout = base_layout("Accuracy on each digit", "The digit drawn", "Accuracy", percent=True, height=360,
                         revision="board-per-digit")
    layout.update(barmode="group", hovermode="closest")
    layout["yaxis"]["range"] = [0, 1.02]
    return go.Figure(bars, layout)
