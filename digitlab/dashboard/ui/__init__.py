"""The dashboard's shared Streamlit pieces: cached loaders and small widgets. The only part of digitlab that
imports streamlit."""

from __future__ import annotations

import collections
import os
import runpy
import uuid
from pathlib import Path

import streamlit as st
import streamlit.config
import torch

from digitlab.dashboard.access import READ_ONLY_REASON, ReadOnlyError, read_only, require_writable
from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.data import MNIST, DataNotFoundError, load_mnist
from digitlab.device import describe, pick_device, prepare
from digitlab.drawings import DrawingListing, DrawingScore, DrawingsError, DrawingStore, ImportReport, score
from digitlab.predict import RunPredictions, predict, run_predictions
from digitlab.significance import ComparisonError, mcnemar
from digitlab.store import WEIGHTS_FILE, Listing, LoadedRun, RunError, RunRecord, RunStore

STATUS_ICONS = {"completed": ":material/check_circle:", "running": ":material/hourglass_top:",
                "stopped": ":material/stop_circle:", "diverged": ":material/trending_up:",
                "interrupted": ":material/warning:", "failed": ":material/error:",
                "pruned": ":material/content_cut:"}


APP_SCRIPT = Path(__file__).resolve().parents[3] / "app.py"

# Streamlit runs a full gc.collect(2) after every script run. With torch and plotly loaded that takes ~100 ms, so
# the live view, rerun every second, spent 0.07 of the 2 cores on it, taken from the training it shows. Python's
# own generational collector still runs; it is the forced full pass per run that goes.
streamlit.config.set_option("runner.postScriptGC", False)


