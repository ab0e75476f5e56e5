"""Errors: the test images a run gets wrong, with its confidence; confusion matrix; per-class accuracy."""

import streamlit as st

from digitlab.dashboard import charts
from digitlab.dashboard.ui import bootstrap, error_views, loaders, widgets
from digitlab.dashboard.mistakes import (
    PER_PAGE,
    SORTS,
    ErrorFilter,
    cell_from_selection,
    compare_errors,
    filter_errors,
    header_line,
    page_of,
)
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.predict import RunPredictions
from digitlab.store import RunError, RunRecord

bootstrap.use_app_navigation()
ANY = "any"

st.title("Errors")
listing, usable = widgets.runs_for_page(usable_only=True)
by_id = {r.id: r for r in usable}
labels = widgets.run_labels(usable)

# Default: the run a link asked for (?run=...), else the best shipped checkpoint.
requested = st.query_params.get("run")
best_shipped = max((r for r in usable if r.shipped), key=lambda r: r.test_acc or 0, default=usable[0])
if st.session_state.get("errors.run") not in by_id:
    st.session_state["errors.run"] = requested if requested in by_id else best_shipped.id
elif requested in by_id and st.session_state.get("errors.requested") != requested:
    st.session_state["errors.run"] = requested
st.session_state["errors.requested"] = requested

pick, versus = st.columns(2)
run_id = pick.selectbox("Run", list(by_id), format_func=labels.get, key="errors.run")
others = [i for i in by_id if i != run_id]
other_id = versus.selectbox("Compare with (optional)", [None, *others], key="errors.versus",
                            format_func=lambda i: "no second run" if i is None else labels[i])
record = by_id[run_id]


def predictions_or_none(run: RunRecord) -> RunPredictions | None:
    """Its predictions, or None with an error saying why: its weights may have gone bad since the listing."""
    try:
        return loaders.predictions_for(run)
    except RunError as err:
        st.error(f"**{markdown_literal(shorten(run.name))}** cannot be shown: {markdown_literal(str(err))}. "
                 "Pick another run above.")
        return None


preds = predictions_or_none(record)
if preds is None:
    st.stop()
test_images = loaders.test_split().test_images

st.subheader(header_line(preds))


def on_cell_click() -> None:
    cell = cell_from_selection(st.session_state["errors.matrix"].get("selection"))
    if cell is not None:
        st.session_state["errors.true"], st.session_state["errors.predicted"] = cell
        st.session_state["errors.page"] = 1


for key in ("errors.true", "errors.predicted"):
    st.session_state.setdefault(key, ANY)
st.session_state.setdefault("errors.page", 1)

matrix_col, class_col = st.columns([1, 1], gap="large")
with matrix_col:
    selected_cell = None
    if st.session_state["errors.true"] != ANY and st.session_state["errors.predicted"] != ANY:
        selected_cell = (st.session_state["errors.true"], st.session_state["errors.predicted"])
    st.plotly_chart(charts.confusion_figure(preds.confusion.tolist(), selected_cell), key="errors.matrix",
                    on_select=on_cell_click, selection_mode="points", config={"displayModeBar": False})
with class_col:
    st.plotly_chart(charts.per_class_figure(preds.per_class_accuracy.tolist()), key="errors.per_class",
                    config={"displayModeBar": False})
    among = None
    shown_preds = preds
    if other_id is not None and (other_preds := predictions_or_none(by_id[other_id])) is not None:
        other = by_id[other_id]
        overlap = compare_errors(preds, other_preds)
        first_name, other_name = markdown_literal(shorten(record.name)), markdown_literal(shorten(other.name))
        subsets = {  # radio options render Markdown
            "all": f"All errors of {first_name} ({len(preds.misclassified)})",
            "both": f"Both get wrong ({len(overlap.both)})",
            "only_first": f"Only {first_name} gets wrong ({len(overlap.only_first)})",
            "only_second": f"Only {other_name} gets wrong ({len(overlap.only_second)})",
        }
        done, line = loaders.significance(record, other)
        if done:
            st.caption(line)
        else:
            st.warning(line)
        subset = st.radio("Show", list(subsets), format_func=subsets.get, key="errors.subset")
        among = {"all": None, "both": overlap.both, "only_first": overlap.only_first,
                 "only_second": overlap.only_second}[subset]
        if subset == "only_second":
            shown_preds = other_preds

st.divider()
with st.container():
    digits = [ANY, *range(10)]
    f1, f2, f3, f4 = st.columns([1, 1, 1.4, 2])
    f1.selectbox("True digit", digits, key="errors.true", on_change=lambda: st.session_state.update({"errors.page": 1}))
    f2.selectbox("Predicted digit", digits, key="errors.predicted",
                 on_change=lambda: st.session_state.update({"errors.page": 1}))
    f3.selectbox("Order", list(SORTS), format_func=SORTS.get, key="errors.sort")
    low, high = f4.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="errors.confidence")
    where = ErrorFilter(
        true_class=None if st.session_state["errors.true"] == ANY else st.session_state["errors.true"],
        predicted_class=None if st.session_state["errors.predicted"] == ANY else st.session_state["errors.predicted"],
        min_confidence=low, max_confidence=high,
    )
    items = filter_errors(shown_preds, where, st.session_state["errors.sort"], among)
    shown, page, pages = page_of(items, st.session_state["errors.page"])
    st.session_state["errors.page"] = page

    widgets.pager("errors.page", page, pages, f"{counted(len(items), 'image')} match"
             + (" · clear the filters to see all" if len(items) == 0 else ""))

    error_views.gallery(shown, shown_preds, test_images, run_id if shown_preds is preds else other_id)
    if len(shown) < len(items) or page > 1:
        st.caption(f"Showing {len(shown)} of {len(items)} ({PER_PAGE} per page).")
