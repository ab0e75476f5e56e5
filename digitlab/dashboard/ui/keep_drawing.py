"""Draw's box for keeping a drawing: saved as a test drawing (My drawings), or, on a classroom server, added to the
class's collection (the only change its visitors can make), labelled with the prediction unless changed."""

from __future__ import annotations

import streamlit as st

from digitlab.dashboard.access import read_only
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui import actions
from digitlab.dashboard.ui.widgets import rerun_fragment, session_id
from digitlab.drawings import class_mode

KEPT = "draw.saved"  # the label of the drawing just kept, for the next run's message


def keep_box(rgba, drawn: bool, guessed: int, stroke_width: int) -> None:
    """The label selector and the keep button for the canvas's ``rgba`` (``drawn``: it holds a digit)."""
    collecting = read_only() and class_mode()
    with st.container(border=True, key="draw.keep"):
        # The label starts at the prediction; a new prediction makes a new widget, so it follows the drawing.
        label_col, save_col = st.columns([1, 2], vertical_alignment="bottom")
        label = label_col.selectbox("Label", range(10), index=guessed, key=f"draw.save_label.{guessed}",
                                    help="The digit you meant to draw: the prediction, unless you change it.")
        if not drawn:
            keep = {"disabled": True, "help": "Draw a digit first: an empty canvas cannot be kept."}
        else:
            keep = {} if collecting else actions.state_changing()
        text, icon = (("Add to the class collection", ":material/groups:") if collecting
                      else ("Save as a test drawing", ":material/save:"))
        if save_col.button(text, icon=icon, key="draw.save", width="stretch", **keep):
            try:
                if collecting:
                    actions.add_class_drawing(session_id(), rgba, label, stroke_width)
                else:
                    actions.save_drawing(rgba, label, stroke_width)
            except actions.DRAWING_ERRORS as err:
                st.error(markdown_literal(str(err)))  # the canvas and the guesses stay as they were
            else:
                st.session_state["draw.canvas_generation"] += 1
                st.session_state[KEPT] = label
                rerun_fragment()
        if (kept := st.session_state.pop(KEPT, None)) is not None:
            done = (f"Added a **{kept}** to the class collection: the **Class board** scores every model on the "
                    "class's drawings." if collecting else
                    f"Saved as a **{kept}**: every model is scored on it in **My drawings**.")
            st.success(f"{done} The canvas is clear for the next one.", icon=":material/check:")
        elif collecting:
            st.caption("Label what you drew and add it: the class's drawings become a test set the Class board "
                       "scores every model on, live.")
        elif read_only():
            st.caption(":material/lock: Read-only mode: drawings cannot be saved here.")
        else:
            st.caption("Keep labelled drawings as your own test set: **My drawings** scores every model on them.")
