"""Draw: a digit on a canvas, and every selected model's guess as the ink dries."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas  # only importable inside a running Streamlit app

from digitlab.dashboard import charts
from digitlab.dashboard.ui import bootstrap, handoff, loaders, widgets
from digitlab.dashboard.ui.keep_drawing import keep_box
from digitlab.dashboard.compare import run_colours
from digitlab.dashboard.consensus import agreement, guess_drawing
from digitlab.dashboard.images import pixels_png
from digitlab.dashboard.text import counted, markdown_literal, shorten
from digitlab.store import RunError

bootstrap.use_app_navigation()
CANVAS_SIZE = 280

st.title("Draw")
listing, usable = widgets.runs_for_page(usable_only=True)
by_id = {r.id: r for r in usable}
labels = widgets.run_labels(usable)
colours = run_colours([r.id for r in listing.runs])

chosen = widgets.run_picker("draw.models", usable, "Pick the models that should guess")

st.session_state.setdefault("draw.canvas_generation", 0)
widgets.canvas_sends_at_pen_up()


@st.fragment
def canvas_and_guesses() -> None:
    """The canvas and the models' guesses: a stroke reruns only this part of the page (a classroom server answers
    thirty of them at once), not the sidebar or the model picker."""
    # The canvas column stays wider than the 280 px canvas: a narrower one squeezes the drawing out of shape.
    canvas_col, result_col = st.columns([1, 1.6], gap="large")
    with canvas_col:
        width = st.slider("Stroke width", 6, 40, 18, key="draw.stroke")
        canvas = st_canvas(
            stroke_width=width,
            stroke_color="#FFFFFF",
            background_color="#000000",
            drawing_mode="freedraw",
            update_streamlit=True,
            height=CANVAS_SIZE,
            width=CANVAS_SIZE,
            return_image_data=True,
            key=f"draw.canvas.{st.session_state['draw.canvas_generation']}",  # a new key is a clean canvas
        )
        models = {}  # run id: model, for the runs whose weights still load
        for run_id in chosen:
            try:
                models[run_id] = loaders.model_for(by_id[run_id])
            except RunError as err:  # its weights went bad since the listing: the others still guess
                st.warning(f"Skipped **{markdown_literal(shorten(by_id[run_id].name))}**: {markdown_literal(str(err))}")
        rgba = canvas.image_data
        names = {i: shorten(by_id[i].name) for i in models}
        scalings = {i: by_id[i].config.input_scaling for i in models}
        image, guesses, ms = guess_drawing(models, rgba, names, scalings) if rgba is not None else (None, [], 0.0)
        clear_col, seen_col = st.columns([1, 1], vertical_alignment="top")
        if clear_col.button("Clear", icon=":material/ink_eraser:", key="draw.clear"):
            st.session_state["draw.canvas_generation"] += 1
            widgets.rerun_fragment()
        with seen_col:
            if image is None:
                st.caption("The models see a 28 × 28 image: it appears here once you draw.")
            else:
                st.image(pixels_png(image, scale=4), caption="What the models see: 28 × 28, centred by mass")
                if st.button("Look inside this drawing", icon=":material/visibility:", key="draw.inside"):
                    handoff.open_inside(image, chosen)
        keep_box(rgba, image is not None, guesses[0].digit if guesses else 0, width)

    with result_col:
        if image is None:
            st.info("Draw a digit on the black canvas, from 0 to 9. Every selected model guesses as soon as you "
                    "lift the mouse.")
        elif not models:
            st.info("Pick at least one model above.")
        else:
            agree, sentence = agreement(guesses)
            lead = guesses[0]
            big, words = st.columns([1, 3], vertical_alignment="center")
            big.markdown(f"<div style='font-size:5.5rem;font-weight:700;line-height:1;text-align:center' "
                         f"data-testid='draw-prediction'>{lead.digit}</div>", unsafe_allow_html=True)
            words.markdown(f"**{markdown_literal(lead.model)}** is {lead.confidence:.0%} sure it is a "
                           f"**{lead.digit}**.")
            if agree:
                words.success(sentence)
            else:
                words.warning(f"The models disagree: {sentence}")
            words.caption(f"{counted(len(guesses), 'model')} answered in {ms:.1f} ms, preprocessing included.")
            st.html(charts.probability_bars_html([(f"{guess.model}: {guess.digit} ({guess.confidence:.0%})",
                                                    guess.probs.tolist(), colours[guess.key]) for guess in guesses]))


canvas_and_guesses()
