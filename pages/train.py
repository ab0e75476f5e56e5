"""Train: a form that builds a TrainConfig, and the live view of the server's training job."""

import streamlit as st

from digitlab.dashboard import live, ui
from digitlab.config import ADAM_OPTIMIZERS, OPTIMIZERS, PRESETS, SCHEDULES, preset
from digitlab.data import AUGMENTATIONS, INPUT_SCALINGS
from digitlab.device import PRECISIONS, available_devices
from digitlab.dashboard.forms import CUSTOM, FIELD_HELP, config_from_form, form_values, model_size, to_text
from digitlab.dashboard.access import READ_ONLY_REASON, ReadOnlyError, read_only
from digitlab.dashboard.jobs.coordinator import JobBusyError, StudyBusyError
from digitlab.dashboard.text import markdown_literal
from digitlab.models import OPTION_HELP, default_options, list_models, option_choices
from digitlab.dashboard.ui.live_chart import job_charts, live_charts

ui.use_app_navigation()

FIRST_POINTS_WAIT_S = 1.5  # after Train, the page waits this long at most for the first batches to draw them at once
CHARTS = "train.charts"
FORM = "train_form"  # the form's values, kept while other pages are shown (Streamlit drops unrendered widgets)


def widget(field: str) -> str:
    return f"train.{field}"


def load_form(values: dict) -> None:
    st.session_state[FORM] = values
    for field, value in values.items():
        st.session_state[widget(field)] = value


def on_preset() -> None:
    name = st.session_state[widget("preset")]
    if name != CUSTOM:
        load_form({"preset": name, **form_values(preset(name))})


def on_model() -> None:
    form = {k: v for k, v in st.session_state[FORM].items() if not k.startswith("opt.")}
    model = st.session_state[widget("model")]
    options = {f"opt.{k}": to_text(v) for k, v in default_options(model).items()}
    load_form({**form, "preset": CUSTOM, "model": model, **options})


def on_edit() -> None:
    st.session_state[widget("preset")] = CUSTOM


ui.coordinator().warm_up()  # a trainer ready for the click (a background thread: this page does not wait for it)

if FORM not in st.session_state:
    load_form({"preset": "fast", **form_values(preset("fast"))})
form = st.session_state[FORM]
for field, value in form.items():
    st.session_state.setdefault(widget(field), value)
values = {field: st.session_state[widget(field)] for field in form}
config, errors = config_from_form({k: v for k, v in values.items() if k != "preset"})

st.title("Train")
if read_only():
    st.info(READ_ONLY_REASON, icon=":material/lock:")
if (running := ui.coordinator().running_study()) is not None:
    st.info(f"Study **{markdown_literal(running.spec.name)}** is running, and a study is this server's one job: "
            "Train is off until it ends. Follow or stop it on the Study page.", icon=":material/hourglass_top:")
left, right = st.columns([1.3, 2], gap="large")

with left, st.container(border=True):
    st.selectbox("Start from a preset", [*PRESETS, CUSTOM], key=widget("preset"), on_change=on_preset,
                 help="Presets rebuild the seed write-ups' setups (seed-*) and the shipped checkpoints (best-*).")
    chosen = st.session_state[widget("preset")]
    st.caption(PRESETS[chosen].description if chosen in PRESETS else "Your own settings.")
    st.selectbox("Architecture", list_models(), key=widget("model"), on_change=on_model, help=FIELD_HELP["model"])

    with st.expander("Architecture options", expanded=False):
        choices = option_choices(config.model)
        for option, default in default_options(config.model).items():
            key, label, help_text = widget(f"opt.{option}"), option.replace("_", " ").capitalize(), OPTION_HELP.get(option)
            if option in choices:
                st.selectbox(label, choices[option], key=key, on_change=on_edit, help=help_text)
            elif isinstance(default, bool):
                st.checkbox(label, key=key, on_change=on_edit, help=help_text)
            elif isinstance(default, list):
                st.text_input(label, key=key, on_change=on_edit, help=help_text)
            elif isinstance(default, int):
                st.number_input(label, key=key, step=1, on_change=on_edit, help=help_text)
            else:
                st.number_input(label, key=key, step=0.05, on_change=on_edit, help=help_text)
            ui.field_error(errors, f"model_options.{option}")
    ui.field_error(errors, "model_options")  # the parameter cap: shown outside the collapsed options
    if size := model_size(config, errors):
        st.caption(size)

    sgd, adam, step = config.optimizer == "sgd", config.optimizer in ADAM_OPTIMIZERS, config.schedule == "step"
    cycles = config.schedule == "onecycle" and config.optimizer != "adadelta"

    def row(*fields):
        """Widgets side by side, each with its error message under it."""
        for column, (field, draw) in zip(st.columns(len(fields)), fields):
            with column:
                draw()
                ui.field_error(errors, field)

    def number(label, field, step_by, disabled=False, fmt=None):
        return field, lambda: st.number_input(label, key=widget(field), step=step_by, format=fmt, disabled=disabled,
                                              on_change=on_edit, help=FIELD_HELP[field])

    def checkbox(label, field, disabled=False):
        return field, lambda: st.checkbox(label, key=widget(field), on_change=on_edit, disabled=disabled,
                                          help=FIELD_HELP[field])

    def choice(label, field, options):
        return field, lambda: st.selectbox(label, options, key=widget(field), on_change=on_edit,
                                           help=FIELD_HELP[field])

    row(choice("Optimizer", "optimizer", OPTIMIZERS), number("Learning rate", "lr", 0.001, fmt="%.4g"))
    row(number("Momentum", "momentum", 0.05, disabled=not sgd), checkbox("Nesterov", "nesterov", disabled=not sgd))
    row(number("Adam β1", "beta1", 0.05, disabled=not adam), number("Adam β2", "beta2", 0.001, disabled=not adam,
                                                                      fmt="%.4g"))
    row(number("Batch size", "batch_size", 32), number("Epochs", "epochs", 1))
    row(choice("LR schedule", "schedule", SCHEDULES))
    row(checkbox("Cycle momentum or β1", "cycle_momentum", disabled=not cycles))
    row(number("Step gamma", "step_gamma", 0.05, disabled=not step), number("Step every (epochs)", "step_size", 1,
                                                                            disabled=not step))
    row(number("Weight decay", "weight_decay", 0.0001, fmt="%.4g"), number("Label smoothing", "label_smoothing", 0.05))
    row(choice("Augmentation", "augment", AUGMENTATIONS), number("Seed", "seed", 1))
    row(choice("Input scaling", "input_scaling", list(INPUT_SCALINGS)),
        number("Validation images", "validation_size", 1000))
    row(("device", lambda: st.selectbox("Device", ["auto", *available_devices()], key=widget("device"),
                                        on_change=on_edit, help=FIELD_HELP["device"])),
        choice("Precision", "precision", PRECISIONS))
    st.text_input("Run name", key=widget("name"), on_change=on_edit, placeholder="optional", help=FIELD_HELP["name"])
    ui.field_error(errors, "name")

    st.session_state[FORM] = {field: st.session_state[widget(field)] for field in form}
    if st.button("Train", type="primary", width="stretch", key="train.start", **ui.state_changing()):
        if errors:
            st.error(f"Fix the {len(errors)} field(s) marked in red first.")
        else:
            try:
                started = ui.coordinator().start_run(config, owner=ui.session_id())
            except ReadOnlyError as err:
                st.error(str(err))
            except StudyBusyError as busy:
                st.warning(markdown_literal(str(busy)))
            except JobBusyError as busy:
                snap = busy.snapshot
                whose = "you" if snap.owner == ui.session_id() else "another tab"
                st.warning(f"Already training: **{markdown_literal(snap.config.name or snap.config.model)}** "
                           f"({snap.run_id or 'starting'}), "
                           f"started by {whose}, {snap.progress:.0%} done. One run trains at a time; stop it or "
                           "wait for it to finish.")
            else:
                # A warm trainer's first batches arrive within a fraction of a second: draw the chart with them
                # now rather than at the frame's first read of the feed.
                started.wait_for_batches(FIRST_POINTS_WAIT_S)


