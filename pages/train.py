"""Train: a form that builds a TrainConfig, or a race of several; and the live view of the server's run or race."""

import streamlit as st

from digitlab.dashboard.access import READ_ONLY_REASON, read_only
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui import bootstrap, race_form, train_form, train_live
from digitlab.dashboard.ui.loaders import coordinator

bootstrap.use_app_navigation()
jobs = coordinator()
# Trainers ready for the click (started on a background thread: this page does not wait for them): one for a run,
# one for each run of the race being put together.
jobs.warm_up(max(1, len(race_form.lanes())))
config, errors = train_form.current()

st.title("Train")
if read_only():
    st.info(READ_ONLY_REASON, icon=":material/lock:")
if (running := jobs.running_study()) is not None:
    st.info(f"Study **{markdown_literal(running.spec.name)}** is running, and a study is this server's one job: "
            "Train is off until it ends. Follow or stop it on the Study page.", icon=":material/hourglass_top:")
left, right = st.columns([1.3, 2], gap="large")
with left, st.container(border=True):
    one_run, race = st.tabs(["Train one run", "Race several"], key="train.mode")
    with one_run:
        train_form.form_fields(config, errors)
        train_live.train_button(config, errors)
    with race:
        race_form.race_fields(config, errors, st.session_state[train_form.widget("preset")])
with right:
    train_live.live_view(1 if "epochs" in errors else config.epochs)
