"""Compare: runs side by side, or grouped over seeds — table, overlaid curves (bands for groups), small multiples,
McNemar's test of two runs; rename and delete."""

import streamlit as st

from digitlab.dashboard.compare import groups_table, run_colours, styled_groups_table
from digitlab.dashboard.curves import X_AXES
from digitlab.dashboard.grouping import group_runs
from digitlab.dashboard.ui import bootstrap, compare_views, handoff, robustness_views, widgets
from digitlab.dashboard.ui.run_management import manage_runs

bootstrap.use_app_navigation()

st.title("Compare")
listing, _ = widgets.runs_for_page(usable_only=False, deletable_unreadable=True)

by_id = {record.id: record for record in listing.runs}
labels = widgets.run_labels(listing.runs)
shipped = [r.id for r in listing.runs if r.shipped]
trained = [r.id for r in listing.runs if not r.shipped]
selected_ids = widgets.run_picker(handoff.COMPARE_RUNS, listing.runs, "Pick runs to compare", trained[:3] + shipped,
                                 label="Runs")
selected = [by_id[i] for i in selected_ids]
if not selected:
    st.info("Pick one or more runs above.")
    st.stop()

colours = run_colours([r.id for r in listing.runs])
grouped = st.toggle("Group repeats: runs whose configs differ only in seed and name, as one mean ± std",
                    key=handoff.COMPARE_GROUPED)
groups = group_runs(selected) if grouped else None
if groups is not None:
    table = groups_table(groups)
    st.download_button("Download as CSV", table.to_csv(index=False).encode(), "digitlab-groups.csv", "text/csv",
                       key="compare.csv", icon=":material/download:")
    st.table(styled_groups_table(table))
else:
    compare_views.runs_table_view(selected)
compare_views.significance_box(selected, labels)

controls = st.columns([2, 3])
x_axis = controls[0].radio("X axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key="compare.x")
smoothing = controls[1].slider("Smoothing of the per-batch train loss", 0.0, 0.99, 0.9, 0.01, key="compare.smooth")

# Only the open tab is drawn: a hidden tab's charts would cost the browser as much as visible ones.
overlaid, multiples, corruptions, manage = st.tabs(["Overlaid curves", "Side by side", "Corruptions",
                                                    "Rename or delete"], key="compare.view", on_change="rerun")
if overlaid.open:
    with overlaid:
        compare_views.overlaid_curves(selected, groups, colours, x_axis, smoothing)
if multiples.open:
    with multiples:
        compare_views.small_multiples(selected, x_axis, smoothing)
if corruptions.open:
    with corruptions:
        benchmarked, problem = robustness_views.corrupted_means(selected)
        robustness_views.corruption_chart(selected, benchmarked, colours)
        robustness_views.benchmark_action(selected, benchmarked, problem, key="compare.robustness.compute.tab")
if manage.open:
    with manage:
        manage_runs(selected, labels)
