"""Class board: the class's drawings as a shared test set, every model scored on them live, for the projector."""

import streamlit as st

from digitlab.dashboard.ui import bootstrap, widgets
from digitlab.dashboard.ui.board_view import board

bootstrap.use_app_navigation()

st.title("Class board")
listing, usable = widgets.runs_for_page(usable_only=True)
by_id = {r.id: r for r in usable}
chosen = widgets.run_picker("board.models", usable, "Pick the models to score")
board([by_id[i] for i in chosen])
