"""digitlab's dashboard: streamlit run app.py"""

import streamlit as st

from digitlab.dashboard.ui import bootstrap, loaders
from digitlab.dashboard.access import READ_ONLY_REASON, read_only
from digitlab.dashboard.images import app_icon
from digitlab.dashboard.text import markdown_literal

st.set_page_config(page_title="digitlab", page_icon=app_icon(), layout="wide")
bootstrap.import_pages_in_background()


def home() -> None:
    st.title(":material/draw: digitlab")
    st.markdown("Train, compare and probe handwritten-digit classifiers on MNIST.")
    cards = [
        ("pages/train.py", ":material/model_training: Train", "Pick an architecture and its hyperparameters, press Train, and watch the "
         "loss and accuracy curves grow live."),
        ("pages/compare.py", ":material/compare_arrows: Compare", "Put runs side by side: overlaid curves, small multiples and a sortable "
         "table of accuracy, loss, size and training time."),
        ("pages/errors.py", ":material/search: Errors", "Browse the test images a model gets wrong, with its confidence, and "
         "click the confusion matrix to see one kind of mistake."),
        ("pages/draw.py", ":material/brush: Draw", "Draw a digit and watch every model guess it at once, and where they "
         "disagree."),
        ("pages/inside.py", ":material/visibility: Inside", "Look inside: what each layer sees, which pixels decided, "
         "and which training images a model finds alike, model beside model."),
        ("pages/drawings.py", ":material/gesture: My drawings", "Keep labelled drawings as your own test set, and "
         "see how every model scores on your handwriting."),
        ("pages/study.py", ":material/science: Study", "Train many runs from one action: repeats over seeds, grids "
         "of settings or a search, followed live and compared grouped."),
        ("pages/board.py", ":material/groups: Class board", "A class draws on its own devices: every model scored "
         "on the class's handwriting, live, for the projector."),
    ]
    per_row = 4  # all eight cards in one row squeezed their words apart
    for start in range(0, len(cards), per_row):
        for column, (page, label, text) in zip(st.columns(per_row), cards[start : start + per_row]):
            with column.container(border=True, height="stretch"):
                st.page_link(page, label=label)
                st.markdown(text)


pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/errors.py", title="Errors", icon=":material/search:"),
    st.Page("pages/draw.py", title="Draw", icon=":material/brush:"),
    st.Page("pages/inside.py", title="Inside", icon=":material/visibility:"),
    st.Page("pages/drawings.py", title="My drawings", icon=":material/gesture:"),
    st.Page("pages/study.py", title="Study", icon=":material/science:"),
    st.Page("pages/board.py", title="Class board", icon=":material/groups:"),
]
navigation = st.navigation(pages)

with st.sidebar:
    listing = loaders.list_runs()
    st.caption(f"**Device:** {loaders.device_label()}")
    st.caption(f"**Stored runs:** {len(listing.runs)}")
    if read_only():
        st.caption(":material/lock: **Read-only mode**: viewing only", help=READ_ONLY_REASON)
    jobs = loaders.coordinator()
    if (run := jobs.running_run()) is not None:
        snap = run.snapshot()
        st.caption(f":material/hourglass_top: **Training** {snap.config.model}: {snap.progress:.0%}")
    if (race := jobs.running_race()) is not None:
        st.caption(f":material/sports_score: **Race** {markdown_literal(race.spec.name)}: {len(race.lanes)} runs")
    if (study_job := jobs.running_study()) is not None:
        st.caption(f":material/science: **Study** {markdown_literal(study_job.spec.name)} is running")
    bootstrap.prefetch_page_element_code()

navigation.run()
