"""The Train page's race: 2 to 8 configurations picked one by one (a preset, or the form's settings as they stand),
then started together with one button."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from digitlab import study
from digitlab.config import PRESETS, RACE_SETS, TrainConfig, preset
from digitlab.dashboard.access import ReadOnlyError
from digitlab.dashboard.forms import model_size
from digitlab.dashboard.jobs.coordinator import BusyError
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui.actions import state_changing
from digitlab.dashboard.ui.loaders import coordinator
from digitlab.dashboard.ui.widgets import session_id
from digitlab.study.race import MAX_RACE_NAME

LANES = "race.lanes"  # [(label, config as a dict)], kept while other pages are shown
REFUSED = "race.refused"  # why the last Start started nothing, to show under the button
STARTED_AT = "race.started_at"  # time.monotonic() of a Start, for the live view's first drawing of the race
FIRST_POINTS_WAIT_S = 1.2  # after Start, the page waits this long at most for every run's first batches


def lanes() -> list[tuple[str, TrainConfig]]:
    return [(label, TrainConfig.from_dict(config)) for label, config in st.session_state.get(LANES, [])]


def _set(picked: list[tuple[str, TrainConfig]]) -> None:
    st.session_state[LANES] = [(label, config.to_dict()) for label, config in picked]


def race_fields(form_config: TrainConfig, form_errors: dict[str, str], form_preset: str) -> None:
    """The race being put together, its controls, and Start."""
    picked = lanes()
    st.caption("Pick 2 to 8 configurations; they train at the same time, the cores shared out between them, their "
               "curves side by side. Repeats of one configuration train with their own seeds.")
    for name, members in RACE_SETS.items():
        if st.button(f"The {name} race: {', '.join(members)}", icon=":material/school:", key=f"race.set.{name}",
                     width="stretch"):
            _set([(member, preset(member)) for member in members])
            st.rerun()
    add_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    chosen = add_col.selectbox("Add a preset", list(PRESETS), key="race.preset",
                               help="Each preset's description says what it trains.")
    if button_col.button("Add", key="race.add", width="stretch", disabled=len(picked) >= study.MAX_LANES):
        _set([*picked, (chosen, preset(chosen))])
        st.rerun()
    label = form_preset if form_preset in PRESETS else (form_config.name or "custom")
    if st.button(f"Add the form's settings ({markdown_literal(label)})", key="race.add_form", width="stretch",
                 disabled=len(picked) >= study.MAX_LANES or bool(form_errors),
                 help="The settings of the Train one run tab, as they stand" + (
                     f": fix the {len(form_errors)} field(s) marked in red there first." if form_errors else ".")):
        _set([*picked, (label, form_config)])
        st.rerun()
    for i, (lane_label, config) in enumerate(picked):
        text_col, remove_col = st.columns([5, 1], vertical_alignment="center")
        size = markdown_literal(model_size(config, {}) or "")
        text_col.markdown(f"**{i + 1}. {markdown_literal(lane_label)}** · {config.model}, {config.epochs} "
                          f"epoch{'s' * (config.epochs != 1)}  \n:gray[{size}]")
        if remove_col.button("", icon=":material/close:", key=f"race.remove.{i}", help="Remove it from the race"):
            _set(picked[:i] + picked[i + 1:])
            st.rerun()
    st.text_input("Race name", key="race.name", placeholder=f"Race at {dt.datetime.now():%H:%M:%S}",
                  help=f"1 to {MAX_RACE_NAME} characters; the runs are named '<race>: <configuration>'.")
    # Started by the button's callback, before the page is drawn again: the runs begin while it is.
    st.button("Start the race", type="primary", width="stretch", key="race.start", on_click=_start,
              **state_changing())
    if refused := st.session_state.pop(REFUSED, None):
        st.error(refused)


def _start() -> None:
    name = st.session_state.get("race.name", "").strip() or f"Race at {dt.datetime.now():%H:%M:%S}"
    try:
        coordinator().start_race(study.define_race(name, lanes()), owner=session_id())
    except (study.StudyError, BusyError, ReadOnlyError) as err:
        st.session_state[REFUSED] = markdown_literal(str(err))
    else:
        st.session_state[STARTED_AT] = time.monotonic()


def wait_for_first_points(race) -> None:
    """On the live view's first drawing of a race this tab has just started: wait until every run has its first
    batches, or FIRST_POINTS_WAIT_S after the click, so that the charts start with them rather than at the feed's
    first write. Warm trainers' first batches come within about a second."""
    started_at = st.session_state.pop(STARTED_AT, None)
    if started_at is None:
        return
    deadline = started_at + FIRST_POINTS_WAIT_S
    for lane in race.lanes:
        lane.wait_for_batches(max(0.0, deadline - time.monotonic()))
