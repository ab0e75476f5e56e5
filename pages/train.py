"""Train: a form that builds a TrainConfig, and the live view of the server's training run."""

import streamlit as st

from digitlab.dashboard.access import READ_ONLY_REASON, read_only
from digitlab.dashboard.text import markdown_literal
from digitlab.dashboard.ui import bootstrap, train_form, train_live
from digitlab.dashboard.ui.loaders import coordinator

bootstrap.use_app_navigation()
jobs = coordinator()
jobs.warm_up()  # a trainer ready for the click (a background thread: this page does not wait for it)
config, errors = train_form.current()

st.title("Train")
if read_only():
    st.info(READ_ONLY_REASON, icon=":material/lock:")
if (running := jobs.running_study()) is not None:
    st.info(f"Study **{markdown_literal(running.spec.name)}** is running, and a study is this server's one job: "
            "Train is off until it ends. Follow or stop it on the Study page.", icon=":material/hourglass_top:")
left, right = st.columns([1.3, 2], gap="large")
with left, st.container(border=True):
    train_form.form_fields(config, errors)
    train_live.train_button(config, errors)
with right:
    train_live.live_view(1 if "epochs" in errors else config.epochs)