def use_app_navigation() -> None:
    """Call first in every page.

    Until app.py's st.navigation has run once in a process, Streamlit treats the pages/ folder beside app.py as an
    old-style multipage app: a first visit straight to /train runs that page alone, without the app's layout and
    sidebar (AppTest does this on every run). Then run app.py here, in this same script run, so that its
    navigation takes over and runs this page (widget clicks of this run included), and stop this outer copy.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP_SCRIPT), run_name="__main__")
        st.stop()


def store() -> RunStore:
    return RunStore()


def list_runs() -> Listing:
    return store().list()


def coordinator() -> Coordinator:
    """One per server and store: every tab sees the same jobs, and "Clear caches" keeps them."""
    return Coordinator.for_store(store())


@st.cache_resource(show_spinner="Loading MNIST...")
def mnist() -> MNIST:
    return load_mnist()


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    device = pick_device("auto")
    prepare(device)
    return describe(device)


def _weights_stamp(record: RunRecord) -> float:
    try:
        return record.weights_path.stat().st_mtime_ns
    except OSError as err:  # deleted since the listing: the loaders' callers handle RunError only
        raise RunError(f"{WEIGHTS_FILE} cannot be read ({err.strerror})") from None


@st.cache_resource(show_spinner=False, max_entries=32)
def _loaded(path: str, stamp: float) -> LoadedRun:
    loaded = RunStore(os.path.dirname(path)).load(path)
    predict(loaded.model, torch.zeros(1, 1, 28, 28))  # the first call sets up oneDNN's kernels: not on a user's stroke
    return loaded


def loaded_run_for(record: RunRecord) -> LoadedRun:
    """The run with its model, loaded once per server (and again only when its weights file changes); RunError if
    its weights went bad since the listing."""
    return _loaded(str(record.path), _weights_stamp(record))


def model_for(record: RunRecord) -> torch.nn.Module:
    return loaded_run_for(record).model


@st.cache_data(show_spinner="Computing predictions over the 10,000 test images...", max_entries=32)
def _predictions(path: str, stamp: float) -> RunPredictions:
    return run_predictions(_loaded(path, stamp), mnist())


def predictions_for(record: RunRecord) -> RunPredictions:
    return _predictions(str(record.path), _weights_stamp(record))


def significance(first: RunRecord, second: RunRecord) -> tuple[bool, str]:
    """(True, McNemar's sentence) for two runs' test predictions, or (False, why it cannot say): the same run twice,
    weights that cannot be read, no MNIST. Names are escaped for Markdown."""
    first_name, second_name = shorten(first.name), shorten(second.name)
    try:
        result = mcnemar(predictions_for(first), predictions_for(second), first_name, second_name,
                         same_run=first.path == second.path)
    except (ComparisonError, RunError, DataNotFoundError) as err:
        return False, markdown_literal(str(err))
    return True, markdown_literal(result.sentence)


def session_id() -> str:
    """Who this browser tab is, to tell "you" from "another tab" for the training job."""
    return st.session_state.setdefault("digitlab.session", uuid.uuid4().hex)


def run_label(record: RunRecord) -> str:
    """Plain text, for selectors (which show no icons and no Markdown): name (shortened) · accuracy · status unless
    completed."""
    parts = [shorten(record.name)]
    if record.test_acc is not None:
        parts.append(f"{record.test_acc:.2%}")
    if record.status != "completed":
        parts.append(record.status)
    return " · ".join(parts)


def run_labels(records: list[RunRecord]) -> dict[str, str]:
    """run_label for each run id. Selectors tell options apart by their labels, so runs that share a name are told
    apart by their ids."""
    names = collections.Counter(record.name for record in records)
    return {r.id: run_label(r) + (f" · {r.id}" if names[r.name] > 1 else "") for r in records}


def model_picker(key: str, usable: list[RunRecord], placeholder: str) -> list[str]:
    """The page's multiselect of runs under ``key``, the shipped ones by default. The selection survives page
    switches (Streamlit forgets a widget's value once its page is left, so it is kept under "<key>.remembered");
    runs deleted meanwhile drop out of it."""
    by_id = {r.id: r for r in usable}
    default = [r.id for r in usable if r.shipped] or [usable[0].id]
    remembered = st.session_state.get(key, st.session_state.get(f"{key}.remembered", default))
    st.session_state[key] = [i for i in remembered if i in by_id]
    chosen = st.multiselect("Models", list(by_id), format_func=run_labels(usable).get, key=key,
                            placeholder=placeholder)
    st.session_state[f"{key}.remembered"] = chosen
    return chosen


def pager(key: str, page: int, pages: int, caption: str) -> None:
    """The caption, then Previous, "page i of n" and Next, which set st.session_state[key] and rerun."""
    info, prev_col, page_col, next_col = st.columns([5, 1, 1, 1], vertical_alignment="center")
    info.caption(caption)
    if prev_col.button("Previous", key=f"{key}.prev", disabled=page <= 1, width="stretch"):
        st.session_state[key] = page - 1
        st.rerun()
    page_col.markdown(f"<div style='text-align:center'>page {page} of {pages}</div>", unsafe_allow_html=True)
    if next_col.button("Next", key=f"{key}.next", disabled=page >= pages, width="stretch"):
        st.session_state[key] = page + 1
        st.rerun()


def field_error(errors: dict[str, str], key: str) -> None:
    """The library's message for one form field, right under it."""
    if key in errors:
        st.markdown(f":red[{errors[key]}]")


ACTION_ERRORS = (RunError, ReadOnlyError)  # what a refused rename, delete, start or stop raises
DRAWING_ERRORS = (DrawingsError, ReadOnlyError)  # what a refused save, relabel, delete or import raises


def state_changing(disabled: bool = False) -> dict:
    """Keyword arguments for a control that changes state: disabled, with the reason as its help, in read-only
    mode. The action behind it still asks require_writable, should the control be forced."""
    if read_only():
        return {"disabled": True, "help": READ_ONLY_REASON}
    return {"disabled": disabled}


def rename_run(run_id: str, name: str) -> None:
    require_writable("Renaming a run")
    store().rename(run_id, name)


def delete_run(run_id: str) -> None:
    """A run, or an unreadable folder of the store."""
    require_writable("Deleting a run")
    store().delete(run_id)


def drawing_store() -> DrawingStore:
    """The drawings folder: DIGITLAB_DRAWINGS, else ./drawings."""
    return DrawingStore()


@st.cache_resource(show_spinner=False, max_entries=4)
def _drawings(root: str, fingerprint: tuple) -> DrawingListing:
    return DrawingStore(root).list()


def drawings() -> DrawingListing:
    """Every saved drawing, read again only when a file of the folder changes (saved, relabelled, deleted)."""
    folder = drawing_store()
    return _drawings(str(folder.root), folder.fingerprint())


@st.cache_resource(show_spinner=False, max_entries=64)
def _drawing_score(path: str, stamp: float, root: str, fingerprint: tuple) -> DrawingScore:
    return score(_loaded(path, stamp), _drawings(root, fingerprint).drawings)


def drawing_scores(records: list[RunRecord]) -> dict[str, DrawingScore]:
    """Each run's answers on the saved drawings, by run id, in the order of ``records``, computed once per run and
    state of the folder; runs whose weights went bad since the listing are left out."""
    folder = drawing_store()
    root, fingerprint = str(folder.root), folder.fingerprint()
    scores = {}
    for record in records:
        try:
            scores[record.id] = _drawing_score(str(record.path), _weights_stamp(record), root, fingerprint)
        except RunError:
            continue
    return scores


def save_drawing(rgba, label: int, stroke_width: int) -> str:
    require_writable("Saving drawings")
    return drawing_store().save(rgba, label, stroke_width)


def relabel_drawing(drawing_id: str, label: int) -> None:
    require_writable("Relabelling drawings")
    drawing_store().relabel(drawing_id, label)


def delete_drawing(drawing_id: str) -> None:
    require_writable("Deleting drawings")
    drawing_store().delete(drawing_id)


def import_drawings(archive: bytes) -> ImportReport:
    require_writable("Importing drawings")
    return drawing_store().import_zip(archive)


def runs_for_page(usable_only: bool, deletable_unreadable: bool = False) -> tuple[Listing, list[RunRecord]]:
    """The store's runs for a page (only those with usable weights, if asked): unreadable folders are listed in a
    collapsed warning (each with a delete button, if asked), and a page with no run to show stops here with a
    hint."""
    listing = list_runs()
    if listing.unreadable:
        with st.expander(f"{len(listing.unreadable)} unreadable run folder(s) skipped", icon=":material/warning:",
                         expanded=st.session_state.get(CONFIRM_DELETE_FOLDER) is not None):
            for path, reason in listing.unreadable:
                st.warning(f"**{markdown_literal(path.name)}**: {markdown_literal(reason)}")
                if deletable_unreadable:
                    delete_folder_button(path)
    runs = [r for r in listing.runs if r.usable] if usable_only else listing.runs
    if not runs:
        st.info("No usable runs yet. Train one on the **Train** page, or restore the shipped checkpoints "
                "(`git checkout checkpoints/`).")
        st.stop()
    return listing, runs


CONFIRM_DELETE_FOLDER = "unreadable.confirm"  # the folder whose deletion waits for a yes


def delete_folder_button(path: Path) -> None:
    """Delete an unreadable folder of the store, after a confirmation; the store refuses shipped checkpoints and
    folders a live trainer holds, with its reason."""
    key = f"unreadable.delete.{path.name}"
    if st.session_state.get(CONFIRM_DELETE_FOLDER) != path.name:
        if st.button("Delete this folder…", icon=":material/delete:", key=key, **state_changing()):
            st.session_state[CONFIRM_DELETE_FOLDER] = path.name
            st.rerun()
        return
    st.warning(f"Delete the folder {markdown_literal(str(path))} and everything in it? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", type="primary", key=f"{key}.yes", width="stretch", **state_changing()):
        st.session_state.pop(CONFIRM_DELETE_FOLDER)
        try:
            delete_run(path.name)
        except ACTION_ERRORS as err:
            st.error(markdown_literal(str(err)))
        else:
            st.toast(f"Deleted the folder {markdown_literal(path.name)}")
            st.rerun()
    if no.button("Cancel", key=f"{key}.no", width="stretch"):
        st.session_state.pop(CONFIRM_DELETE_FOLDER)
        st.rerun()


STREAMLIT_SCRIPTS = Path(st.__file__).parent / "static" / "static" / "js"


@st.cache_resource(show_spinner=False)
def chart_code_file() -> str | None:
    """The file name of Streamlit's browser code for st.plotly_chart (4.7 MB, plotly.js inside), or None if this
    Streamlit build names its files otherwise."""
    found = sorted(STREAMLIT_SCRIPTS.glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


def prefetch_chart_code() -> None:
    """Have the browser load and run st.plotly_chart's code while it is idle, once per page load.

    The browser fetches that code the first time a page draws a Plotly chart in the page itself: on a 2-core
    machine, about 0.2 s of the first visit to Compare or Errors went to it. Fetched ahead, by the same URL that
    Streamlit's own code imports it from, it is the same module, there and ready. Anything amiss does nothing.
    """
    name = chart_code_file()
    if name is None:
        return
    st.html(f"""<script type="module">
if (!window.digitlabChartCode) {{
  window.digitlabChartCode = true;
  const app = document.querySelector('script[src*="/static/js/index."]');
  const later = window.requestIdleCallback || (load => setTimeout(load, 1000));
  if (app) later(() => import(new URL("{name}", app.src).href).catch(() => {{}}));
}}
</script>""", unsafe_allow_javascript=True)
