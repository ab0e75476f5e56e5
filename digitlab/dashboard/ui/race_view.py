"""The Train page's view of a race: Stop for each run and for all, the x axis, the charts with a curve per run and a
progress bar each (one frame, fed while it runs), and once the last run has ended, the table and Compare."""

from __future__ import annotations

import streamlit as st

from digitlab.dashboard import live, race_live
from digitlab.dashboard.access import ReadOnlyError
from digitlab.dashboard.curves import X_AXES
from digitlab.dashboard.grouping import group_key
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui import handoff
from digitlab.dashboard.ui.actions import state_changing
from digitlab.dashboard.ui.live_chart import race_charts
from digitlab.dashboard.ui.race_form import wait_for_first_points
from digitlab.dashboard.ui.widgets import session_id

X_AXIS = "race.x_axis"
STOP_CLICK = "race.stop_click"  # the last Stop click of the frame that this tab has carried out
SUMMARY_FORMATS = {"Test accuracy": "{:.2%}", "Test loss": "{:.4f}", "Train time (s)": "{:.1f}",
                   "Parameters": "{:,.0f}", "Images/s": "{:,.0f}"}


def race_view(race, charts_key: str) -> None:
    wait_for_first_points(race)
    snaps = race.snapshots()
    st.subheader(f":material/sports_score: {markdown_literal(race.spec.name)}")
    whose = "" if race.owner == session_id() else " · started in another tab"
    measured = live.held_out_label(snaps[0].held_out_split or "test", snaps[0].held_out_size or live.HELD_OUT_SIZE)
    st.caption(f"{len(snaps)} runs at the same time, each in a trainer of its own{whose}. Held-out accuracy: "
               f"{measured} (each run's own split), ten times an epoch.")
    if race.running:
        if st.button("Stop all", icon=":material/stop:", key="race.stop_all", type="primary",
                     **state_changing(disabled=race.stop_requested)):
            _stop(race.stop)
    else:
        _summary(race, snaps)
    x_axis = st.segmented_control("X axis", list(X_AXES), format_func=X_AXES.get, default="samples", key=X_AXIS,
                                  help="Wall time shows which model is fastest; epochs, which learns most from the "
                                       "same images.") or "samples"
    asked = race_charts(race, charts_key, x_axis)
    # A run's Stop is drawn by the frame, beside its progress bar, so that it always names the run it stops; it
    # asks for it through the frame's value, which stays the same until the next click.
    if asked and asked.get("stop") is not None and asked.get("click") != st.session_state.get(STOP_CLICK):
        st.session_state[STOP_CLICK] = asked["click"]
        if 0 <= asked["stop"] < len(race.lanes):
            _stop(race.lanes[asked["stop"]].stop)


def _stop(stop) -> None:
    try:
        stop()
    except ReadOnlyError as err:
        st.error(str(err))
    else:
        st.rerun(scope="fragment")


def _summary(race, snaps) -> None:
    table = race_live.summary_table(snaps)
    table["Run"] = [markdown_literal(race_live.lane_label(snap, race.spec.name)) for snap in snaps]
    table["Status"] = [markdown_literal(status) for status in table["Status"]]
    st.table(table.style.format(SUMMARY_FORMATS, na_rep="–").hide(axis="index"))
    run_ids = race.run_ids()
    repeats = len({group_key(snap.config) for snap in snaps if snap.run_id}) < len(run_ids)
    if run_ids and st.button("Compare these runs" + (", grouped" if repeats else "") + " →", key="race.compare"):
        handoff.open_compare(run_ids, grouped=repeats)
