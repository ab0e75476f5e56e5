"""Inside: what each layer of a model sees, which pixels decided, and which training images it finds alike."""

import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas  # only importable inside a running Streamlit app

from digitlab.dashboard.images import digit_png
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui import bootstrap, handoff, robustness_views, widgets
from digitlab.dashboard.ui.inside_views import METHOD_LABELS, model_column
from digitlab.dashboard.ui.loaders import mnist
from digitlab.data import DataNotFoundError
from digitlab.inside import DEFAULT_METHOD, METHODS
from digitlab.preprocess import canvas_image

bootstrap.use_app_navigation()
CANVAS_SIZE = 280
PER_ROW = 4
SOURCES = {"draw": "Draw here", "test": "A test image", "carried": "The drawing from Draw"}
VIEWS = ["Inside", "Perturb", "Adversarial"]  # what the models see; transformed; attacked

st.title("Inside")
listing, usable = widgets.runs_for_page(usable_only=True)
by_id = {r.id: r for r in usable}

if (arrival := handoff.inside_arrival()) is not None:
    st.session_state["inside.source"] = arrival["source"]
    if "drawing" in arrival:
        st.session_state["inside.drawing"] = arrival["drawing"]
    if "test" in arrival:
        st.session_state["inside.test_index"] = arrival["test"]
    shown = list(arrival.get("models") or widgets.picked_runs(handoff.INSIDE_MODELS, usable))
    if arrival.get("first") in by_id:
        shown = [arrival["first"]] + [i for i in shown if i != arrival["first"]]
    widgets.choose_runs(handoff.INSIDE_MODELS, shown)
chosen = widgets.run_picker(handoff.INSIDE_MODELS, usable, "Pick the models to look inside",
                            max_selections=PER_ROW * 2)

sources = [s for s in SOURCES if s != "carried" or "inside.drawing" in st.session_state]
if st.session_state.get("inside.source") not in sources:
    st.session_state["inside.source"] = "draw"
st.session_state.setdefault("inside.canvas_generation", 0)
st.session_state.setdefault("inside.test_index", "0")

input_col, seen_col, how_col = st.columns([1.3, 1, 1.2], gap="large")
image = None  # (28, 28) on 0..1: what every selected model looks at
label = None  # its true digit, for a test image
with input_col:
    source = st.radio("Input", sources, format_func=SOURCES.get, key="inside.source", horizontal=True)
    if source == "draw":
        canvas = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000",
                           drawing_mode="freedraw", update_streamlit=True, height=CANVAS_SIZE, width=CANVAS_SIZE,
                           return_image_data=True, key=f"inside.canvas.{st.session_state['inside.canvas_generation']}")
        if canvas.image_data is not None:
            image = canvas_image(canvas.image_data)
        if st.button("Clear", icon=":material/ink_eraser:", key="inside.clear"):
            st.session_state["inside.canvas_generation"] += 1
            st.rerun()
    elif source == "carried":
        image = torch.tensor(st.session_state["inside.drawing"])
    else:
        text = st.text_input("Test image number", key="inside.test_index")
        try:
            data = mnist()
        except DataNotFoundError as err:
            st.error(markdown_literal(str(err)))
        else:
            count = len(data.test_labels)
            if not text.strip().isdigit() or not 0 <= int(text) < count:
                widgets.field_error({"test": f"Enter a whole number from 0 to {count - 1:,}, got {text!r}."}, "test")
            else:
                image, label = data.test_images[int(text)].float() / 255, data.test_labels[int(text)].item()
                st.caption(f"Test image #{int(text)}: labelled **{label}**")
with seen_col:
    if image is not None:
        st.image(digit_png((image * 255).round(), scale=6), caption="What the models see: 28 × 28")
st.session_state.setdefault("inside.method", DEFAULT_METHOD)
for setting in ("inside.method", "inside.show_all"):  # the Inside view's own: kept while another view is open
    if setting in st.session_state:
        st.session_state[setting] = st.session_state[setting]
method, show_all = DEFAULT_METHOD, False
if (st.session_state.get("inside.view") or st.query_params.get("inside.view", VIEWS[0])) == VIEWS[0]:
    with how_col:
        method = st.selectbox("Attribution", METHODS, format_func=METHOD_LABELS.get, key="inside.method",
                              help="Saliency: how strongly each pixel moves the score. Integrated gradients: each "
                                   "pixel's share of the score, from a black canvas. Grad-CAM: where the last conv "
                                   "layer looked. Occlusion: how much covering a 4 × 4 patch lowers the score.")
        show_all = st.toggle("Show all channels", key="inside.show_all",
                             help="Layers with many channels show their first 16; this enlarges the grids to all.")
        st.caption("Red: pixels for the predicted digit; blue: against it.")

if image is None:
    st.info("Draw a digit on the black canvas, from 0 to 9, or pick a test image: every selected model then shows "
            "what each layer sees, which pixels decided and which training images it finds alike.")
    st.stop()
if not chosen:
    st.info("Pick at least one model above.")
    st.stop()

# Bound to the URL: ?inside.view=Perturb opens (and links to) a view without computing the others first.
inside_view, perturb_view, adversarial_view = st.tabs(VIEWS, key="inside.view", on_change="rerun",
                                                     bind="query-params")
if inside_view.open:
    with inside_view:
        for start in range(0, len(chosen), PER_ROW):
            for column, run_id in zip(st.columns(PER_ROW), chosen[start : start + PER_ROW]):
                with column.container(key=f"inside.model.{run_id}"):
                    model_column(by_id[run_id], image, method, show_all)
if perturb_view.open:
    with perturb_view:
        robustness_views.perturb_tab([by_id[i] for i in chosen], image, label)
if adversarial_view.open:
    with adversarial_view:
        robustness_views.adversarial_tab([by_id[i] for i in chosen], image, label)
