"""What the Compare page shows, computed from run records: the runs table and the curves of each run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
from pandas.io.formats.style import Styler

from digitlab.dashboard.charts import GroupSeries, Series, colour_for
from digitlab.dashboard.curves import metric_curve, per_epoch
from digitlab.dashboard.grouping import Group
from digitlab.dashboard.robustness_figures import CORRUPTED_COLUMN
from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.config import TrainConfig
from digitlab.drawings import DrawingScore
from digitlab.models import default_options
from digitlab.store import RunRecord

# The runs table (seed 002's comparison tables), and how people read its numbers.
TABLE_COLUMNS = ["Run", "Architecture", "Hyperparameters", "Parameters", "Test accuracy", "Test loss", "Epochs",
                 "Train time (s)", "Device", "Precision", "Status", "Date",
                 CORRUPTED_COLUMN]  # filled by with_corrupted_means; "—" until a run is benchmarked
TABLE_FORMATS = {"Parameters": "{:,.0f}", "Test accuracy": "{:.2%}", "Test loss": "{:.4f}", "Train time (s)": "{:.1f}",
                 "Date": "{:%Y-%m-%d %H:%M}",
                 # st.table renders each cell as Markdown: text from run.json is shown literally, free text shortened.
                 **dict.fromkeys(["Run", "Device"], lambda text: markdown_literal(shorten(text))),
                 **dict.fromkeys(["Architecture", "Hyperparameters", "Status"], markdown_literal)}


def run_colours(run_ids: Sequence[str]) -> dict[str, str]:
    """One colour per run, the same on every chart of the page."""
    return {run_id: colour_for(i) for i, run_id in enumerate(run_ids)}


def overlay_series(records: Sequence[RunRecord], colours: dict[str, str], metric: str, x_axis: str,
                   smoothing: float) -> list[Series]:
    series = []
    for record in records:
        x, y = metric_curve(record.data, metric, x_axis, smoothing)
        series.append(Series(shorten(record.name), colours[record.id], x, y, markers=per_epoch(metric)))
    return series


def group_series(groups: Sequence[Group], metric: str) -> list[GroupSeries]:
    """Per group: the mean and std of a per-epoch ``metric`` by epoch, and each run's own curve, for group_figure.
    Groups whose runs never recorded the metric (validation, without a split) are left out."""
    series = []
    for group in groups:
        curve = group.curve(metric)
        if not curve.epochs:
            continue
        runs = [metric_curve(run.data, metric, "epoch") for run in group.runs]
        name = f"{shorten(group.label)} (n={group.n})"
        series.append(GroupSeries(name, group.colour, curve.epochs, curve.mean, curve.std, runs))
    return series


GROUP_COLUMNS = ["Group", "Runs", "Seeds", "Mean test accuracy", "Std", "Architecture", "Hyperparameters"]


def groups_table(groups: Sequence[Group]) -> pd.DataFrame:
    """One row per group: its runs' test accuracy as mean and sample std (blank for a single run) over n runs, and
    the hyperparameters they share, once."""
    rows = [{
        "Group": markdown_literal(shorten(group.label)),
        "Runs": group.n,
        "Seeds": ", ".join(str(seed) for seed in group.seeds),
        "Mean test accuracy": group.test_acc.mean,
        "Std": group.test_acc.std,
        "Architecture": architecture(group.runs[0].config),
        "Hyperparameters": group.runs[0].config.describe(),
    } for group in groups]
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def styled_groups_table(table: pd.DataFrame) -> Styler:
    return table.style.format({"Mean test accuracy": "{:.2%}", "Std": "± {:.2%}"}, na_rep="–").hide(axis="index")


def small_multiple_panels(records: Sequence[RunRecord], kind: str, x_axis: str, smoothing: float
                          ) -> list[tuple[str, list[Series]]]:
    """Per run: train and test accuracy (kind="acc") or loss (kind="loss") on shared axes."""
    panels = []
    for record in records:
        lines = []
        for split, colour in (("train", colour_for(0)), ("test", colour_for(1))):
            metric = f"{split}_{kind}"
            x, y = metric_curve(record.data, metric, x_axis, smoothing)
            lines.append(Series(split, colour, x, y, markers=metric != "train_loss"))
        panels.append((shorten(record.name), lines))
    return panels


def architecture(config: TrainConfig) -> str:
    """The model in a few words: "cnn (conv 16-32-64, fc 256, BN)", "mlp (hidden 1024-1024, dropout 0.2, strokes
    input norm)"."""
    options = {**default_options(config.model), **config.model_options}

    def dashed(values) -> str:
        return "-".join(str(v) for v in values)

    parts = {
        "mlp": lambda: [f"hidden {dashed(options['hidden'])}"],
        "cnn": lambda: [f"conv {dashed(options['channels'])}", f"fc {options['hidden']}"],
        "lenet": lambda: [options["variant"]],
        "resnet": lambda: [f"stages {dashed(options['widths'])}", f"{options['blocks_per_stage']} block(s) each"],
    }.get(config.model, list)()
    if options.get("batch_norm") or options.get("norm") == "batch":
        parts.append("BN")
    if options.get("norm") == "group":
        parts.append("GroupNorm")
    if options.get("dropout"):
        parts.append(f"dropout {options['dropout']:g}")
    if options["input_norm"] != "none":
        parts.append(f"{options['input_norm']} input norm")
    return f"{config.model} ({', '.join(parts)})" if parts else config.model


