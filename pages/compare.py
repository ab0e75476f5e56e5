"""Compare: runs side by side, or grouped over seeds — table, overlaid curves (bands for groups), small multiples,
McNemar's test of two runs; rename and delete."""

import streamlit as st

from digitlab.dashboard import charts, ui
from digitlab.dashboard.compare import (
    DRAWINGS_COLUMN,
    METRICS,
    X_AXES,
    group_series,
    groups_table,
    overlay_series,
    run_colours,
    runs_table,
    small_multiple_panels,
    sort_runs_table,
    styled_groups_table,
    styled_runs_table,
    with_drawings_column,
)
from digitlab.dashboard.grouping import group_runs
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.dashboard.ui import robustness_views

ui.use_app_navigation()

st.title("Compare")
listing, _ = ui.runs_for_page(usable_only=False, deletable_unreadable=True)

by_id = {record.id: record for record in listing.runs}
labels = ui.run_labels(listing.runs)
shipped = [r.id for r in listing.runs if r.shipped]
trained = [r.id for r in listing.runs if not r.shipped]
# Keep the selection across visits; drop runs deleted meanwhile.
remembered = st.session_state.get("compare.runs", st.session_state.get("compare.remembered", trained[:3] + shipped))
st.session_state["compare.runs"] = [run_id for run_id in remembered if run_id in by_id]
selected_ids = st.multiselect("Runs", list(by_id), format_func=labels.get, key="compare.runs",
                              placeholder="Pick runs to compare")
st.session_state["compare.remembered"] = selected_ids
selected = [by_id[i] for i in selected_ids]
if not selected:
    st.info("Pick one or more runs above.")
    st.stop()

colours = run_colours([r.id for r in listing.runs])
grouped = st.toggle("Group repeats: runs whose configs differ only in seed and name, as one mean ± std",
                    key="compare.group")
groups = group_runs(selected) if grouped else []
if grouped:
    table = groups_table(groups)
    st.download_button("Download as CSV", table.to_csv(index=False).encode(), "digitlab-groups.csv", "text/csv",
                       key="compare.csv", icon=":material/download:")
    st.table(styled_groups_table(table))
else:
    # A plain table, sorted by the controls above it: the interactive grid of st.dataframe took the browser
    # 0.3-0.7 s to draw, most of a page switch.
    sort_col, order_col, csv_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    benchmarked, problem = robustness_views.corrupted_means(selected)  # the corrupted mean column, where computed
    table = robustness_views.table_with_benchmark(runs_table(selected), benchmarked)
    # Scored on the drawings saved on Draw, when there are any (see My drawings).
    if drawn := ui.drawings().drawings:
        table = with_drawings_column(table, ui.drawing_scores([r for r in selected if r.usable]))
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

scored = [r.id for r in selected if r.usable]
with st.container(border=True):
    st.markdown("**Is the difference real?** McNemar's exact test on the test images the two runs disagree on.")
    if len(scored) < 2:
        st.caption("Select two runs with weights to test whether their test accuracies really differ.")
    else:
        first_col, second_col = st.columns(2)
        first = first_col.selectbox("First run", scored, format_func=labels.get, key="compare.significance.first")
        second = second_col.selectbox("Second run", scored, index=1, format_func=labels.get,
                                      key="compare.significance.second")
        done, line = ui.significance(by_id[first], by_id[second])
        if done:
            st.markdown(line)
        else:
            st.warning(line)

