"""Compare's views: the runs table, McNemar's test of two runs, and the curves (overlaid, grouped or side by side)."""

from __future__ import annotations

import streamlit as st

from digitlab.dashboard import charts
from digitlab.dashboard.compare import (
    DRAWINGS_COLUMN,
    group_series,
    overlay_series,
    runs_table,
    small_multiple_panels,
    sort_runs_table,
    styled_runs_table,
    with_drawings_column,
)
from digitlab.dashboard.curves import METRICS, X_AXES
from digitlab.dashboard.grouping import Group
from digitlab.dashboard.text import counted
from digitlab.dashboard.ui import robustness_views
from digitlab.dashboard.ui.loaders import drawing_scores, drawings, significance
from digitlab.store import RunRecord


def runs_table_view(selected: list[RunRecord]) -> None:
    """The sortable table of runs, with their corrupted mean accuracy and their accuracy on the saved drawings where
    known. A plain table, sorted by the controls above it: the interactive grid of st.dataframe took the browser
    much of a page switch to draw."""
    sort_col, order_col, csv_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    benchmarked, problem = robustness_views.corrupted_means(selected)  # the corrupted mean column, where computed
    table = robustness_views.table_with_benchmark(runs_table(selected), benchmarked)
    if drawn := drawings().drawings:  # scored on the drawings saved on Draw (see My drawings)
        table = with_drawings_column(table, drawing_scores([r for r in selected if r.usable]))
    columns = [column for column in table.columns if column != "id"]
    by = sort_col.selectbox("Sort the table by", columns, index=columns.index("Test accuracy"), key="compare.sort")
    descending = order_col.toggle("Descending", value=True, key="compare.descending")
    table = sort_runs_table(table, by, descending)
    csv_col.download_button("Download as CSV", table.to_csv(index=False).encode(), "digitlab-runs.csv", "text/csv",
                            key="compare.csv", icon=":material/download:", width="stretch")
    st.table(styled_runs_table(table, len(drawn)))
    if drawn:
        st.caption(f"{DRAWINGS_COLUMN}: accuracy on the {counted(len(drawn), 'drawing')} saved on Draw; the "
                   "per-digit breakdown is on the **My drawings** page.")
    robustness_views.benchmark_action(selected, benchmarked, problem, key="compare.robustness.compute")


def significance_box(selected: list[RunRecord], labels: dict[str, str]) -> None:
    """McNemar's exact test of two of the selected runs, picked by the user."""
    scored = {r.id: r for r in selected if r.usable}
    with st.container(border=True):
        st.markdown("**Is the difference real?** McNemar's exact test on the test images the two runs disagree on.")
        if len(scored) < 2:
            st.caption("Select two runs with weights to test whether their test accuracies really differ.")
            return
        first_col, second_col = st.columns(2)
        first = first_col.selectbox("First run", list(scored), format_func=labels.get,
                                    key="compare.significance.first")
        second = second_col.selectbox("Second run", list(scored), index=1, format_func=labels.get,
                                      key="compare.significance.second")
        done, line = significance(scored[first], scored[second])
        if done:
            st.markdown(line)
        else:
            st.warning(line)


def overlaid_curves(selected: list[RunRecord], groups: list[Group] | None, colours: dict[str, str], x_axis: str,
                    smoothing: float) -> None:
    """Each metric's chart with every selected run on it, or (``groups``) each group's mean ± std per epoch."""
    validated = any(e.get("val_acc") is not None for r in selected for e in r.epochs)
    live = any("held_out" in r.data for r in selected)
    pairs = [("test_acc", "test_loss"), *([("val_acc", "val_loss")] if validated else []),
             *([("held_out_acc", "held_out_loss")] if live else [])]
    for pair in pairs:
        for column, metric in zip(st.columns(2), pair):
            percent, log_y = metric.endswith("acc"), metric.endswith("loss")
            if groups is not None:  # the runs of a group share epochs (and checks), not times or sample counts
                fig = charts.group_figure(group_series(groups, metric), METRICS[metric], X_AXES["epoch"],
                                          METRICS[metric], percent=percent, log_y=log_y)
            else:
                fig = charts.overlay_figure(overlay_series(selected, colours, metric, x_axis, smoothing),
                                            METRICS[metric], X_AXES[x_axis], METRICS[metric], percent=percent,
                                            log_y=log_y)
            column.plotly_chart(fig, key=f"compare.chart.{metric}")
    if groups is not None:
        st.caption("Grouped curves are drawn per epoch (and per held-out check): the mean of the group's runs, a "
                   "band of ±1 standard deviation where two or more runs have that point, and each run faintly "
                   "behind.")
    else:
        fig = charts.overlay_figure(overlay_series(selected, colours, "train_loss", x_axis, smoothing),
                                    "Train loss (per batch, smoothed)", X_AXES[x_axis], "Cross-entropy", log_y=True)
        st.plotly_chart(fig, key="compare.chart.train_loss")


def small_multiples(selected: list[RunRecord], x_axis: str, smoothing: float) -> None:
    kind = st.radio("Show", ["acc", "loss"], format_func={"acc": "Accuracy", "loss": "Loss"}.get, horizontal=True,
                    key="compare.multiples.kind")
    panels = small_multiple_panels(selected, kind, x_axis, smoothing)
    fig = charts.small_multiples_figure(panels, X_AXES[x_axis], "Accuracy" if kind == "acc" else "Cross-entropy",
                                        percent=kind == "acc", log_y=kind == "loss")
    st.plotly_chart(fig, key="compare.chart.multiples")