def runs_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Seed 002's comparison table, one row per run; numbers stay numbers so the table sorts right."""
    rows = []
    for record in records:
        final = record.final
        last = record.epochs[-1] if record.epochs else {}
        created = record.data.get("created_at")
        rows.append({
            "Run": record.name,
            "Architecture": architecture(record.config),
            "Hyperparameters": record.config.describe(),
            "Parameters": record.data.get("param_count"),
            "Test accuracy": final.get("test_acc", last.get("test_acc")),
            "Test loss": final.get("test_loss", last.get("test_loss")),
            "Epochs": len(record.epochs),
            "Train time (s)": final.get("train_s", last.get("elapsed_s")),
            "Device": record.data.get("device_name") or record.data.get("device", ""),
            "Precision": record.data.get("precision"),  # runs recorded before it was recorded: unknown
            "Status": record.status,
            "Date": dt.datetime.fromisoformat(created).astimezone() if created else None,
            "id": record.id,
        })
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "id"])


def sort_runs_table(table: pd.DataFrame, by: str, descending: bool) -> pd.DataFrame:
    """Rows ordered by column ``by``; runs without a value there (stopped before their first epoch) go last."""
    return table.sort_values(by, ascending=not descending, na_position="last", kind="stable").reset_index(drop=True)


DRAWINGS_COLUMN = "My drawings"


def with_drawings_column(table: pd.DataFrame, scores: Mapping[str, DrawingScore]) -> pd.DataFrame:
    """The runs table with each run's accuracy on the saved drawings (digitlab.drawings.score, by run id) beside its
    test accuracy; blank for a run that was not scored (no usable weights)."""
    accuracy = [scores[run_id].accuracy if run_id in scores else None for run_id in table["id"]]
    table = table.copy()
    table.insert(table.columns.get_loc("Test accuracy") + 1, DRAWINGS_COLUMN, pd.array(accuracy, dtype="Float64"))
    return table


def styled_runs_table(table: pd.DataFrame, drawings_count: int | None = None) -> Styler:
    """The table as people read it: formatted numbers, "–" where a run has no value, no id or index; accuracy on
    the drawings, if the table has that column, as "93.3% of 30"; the corrupted mean "—" where not benchmarked."""
    formats = dict(TABLE_FORMATS)
    if DRAWINGS_COLUMN in table:
        formats[DRAWINGS_COLUMN] = lambda accuracy: f"{accuracy:.1%} of {drawings_count}"
    shown = [column for column in table.columns if column != "id"]
    styled = table[shown].style.format(formats, na_rep="–")
    if CORRUPTED_COLUMN in table:  # a table shaped by hand may leave it out
        styled = styled.format("{:.2%}", subset=[CORRUPTED_COLUMN], na_rep="—")
    return styled.hide(axis="index")
