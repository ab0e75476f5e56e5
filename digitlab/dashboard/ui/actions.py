"""What changes state from a page: renaming and deleting runs, saving and editing drawings, each refused in read-only
mode whoever calls it (access.writable), and the controls that ask for them."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from digitlab.dashboard.access import READ_ONLY_REASON, ReadOnlyError, read_only, writable
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui.loaders import class_collection, drawing_store, store
from digitlab.drawings import DrawingsError, ImportReport, class_mode
from digitlab.drawings.class_collection import CLASS_ENV
from digitlab.store import RunError

ACTION_ERRORS = (RunError, ReadOnlyError)  # what a refused rename, delete, start or stop raises
DRAWING_ERRORS = (DrawingsError, ReadOnlyError)  # what a refused save, relabel, delete or import raises


def state_changing(disabled: bool = False) -> dict:
    """Keyword arguments for a control that changes state: disabled, with the reason as its help, in read-only
    mode. The action behind it still refuses, should the control be forced."""
    if read_only():
        return {"disabled": True, "help": READ_ONLY_REASON}
    return {"disabled": disabled}


@writable("Renaming a run")
def rename_run(run_id: str, name: str) -> None:
    store().rename(run_id, name)


@writable("Deleting a run")
def delete_run(run_id: str) -> None:
    """A run, or an unreadable folder of the store."""
    store().delete(run_id)


@writable("Saving drawings")
def save_drawing(rgba, label: int, stroke_width: int) -> str:
    return drawing_store().save(rgba, label, stroke_width)


@writable("Relabelling drawings")
def relabel_drawing(drawing_id: str, label: int) -> None:
    drawing_store().relabel(drawing_id, label)


@writable("Deleting drawings")
def delete_drawing(drawing_id: str) -> None:
    drawing_store().delete(drawing_id)


@writable("Importing drawings")
def import_drawings(archive: bytes) -> ImportReport:
    return drawing_store().import_zip(archive)


def add_class_drawing(session: str, rgba, label: int, stroke_width: int) -> str:
    """Add a drawing to the class's collection for the tab ``session`` (widgets.session_id), within its bounds
    (digitlab.drawings.class_collection): the only change a classroom server's visitors can make, and only when
    class drawing is on."""
    if not class_mode():
        raise ReadOnlyError(f"Adding drawings to a class collection is turned off: whoever runs the dashboard can set "
                            f"{CLASS_ENV}=1 to turn it on.")
    return class_collection().add(session, rgba, label, stroke_width)


def confirm_delete(key: str, pending: str, target: str, *, label: str, question: str, delete: Callable[[], None],
                   deleted: str, errors: tuple[type[Exception], ...], side_by_side: bool = True) -> None:
    """A delete button that asks first: pressed, it shows ``question`` with "Yes, delete it" and "Cancel".

    ``st.session_state[pending]`` holds the ``target`` whose deletion waits for a yes (one at a time per
    ``pending``); the buttons' keys are "<key>.delete", "<key>.yes" and "<key>.no". On a yes, ``delete()`` runs: a
    refusal in ``errors`` is shown (Markdown-escaped), a success is toasted as ``deleted``.
    """
    if st.session_state.get(pending) != target:
        if st.button(label, icon=":material/delete:", key=f"{key}.delete", **state_changing()):
            st.session_state[pending] = target
            st.rerun()
        return
    st.warning(question)
    yes_place, no_place = st.columns(2) if side_by_side else (st, st)
    if yes_place.button("Yes, delete it", type="primary", key=f"{key}.yes", width="stretch", **state_changing()):
        st.session_state.pop(pending)
        try:
            delete()
        except errors as err:
            st.error(markdown_literal(str(err)))  # it may quote a run's name
        else:
            st.toast(deleted)
            st.rerun()
    if no_place.button("Cancel", key=f"{key}.no", width="stretch"):
        st.session_state.pop(pending)
        st.rerun()
