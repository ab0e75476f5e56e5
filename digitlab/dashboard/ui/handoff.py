"""Pages that open another page with something to show: named helpers, so that the session keys they share are
spelt in one place (renaming one cannot break another page silently)."""

from __future__ import annotations

from typing import Any

import streamlit as st
import torch

from digitlab.dashboard.ui.widgets import choose_runs

COMPARE_RUNS = "compare.runs"  # Compare's run picker
COMPARE_GROUPED = "compare.group"  # its "group repeats" toggle
INSIDE_MODELS = "inside.models"  # Inside's run picker
INSIDE_ARRIVAL = "inside.arrival"  # what another page carried to Inside, taken once


def open_compare(run_ids: list[str], grouped: bool = False) -> None:
    """Show Compare with exactly ``run_ids`` selected, their repeats grouped if asked."""
    choose_runs(COMPARE_RUNS, run_ids)
    st.session_state[COMPARE_GROUPED] = grouped
    st.switch_page("pages/compare.py")


def open_inside(image01: torch.Tensor, models: list[str]) -> None:
    """Show ``image01`` (a drawing, (28, 28) on 0..1) to ``models`` on Inside."""
    st.session_state[INSIDE_ARRIVAL] = {"source": "carried", "drawing": image01.tolist(), "models": list(models)}
    st.switch_page("pages/inside.py")


def inside_arrival() -> dict[str, Any] | None:
    """What Inside is to show now, once: a drawing carried from another page (open_inside), or a test image that a
    link asks for (?test=<index>&run=<id>, as an Errors card links; that run comes first), each time the link
    changes."""
    arrival = st.session_state.pop(INSIDE_ARRIVAL, None)
    requested = (st.query_params.get("test"), st.query_params.get("run"))
    if requested[0] is not None and st.session_state.get("inside.requested") != requested:
        arrival = {"source": "test", "test": requested[0], "first": requested[1]}
    st.session_state["inside.requested"] = requested
    return arrival
