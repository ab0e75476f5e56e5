"""The Train page's run: the Train button, and the live view of the server's latest run (its charts while it
trains, its summary once it has ended)."""

from __future__ import annotations

import streamlit as st

from digitlab.config import TrainConfig
from digitlab.dashboard import live
from digitlab.dashboard.access import ReadOnlyError
from digitlab.dashboard.jobs.coordinator import JobBusyError, RaceBusyError, StudyBusyError
from digitlab.dashboard.jobs.race_job import RaceJob
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui.actions import state_changing
from digitlab.dashboard.ui.live_chart import job_charts, live_charts
from digitlab.dashboard.ui.loaders import coordinator
from digitlab.dashboard.ui.race_view import race_view
from digitlab.dashboard.ui.widgets import STATUS_ICONS, session_id

FIRST_POINTS_WAIT_S = 1.5  # after Train, the page waits this long at most for the first batches to draw them at once
CHARTS = "train.charts"


def train_button(config: TrainConfig, errors: dict[str, str]) -> None:
    """Train: start ``config``, or say why not (invalid fields, read-only mode, another job running)."""
    if not st.button("Train", type="primary", width="stretch", key="train.start", **state_changing()):
        return
    if errors:
        st.error(f"Fix the {len(errors)} field(s) marked in red first.")
        return
    try:
        started = coordinator().start_run(config, owner=session_id())
    except ReadOnlyError as err:
        st.error(str(err))
    except (StudyBusyError, RaceBusyError) as busy:
        st.warning(markdown_literal(str(busy)))
    except JobBusyError as busy:
        snap = busy.snapshot
        whose = "you" if snap.owner == session_id() else "another tab"
        st.warning(f"Already training: **{markdown_literal(snap.config.name or snap.config.model)}** "
                   f"({snap.run_id or 'starting'}), started by {whose}, {snap.progress:.0%} done. One run trains at "
                   "a time; stop it or wait for it to finish.")
    else:
        # A warm trainer's first batches arrive within a fraction of a second: draw the chart with them now rather
        # than at the frame's first read of the feed.
        started.wait_for_batches(FIRST_POINTS_WAIT_S)


@st.fragment
def live_view(planned_epochs: int) -> None:
    """The latest run's (or race's) summary once it has ended; while it runs, its Stop button and the frame that
    follows it (which reruns this fragment when it ends: the page is not rerun to update the charts). While none
    runs, the frame reruns this fragment when one starts, in any tab; its empty charts span ``planned_epochs``."""
    job = coordinator().latest
    if isinstance(job, RaceJob):
        race_view(job, CHARTS)
        return
    if job is None:
        st.info("Press **Train**, or start a race of several, and the loss and accuracy curves will grow here, "
                "live.")
        # Drawn empty now, so the charts' frame has loaded plotly.js before the click: the first points then show
        # at once, and the browser's setting-up does not take the CPU from the training's first seconds.
        live_charts(live.empty_chart_rows(planned_epochs), key=CHARTS, watch_jobs=True)
        return
    snap = job.snapshot()
    title = snap.config.name or f"{snap.config.model} run"
    st.subheader(f"{STATUS_ICONS.get(snap.status, '')} {markdown_literal(title)}")
    caption = (f"`{snap.run_id or '…'}` · {snap.config.model} · {snap.param_count:,} parameters · "
               f"{snap.device_name or '…'} · {snap.precision or '…'}"
               + ("" if snap.owner == session_id() else " · started in another tab"))
    with st.container():  # running or finished: the charts below keep their place, and are not remounted
        if snap.running:
            about, stop = st.columns([4, 1], vertical_alignment="center")
            about.caption(caption)
            if stop.button("Stop", icon=":material/stop:", key="train.stop", width="stretch",
                           **state_changing(disabled=snap.stop_requested)):
                try:
                    job.stop()
                except ReadOnlyError as err:
                    st.error(str(err))
                else:
                    # The trainer ends within a batch (plus one evaluation if no epoch has finished): show the
                    # summary as soon as it has, rather than when the frame notices.
                    job.join(timeout=10)
                    st.rerun(scope="fragment")
        else:
            st.caption(caption)
            _summary(snap)
    job_charts(job, key=CHARTS)


def _summary(snap) -> None:
    final = snap.final
    summary = [
        ("Test accuracy", f"{final['test_acc']:.2%}" if "test_acc" in final else "–"),
        ("Test loss", f"{final['test_loss']:.4f}" if "test_loss" in final else "–"),
        ("Train time", live.format_seconds(final.get("train_s"))),
        ("Parameters", f"{snap.param_count:,}"),
        ("Epochs", f"{len(snap.epochs)} of {snap.config.epochs}"),
        ("Status", snap.status),
    ]
    for row in (summary[:3], summary[3:]):  # three a row: five in one row cut the numbers short
        for column, (label, value) in zip(st.columns(3), row):
            column.metric(label, value)
    if snap.status in ("diverged", "failed"):
        st.error(markdown_literal(snap.message))
    elif snap.status == "stopped":
        kept = " The run is kept with every epoch finished before the stop." if snap.epochs else ""
        st.info(markdown_literal(snap.message) + kept)
    if snap.run_id:
        links = st.columns(3)
        links[0].page_link("pages/compare.py", label="Compare runs →")
        if snap.status != "failed":
            links[1].page_link("pages/errors.py", label="See its mistakes →", query_params={"run": snap.run_id})
            links[2].page_link("pages/draw.py", label="Draw for it →")
