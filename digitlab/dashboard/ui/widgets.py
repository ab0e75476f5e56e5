"""Small widgets the pages share: run labels and pickers, a pager, form field errors, and the runs a page shows
(with the store's unreadable folders listed, and deletable, apart)."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.dashboard.ui.actions import ACTION_ERRORS, confirm_delete, delete_run
from digitlab.dashboard.ui.loaders import list_runs
from digitlab.store import Listing, RunRecord

STATUS_ICONS = {"completed": ":material/check_circle:", "running": ":material/hourglass_top:",
                "stopped": ":material/stop_circle:", "diverged": ":material/trending_up:",
                "interrupted": ":material/warning:", "failed": ":material/error:",
                "pruned": ":material/content_cut:"}
CONFIRM_DELETE_FOLDER = "unreadable.confirm"  # the folder whose deletion waits for a yes


def session_id() -> str:
    """Who this browser tab is, to tell "you" from "another tab" for the server's jobs."""
    return st.session_state.setdefault("digitlab.session", uuid.uuid4().hex)


def rerun_fragment() -> None:
    """Rerun only the fragment this click came from (on Draw, the canvas: what a classroom server answers thirty
    of at once), or the whole page when the click came in a run of the whole page, where Streamlit refuses that."""
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


# streamlit-drawable-canvas 0.13 sends a drawing 200 ms after its last pen-up (a debounce, fixed in its code), two
# thirds of Draw's pen-up-to-answer time. Its toolbar's "Update the app with this drawing" sends the drawing at once
# and cancels that wait: this presses it just after each stroke the canvas has recorded (the canvas records it in a
# microtask after the pen-up; a task queued at the pen-up runs after that).
SEND_AT_PEN_UP = """<script type="module">
if (!window.digitlabSendAtPenUp) {
  window.digitlabSendAtPenUp = true;
  document.addEventListener("mouseup", event => {
    const path = event.composedPath();
    if (!(path[0] instanceof HTMLCanvasElement)) return;
    const host = path.find(element => element.shadowRoot);
    const send = host && host.shadowRoot.querySelector('button[aria-label="Update the app with this drawing"]');
    if (send) setTimeout(() => send.click(), 0);
  }, true);
}
</script>"""


def canvas_sends_at_pen_up() -> None:
    """Have the page's drawing canvas send each stroke as the pen lifts, not 200 ms later (see SEND_AT_PEN_UP). In the
    sidebar, below its content: an element in the page's body, even one that shows nothing, adds a gap."""
    st.sidebar.html(SEND_AT_PEN_UP, unsafe_allow_javascript=True)


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


def choose_runs(key: str, run_ids: list[str]) -> None:
    """Make ``run_ids`` the selection of the run picker under ``key``, on this page or the next one shown."""
    st.session_state[key] = st.session_state[f"{key}.remembered"] = list(run_ids)


def picked_runs(key: str, records: list[RunRecord], default: list[str] | None = None) -> list[str]:
    """What the run picker under ``key`` holds: its selection, or the one remembered from the page's last visit, or
    ``default`` (else the shipped runs) at first."""
    if default is None:
        default = [r.id for r in records if r.shipped] or [records[0].id]
    return st.session_state.get(key, st.session_state.get(f"{key}.remembered", default))


def run_picker(key: str, records: list[RunRecord], placeholder: str, default: list[str] | None = None,
               label: str = "Models", max_selections: int | None = None) -> list[str]:
    """The page's multiselect of runs under ``key`` (see picked_runs). The selection survives page switches
    (Streamlit forgets a widget's value once its page is left, so it is kept under "<key>.remembered"); runs
    deleted meanwhile drop out of it."""
    by_id = {r.id: r for r in records}
    st.session_state[key] = [i for i in picked_runs(key, records, default) if i in by_id][:max_selections]
    chosen = st.multiselect(label, list(by_id), format_func=run_labels(records).get, key=key,
                            max_selections=max_selections, placeholder=placeholder)
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


def delete_folder_button(path: Path) -> None:
    """Delete an unreadable folder of the store, after a confirmation; the store refuses shipped checkpoints and
    folders a live trainer holds, with its reason."""
    confirm_delete(f"unreadable.{path.name}", CONFIRM_DELETE_FOLDER, path.name, label="Delete this folder…",
                   question=f"Delete the folder {markdown_literal(str(path))} and everything in it? This cannot be "
                            "undone.",
                   delete=lambda: delete_run(path.name), deleted=f"Deleted the folder {markdown_literal(path.name)}",
                   errors=ACTION_ERRORS)
