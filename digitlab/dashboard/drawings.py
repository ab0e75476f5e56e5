"""What the My drawings page shows: the score table with its per-digit breakdown, the filters, the drawing cards,
and the messages of an import."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence

import pandas as pd
from pandas.io.formats.style import Styler

from digitlab.dashboard.images import WRONG, pixels_png
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.drawings import DIGITS, Drawing, DrawingScore, ImportReport

ALL_LABELS = "all"
DIGIT_COLUMNS = [str(digit) for digit in DIGITS]
SCORE_COLUMNS = ["Model", "Drawings", "Accuracy", *DIGIT_COLUMNS]


def scores_table(scores: Mapping[str, DrawingScore], names: Mapping[str, str]) -> pd.DataFrame:
    """One row per run: how many drawings, its accuracy on them, and its accuracy on each digit's drawings (blank
    for a digit with none), best first."""
    rows = []
    for run_id, result in scores.items():
        per_digit = result.per_digit
        rows.append({"Model": names.get(run_id, run_id), "Drawings": result.count, "Accuracy": result.accuracy,
                     **{str(d): (correct / count if count else None) for d, (correct, count) in per_digit.items()}})
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    return table.sort_values("Accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def digit_counts(scores: Mapping[str, DrawingScore]) -> dict[int, int]:
    """Drawings per digit (the same for every run: they are scored on the same drawings)."""
    first = next(iter(scores.values()), None)
    return {digit: (first.per_digit[digit][1] if first else 0) for digit in DIGITS}


def styled_scores_table(table: pd.DataFrame, counts: Mapping[int, int]) -> Styler:
    """The score table as people read it: percentages, "–" where a digit has no drawing; each digit's column
    header says how many drawings it has."""
    headers = {str(d): f"{d} (n={counts.get(d, 0)})" for d in DIGITS}
    shown = table.assign(Model=[markdown_literal(shorten(name)) for name in table["Model"]]).rename(columns=headers)
    return (shown.style.format({"Accuracy": "{:.1%}", **{h: "{:.0%}" for h in headers.values()}}, na_rep="–")
            .hide(axis="index"))


def filter_drawings(drawings: Sequence[Drawing], scores: Mapping[str, DrawingScore], label: int | str = ALL_LABELS,
                    some_model_wrong: bool = False) -> list[Drawing]:
    """The drawings with ``label`` (or all), and, if asked, only those that at least one of ``scores``' runs
    gets wrong."""
    wrong = {drawing_id for result in scores.values() for drawing_id in result.wrong}
    return [d for d in drawings if (label == ALL_LABELS or d.label == label)
            and (not some_model_wrong or d.id in wrong)]


def drawing_card_html(drawing: Drawing, scores: Mapping[str, DrawingScore], names: Mapping[str, str]) -> str:
    """One card of the grid as a single piece of HTML: what the models see, the label, and each model's guess, the
    wrong ones in red with a cross (the confidence in each line's tooltip). Names are escaped."""
    png = base64.b64encode(pixels_png(drawing.image, scale=4)).decode("ascii")
    lines = []
    for run_id, result in scores.items():
        guess = result.predicted.get(drawing.id)
        if guess is None:
            continue
        name = html.escape(shorten(names.get(run_id, run_id), 18))
        sure = f"{result.confidence[drawing.id]:.0%} sure"
        # One line per model, cut short rather than wrapped: the full name and confidence are in the tooltip.
        line = 'style="white-space:nowrap;overflow:hidden;text-overflow:ellipsis'
        if guess == drawing.label:
            lines.append(f'<div data-right {line}" title="{name}: {guess}, {sure}">{name}: <b>{guess}</b></div>')
        else:
            lines.append(f'<div data-wrong {line};color:{WRONG}" title="{name}: {guess}, {sure}">'
                         f'{name}: <b>{guess}</b> ✗</div>')
    wrong = sum(1 for line in lines if line.startswith("<div data-wrong"))
    return (
        f'<figure data-label="{drawing.label}" data-wrong-count="{wrong}" style="margin:0">'
        f'<img src="data:image/png;base64,{png}" alt="a drawing labelled {drawing.label}" '
        'style="width:100%;image-rendering:pixelated;border-radius:4px;display:block">'
        f'<figcaption style="margin:.35rem 0 .1rem">labelled <b style="font-size:1.15rem">{drawing.label}</b>'
        "</figcaption>"
        f'<div style="font-size:.8rem;line-height:1.35">{"".join(lines)}</div>'
        "</figure>"
    )


def import_summary(report: ImportReport) -> str:
    """A Markdown line on what an import did; member names escaped."""
    line = f"Imported {counted(len(report.imported), 'drawing')}."
    if report.refused:
        line += f" {counted(len(report.refused), 'member was', 'members were')} left out:"
        line += "".join(f"\n- **{markdown_literal(name)}**: {markdown_literal(reason)}"
                        for name, reason in report.refused)
    return line
