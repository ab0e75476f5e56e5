"""My drawings: the labelled drawings saved on Draw, every selected model's guess on each, and their scores."""

import streamlit as st

from digitlab.dashboard.ui import actions, bootstrap, handoff, loaders, widgets
from digitlab.dashboard.access import read_only
from digitlab.dashboard.drawings import (
    ALL_LABELS,
    digit_counts,
    drawing_card_html,
    filter_drawings,
    import_summary,
    scores_table,
    styled_scores_table,
)
from digitlab.dashboard.mistakes import page_of
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.drawings import DIGITS

bootstrap.use_app_navigation()
PER_ROW = 6
PER_PAGE = PER_ROW * 5
CONFIRM_DELETE = "drawings.confirm_delete"  # the drawing whose deletion waits for a yes

st.title("My drawings")
listing, usable = widgets.runs_for_page(usable_only=True)
by_id = {r.id: r for r in usable}
labels = widgets.run_labels(usable)
folder = loaders.drawing_store().root

chosen = widgets.run_picker("drawings.models", usable, "Pick the models to score")

saved = loaders.drawings()
drawings = saved.drawings
scores = loaders.drawing_scores([by_id[i] for i in chosen])
names = {i: shorten(by_id[i].name) for i in chosen}

if read_only():
    st.info("Read-only (classroom) mode: the drawings and their scores can be viewed, but none can be saved, "
            "relabelled, deleted or imported.", icon=":material/lock:")
st.caption(f"{counted(len(drawings), 'drawing')} in {markdown_literal(str(folder))} (set `DIGITLAB_DRAWINGS` to use "
           "another folder).")

if saved.unreadable:
    with st.expander(f"{counted(len(saved.unreadable), 'unreadable drawing file')} skipped",
                     icon=":material/warning:"):
        for path, reason in saved.unreadable:
            st.warning(f"**{markdown_literal(path.name)}**: {markdown_literal(reason)}.")

with st.expander("Export or import", icon=":material/swap_vert:", expanded=not drawings):
    export_col, import_col = st.columns(2, gap="large")
    with export_col:
        st.markdown("**Export** all drawings as a zip of PNGs plus `labels.csv` (file, label, saved_at, "
                    "stroke_width).")
        # Made when the button is pressed, not on every run of the page.
        st.download_button("Export as zip", lambda: loaders.drawing_store().export_zip(drawings), "my-drawings.zip",
                           "application/zip", key="drawings.export", icon=":material/download:",
                           disabled=not drawings, on_click="ignore")
    with import_col:
        upload = st.file_uploader("Import such a zip", type=["zip"], key="drawings.upload", **actions.state_changing())
        if st.button("Import", icon=":material/upload:", key="drawings.import",
                     **actions.state_changing(disabled=upload is None)):
            try:
                report = actions.import_drawings(upload.getvalue())
            except actions.DRAWING_ERRORS as err:
                st.error(f"{markdown_literal(str(err))} Nothing was imported.")
            else:
                st.session_state["drawings.import_report"] = import_summary(report)
                st.rerun()
        if (summary := st.session_state.pop("drawings.import_report", None)) is not None:
            st.info(summary)

if not drawings:
    st.info("No drawings yet. Draw a digit on the **Draw** page and press **Save as a test drawing**, or import a "
            "zip above.")
    st.stop()
if not chosen:
    st.info("Pick at least one model above.")
    st.stop()

st.subheader("Scores")
st.table(styled_scores_table(scores_table(scores, names), digit_counts(scores)))
st.caption("Each drawing is preprocessed as on Draw, then scaled the way each model was trained. The digit "
           "columns give each model's accuracy on the drawings with that label.")

st.subheader("Drawings")
reset = {"on_change": lambda: st.session_state.update({"drawings.page": 1})}
label_col, wrong_col = st.columns([1, 3], vertical_alignment="bottom")
shown_label = label_col.selectbox("Label", [ALL_LABELS, *DIGITS], key="drawings.label", **reset,
                                  format_func=lambda v: "All labels" if v == ALL_LABELS else str(v))
some_wrong = wrong_col.toggle("Only drawings some model gets wrong", key="drawings.wrong", **reset)
matching = filter_drawings(drawings, scores, shown_label, some_wrong)
shown, page, pages = page_of(list(reversed(matching)), st.session_state.get("drawings.page", 1), PER_PAGE)
st.session_state["drawings.page"] = page
if not matching:
    st.info("No drawing matches these filters.")
elif pages > 1:
    widgets.pager("drawings.page", page, pages, f"{counted(len(matching), 'drawing')}, newest first, {PER_PAGE} per page.")
else:
    st.caption(f"{counted(len(matching), 'drawing')}, newest first.")


def drawing_actions(drawing) -> None:
    """Relabel, delete (after a yes) and look inside one drawing."""
    key = f"drawings.card.{drawing.id}"
    with st.popover("Edit", icon=":material/edit:", width="stretch"):
        new_label = st.selectbox("Label", DIGITS, index=drawing.label, key=f"{key}.label")
        if st.button("Relabel", key=f"{key}.relabel", width="stretch",
                     **actions.state_changing(disabled=new_label == drawing.label)):
            try:
                actions.relabel_drawing(drawing.id, new_label)
            except actions.DRAWING_ERRORS as err:
                st.error(markdown_literal(str(err)))
            else:
                st.toast(f"Relabelled as {new_label}")
                st.rerun()
        if st.button("Look inside", icon=":material/visibility:", key=f"{key}.inside", width="stretch"):
            handoff.open_inside(drawing.image, chosen)
        actions.confirm_delete(key, CONFIRM_DELETE, drawing.id, label="Delete…",
                               question="Delete this drawing? This cannot be undone.",
                               delete=lambda: actions.delete_drawing(drawing.id), deleted="Deleted the drawing",
                               errors=actions.DRAWING_ERRORS, side_by_side=False)


for start in range(0, len(shown), PER_ROW):
    for column, drawing in zip(st.columns(PER_ROW), shown[start : start + PER_ROW]):
        with column.container(border=True, key=f"drawings.cell.{drawing.id}"):
            st.html(drawing_card_html(drawing, scores, names))
            drawing_actions(drawing)
