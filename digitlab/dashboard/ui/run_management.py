"""Compare's "Rename or delete" tab: a run the user trained renamed, or deleted after a yes; shipped checkpoints are
read-only."""

from __future__ import annotations

import streamlit as st

from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.dashboard.ui.actions import ACTION_ERRORS, confirm_delete, delete_run, rename_run, state_changing
from digitlab.store import RunRecord


def manage_runs(selected: list[RunRecord], labels: dict[str, str]) -> None:
    editable = {r.id: r for r in selected if not r.shipped}
    if not editable:
        st.caption("Shipped checkpoints are read-only. Select a run you trained to rename or delete it.")
        return
    target = st.selectbox("Run", list(editable), format_func=labels.get, key="compare.manage.run")
    record = editable[target]
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    new_name = name_col.text_input("New name", value=record.name, key=f"compare.manage.name.{target}")
    if button_col.button("Rename", key="compare.manage.rename", width="stretch", **state_changing()):
        try:
            rename_run(target, new_name)
            st.toast(f"Renamed to {markdown_literal(new_name.strip())}")
            st.rerun()
        except ACTION_ERRORS as err:
            st.error(markdown_literal(str(err)))  # it may quote a run's name
    name = markdown_literal(shorten(record.name))
    confirm_delete("compare.manage", "compare.manage.confirm", target, label=f"Delete {name}…",
                   question=f"Delete **{name}** and its folder {markdown_literal(str(record.path))}? This cannot be "
                            "undone.",
                   delete=lambda: delete_run(target), deleted=f"Deleted {name}", errors=ACTION_ERRORS)