@st.fragment
def live_view() -> None:
    """The job's summary once it has ended; while it runs, its Stop button and the frame that follows it (which
    reruns this fragment when the job ends: the page is not rerun to update the charts). While none runs, the frame
    reruns this fragment when a job starts, in any tab."""
    job = ui.coordinator().latest_run
    if job is None:
        st.info("Press **Train** and the loss and accuracy curves will grow here, live.")
        # Drawn empty now, so the charts' frame has loaded plotly.js before the click: the first points then show
        # at once, and the browser's setting-up does not take the CPU from the training's first seconds.
        live_charts(live.empty_chart_rows(1 if "epochs" in errors else config.epochs),
                    key=CHARTS, watch_jobs=True)  # a run started in another tab shows here too
        return
    snap = job.snapshot()
    title = snap.config.name or f"{snap.config.model} run"
    mine = snap.owner == ui.session_id()
    st.subheader(f"{ui.STATUS_ICONS.get(snap.status, '')} {markdown_literal(title)}")
    caption = (f"`{snap.run_id or '…'}` · {snap.config.model} · {snap.param_count:,} parameters · "
               f"{snap.device_name or '…'} · {snap.precision or '…'}"
               + ("" if mine else " · started in another tab"))
    with st.container():  # running or finished: the charts below keep their place, and are not remounted
        if snap.running:
            about, stop = st.columns([4, 1], vertical_alignment="center")
            about.caption(caption)
            if stop.button("Stop", icon=":material/stop:", key="train.stop", width="stretch",
                           **ui.state_changing(disabled=snap.stop_requested)):
                try:
                    job.stop()
                except ReadOnlyError as err:
                    st.error(str(err))
                else:
                    # The trainer ends within a batch (plus one evaluation if no epoch has finished): show the summary
                    # as soon as it has, rather than when the frame notices.
                    job.join(timeout=10)
                    st.rerun(scope="fragment")
        else:
            st.caption(caption)
            final = snap.final
            summary = [
                ("Test accuracy", f"{final['test_acc']:.2%}" if "test_acc" in final else "–"),
                ("Test loss", f"{final['test_loss']:.4f}" if "test_loss" in final else "–"),
                ("Train time", live.format_seconds(final.get("train_s"))),
                ("Parameters", f"{snap.param_count:,}"),
                ("Epochs", f"{len(snap.epochs)} of {snap.config.epochs}"),
                ("Status", snap.status),
            ]
            for row in (summary[:3], summary[3:]):  # three a row: five in one row cut the numbers short
                for column, (label, value) in zip(st.columns(3), row):
                    column.metric(label, value)
            if snap.status in ("diverged", "failed"):
                st.error(markdown_literal(snap.message))
            elif snap.status == "stopped":
                kept = " The run is kept with every epoch finished before the stop." if snap.epochs else ""
                st.info(markdown_literal(snap.message) + kept)
            if snap.run_id:
                links = st.columns(3)
                links[0].page_link("pages/compare.py", label="Compare runs →")
                if snap.status != "failed":
                    links[1].page_link("pages/errors.py", label="See its mistakes →",
                                       query_params={"run": snap.run_id})
                    links[2].page_link("pages/draw.py", label="Draw for it →")
    job_charts(job, key=CHARTS)


with right:
    live_view()