controls = st.columns([2, 3])
x_axis = controls[0].radio("X axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key="compare.x")
smoothing = controls[1].slider("Smoothing of the per-batch train loss", 0.0, 0.99, 0.9, 0.01, key="compare.smooth")

# Only the open tab is drawn: a hidden tab's charts would cost the browser as much as visible ones.
overlaid, multiples, corruptions, manage = st.tabs(["Overlaid curves", "Side by side", "Corruptions",
                                                    "Rename or delete"], key="compare.view", on_change="rerun")
validated = any(e.get("val_acc") is not None for r in selected for e in r.epochs)
if overlaid.open:
    with overlaid:
        pairs = [("test_acc", "test_loss"), *([("val_acc", "val_loss")] if validated else [])]
        for pair in pairs:
            for column, metric in zip(st.columns(2), pair):
                percent, log_y = metric.endswith("acc"), metric.endswith("loss")
                if grouped:  # mean ± std per epoch: the runs of a group share epochs, not times or sample counts
                    fig = charts.group_figure(group_series(groups, metric), METRICS[metric], X_AXES["epoch"],
                                              METRICS[metric], percent=percent, log_y=log_y)
                else:
                    fig = charts.overlay_figure(overlay_series(selected, colours, metric, x_axis, smoothing),
                                                METRICS[metric], X_AXES[x_axis], METRICS[metric], percent=percent,
                                                log_y=log_y)
                column.plotly_chart(fig, key=f"compare.chart.{metric}")
        if grouped:
            st.caption("Grouped curves are drawn per epoch: the mean of the group's runs, a band of ±1 standard "
                       "deviation where two or more runs have that epoch, and each run faintly behind.")
        else:
            fig = charts.overlay_figure(overlay_series(selected, colours, "train_loss", x_axis, smoothing),
                                        "Train loss (per batch, smoothed)", X_AXES[x_axis], "Cross-entropy",
                                        log_y=True)
            st.plotly_chart(fig, key="compare.chart.train_loss")

if multiples.open:
    with multiples:
        kind = st.radio("Show", ["acc", "loss"], format_func={"acc": "Accuracy", "loss": "Loss"}.get, horizontal=True,
                        key="compare.multiples.kind")
        panels = small_multiple_panels(selected, kind, x_axis, smoothing)
        fig = charts.small_multiples_figure(panels, X_AXES[x_axis], "Accuracy" if kind == "acc" else "Cross-entropy",
                                            percent=kind == "acc", log_y=kind == "loss")
        st.plotly_chart(fig, key="compare.chart.multiples")

if corruptions.open:
    with corruptions:
        benchmarked, problem = robustness_views.corrupted_means(selected)
        robustness_views.corruption_chart(selected, benchmarked, colours)
        robustness_views.benchmark_action(selected, benchmarked, problem, key="compare.robustness.compute.tab")

if manage.open:
    with manage:
        editable = [r for r in selected if not r.shipped]
        if not editable:
            st.caption("Shipped checkpoints are read-only. Select a run you trained to rename or delete it.")
        else:
            target = st.selectbox("Run", [r.id for r in editable], format_func=labels.get,
                                  key="compare.manage.run")
            record = by_id[target]
            name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
            new_name = name_col.text_input("New name", value=record.name, key=f"compare.manage.name.{target}")
            if button_col.button("Rename", key="compare.manage.rename", width="stretch", **ui.state_changing()):
                try:
                    ui.rename_run(target, new_name)
                    st.toast(f"Renamed to {markdown_literal(new_name.strip())}")
                    st.rerun()
                except ui.ACTION_ERRORS as err:
                    st.error(markdown_literal(str(err)))  # it may quote a run's name
            pending = st.session_state.get("compare.manage.confirm") == target
            if not pending:
                if st.button(f"Delete {markdown_literal(shorten(record.name))}…", icon=":material/delete:",
                             key="compare.manage.delete", **ui.state_changing()):
                    st.session_state["compare.manage.confirm"] = target
                    st.rerun()
            else:
                st.warning(f"Delete **{markdown_literal(shorten(record.name))}** and its folder "
                           f"{markdown_literal(str(record.path))}? This cannot be undone.")
                yes, no = st.columns(2)
                if yes.button("Yes, delete it", type="primary", key="compare.manage.yes", width="stretch",
                              **ui.state_changing()):
                    st.session_state.pop("compare.manage.confirm")
                    try:
                        ui.delete_run(target)
                        st.toast(f"Deleted {markdown_literal(shorten(record.name))}")
                    except ui.ACTION_ERRORS as err:
                        st.error(markdown_literal(str(err)))  # it may quote a run's name
                    else:
                        st.rerun()
                if no.button("Cancel", key="compare.manage.no", width="stretch"):
                    st.session_state.pop("compare.manage.confirm")
                    st.rerun()
