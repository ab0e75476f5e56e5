"""Plotly charts that take new data in place: the Train page's live curves, and a running job's progress.

st.plotly_chart derives a chart's identity from its figure, so a chart whose data change on every refresh is
remounted every time: the user's zoom is lost each second, the chart blinks, and the browser redraws it from
scratch, taking CPU from the training on a small machine. This component keeps one Plotly instance per chart and
hands it each new figure through Plotly.react, which honours layout.uirevision.

While a job runs, the page is not rerun to update them: a feed thread writes the job's progress and figures to a
JSON file in the component's own folder every FEED_EVERY_S (and at once when the job ends), and the frame reads it
from there. A script run, a fragment's too, costs the browser far more than a file read (Streamlit redraws its
element tree), and a 2-core machine takes that from the training. The frame tells the page when the job has ended,
and only then does the page run again, to show the summary (README, "Speed", has the figures).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.offline
from plotly import graph_objects as go
from streamlit.components import v1 as components

from digitlab.dashboard import live, race_live
from digitlab.files import atomic_write

PAGE = Path(__file__).with_name("live_chart.html")
FEED_EVERY_S = 0.8  # the feed's new figures and progress, this often while the job runs
# The frame reads the feed just after each write is due, FEED_RETRY_MS later if it was not there yet, and then
# less and less often, up to every FEED_POLL_MS, while nothing new comes (an epoch's evaluation): each read costs
# the browser and the server a little of the CPU the training needs, so the frame reads about twice a refresh
# rather than on a fixed beat.
FEED_RETRY_MS = 100
FEED_POLL_MS = 250
# ... and every FEED_END_POLL_MS once the job's batches have under FEED_NEAR_END_S left: the feed is written the
# moment the job ends, and the summary waits for the frame to read that.
FEED_END_POLL_MS = 100
FEED_NEAR_END_S = 1.5
# A frame that shows no running job (a Train tab left idle, or showing the last run's summary) reads which job is
# the server's latest every WATCH_EVERY_MS, and asks its page to run again once it has seen a newer one twice: a
# run started in another tab (the teacher's laptop, the projector's tab) shows without a click. Twice, because the
# tab that starts a run draws it itself a moment after the file names it.
LATEST_JOB_FILE = "latest-job.json"
WATCH_EVERY_MS = 1000


def served_folder() -> Path:
    """The component's page beside plotly.js (Streamlit serves a component's files only from its own folder), in a
    folder that this process creates afresh, readable by its user alone (mkdtemp: mode 0700, a random name).
    Component frames run their scripts with the page's origin, so the files must never come from a folder that
    someone else on the machine could have made first, as a fixed name in the shared temp folder could be."""
    folder = Path(tempfile.mkdtemp(prefix="digitlab-live-chart-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    (folder / "index.html").write_bytes(PAGE.read_bytes())
    (folder / LATEST_JOB_FILE).write_text(json.dumps({"job": None}), encoding="utf-8")  # no job yet: nothing to 404
    return folder


FOLDER = served_folder()
_component = components.declare_component("live_charts", path=str(FOLDER))


def _watch(shown_job: str | None) -> dict:
    """What a frame that shows ``shown_job`` (a job key, or None), not running, watches for a newer job."""
    return {"url": LATEST_JOB_FILE, "job": shown_job, "every_ms": WATCH_EVERY_MS}


def live_charts(rows: Sequence[Mapping[str, go.Figure]], key: str, watch_jobs: bool = False) -> None:
    """Draw each row's figures side by side (a narrow page stacks them), all in one frame; on later runs with the
    same ``key``, update each chart, known by its name in ``rows``, in place. With ``watch_jobs``, the frame reruns
    the fragment that drew it once the server has a job (started in any tab)."""
    _component(payload=live.payload(rows), feed=None, watch=_watch(None) if watch_jobs else None, x_axis=None,
               key=key, default=None)


_feed: live.JobFeed | None = None
_feed_lock = threading.Lock()
_announced: str | None = None


def announce(job_key: str) -> None:
    """Name ``job_key`` as the server's latest job, for the frames that watch for one."""
    global _announced
    with _feed_lock:
        if job_key != _announced:
            atomic_write(FOLDER / LATEST_JOB_FILE, lambda tmp: tmp.write_text(json.dumps({"job": job_key})),
                         sync=False)
            _announced = job_key


def follow(job, payload: dict | None = None, build=live.job_payload) -> live.JobFeed:
    """The feed of ``job`` (a run, or a race with its own ``build``), started if it is not yet: one per server, as
    the job is. A new feed first writes ``payload`` (the job's payload as the page just drew it), or ``build(job)``
    now."""
    global _feed
    payload = payload or build(job)
    with _feed_lock:
        if _feed is None or _feed.key != payload["job"] or not _feed.is_alive():
            _feed = live.JobFeed(job, FOLDER / live.FEED_FILE, FEED_EVERY_S, build, payload["job"])
            _feed.publish(payload)  # before the frame first asks for it
            _feed.start()
        return _feed


def _draw(payload: dict, key: str, job, build, x_axis: str | None = None):
    """The frame for ``payload``: while its job runs, following the job's feed, and setting its value (which
    reruns the fragment that drew it) once the job has ended; once it has ended, watching for the server's next
    job, and doing the same when one starts."""
    announce(payload["job"])
    feed = watch = None
    if payload["running"]:
        follow(job, payload, build)
        feed = {"url": live.FEED_FILE, "job": payload["job"], "every_ms": FEED_EVERY_S * 1000,
                "retry_ms": FEED_RETRY_MS, "poll_ms": FEED_POLL_MS, "end_poll_ms": FEED_END_POLL_MS,
                "near_end_s": FEED_NEAR_END_S}
    else:
        watch = _watch(payload["job"])
    return _component(payload=payload, feed=feed, watch=watch, x_axis=x_axis, key=key, default=None)


def job_charts(job, key: str) -> None:
    """A run's progress bar and live charts."""
    _draw(live.job_payload(job), key, job, live.job_payload)


def race_charts(race, key: str, x_axis: str) -> dict | None:
    """A race's progress bars, one per run with its Stop, and its charts with a curve per run, against ``x_axis``
    (samples, epoch or time: the frame draws each curve's x values for it from the trace's meta). The frame's
    value: what it last asked the page ({"stop": a run's place in race.lanes, "click": unique per click} for a
    Stop), or None."""
    return _draw(race_live.race_payload(race), key, race, race_live.race_payload, x_axis)
