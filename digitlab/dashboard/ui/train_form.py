"""The Train page's form: a preset or its own settings, each field with the library's message under it, turned into
a TrainConfig (digitlab.dashboard.forms does the turning; this draws the widgets)."""

from __future__ import annotations

import streamlit as st

from digitlab.config import ADAM_OPTIMIZERS, OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig, preset
from digitlab.dashboard.forms import CUSTOM, FIELD_HELP, config_from_form, form_values, model_size, to_text
from digitlab.dashboard.ui.widgets import field_error
from digitlab.data import AUGMENTATIONS, INPUT_SCALINGS
from digitlab.device import PRECISIONS, available_devices
from digitlab.models import OPTION_HELP, default_options, list_models, option_choices

FORM = "train_form"  # the form's values, kept while other pages are shown (Streamlit drops unrendered widgets)


def widget(field: str) -> str:
    return f"train.{field}"


def _load(values: dict) -> None:
    st.session_state[FORM] = values
    for field, value in values.items():
        st.session_state[widget(field)] = value


def _on_preset() -> None:
    name = st.session_state[widget("preset")]
    if name != CUSTOM:
        _load({"preset": name, **form_values(preset(name))})


def _on_model() -> None:
    form = {k: v for k, v in st.session_state[FORM].items() if not k.startswith("opt.")}
    model = st.session_state[widget("model")]
    options = {f"opt.{k}": to_text(v) for k, v in default_options(model).items()}
    _load({**form, "preset": CUSTOM, "model": model, **options})


def _on_edit() -> None:
    st.session_state[widget("preset")] = CUSTOM


def current() -> tuple[TrainConfig, dict[str, str]]:
    """The form's config as it stands, with the library's message for each invalid field ({} if none)."""
    if FORM not in st.session_state:
        _load({"preset": "fast", **form_values(preset("fast"))})
    form = st.session_state[FORM]
    for field, value in form.items():
        st.session_state.setdefault(widget(field), value)
    values = {field: st.session_state[widget(field)] for field in form}
    return config_from_form({k: v for k, v in values.items() if k != "preset"})


def form_fields(config: TrainConfig, errors: dict[str, str]) -> None:
    """Every field of the form; its values are kept for the next visit."""
    st.selectbox("Start from a preset", [*PRESETS, CUSTOM], key=widget("preset"), on_change=_on_preset,
                 help="Presets rebuild the seed write-ups' setups (seed-*) and the shipped checkpoints (best-*).")
    chosen = st.session_state[widget("preset")]
    st.caption(PRESETS[chosen].description if chosen in PRESETS else "Your own settings.")
    st.selectbox("Architecture", list_models(), key=widget("model"), on_change=_on_model, help=FIELD_HELP["model"])
    with st.expander("Architecture options", expanded=False):
        _model_options(config, errors)
    field_error(errors, "model_options")  # the parameter cap: shown outside the collapsed options
    if size := model_size(config, errors):
        st.caption(size)

    sgd, adam, step = config.optimizer == "sgd", config.optimizer in ADAM_OPTIMIZERS, config.schedule == "step"
    cycles = config.schedule == "onecycle" and config.optimizer != "adadelta"

    def row(*fields):
        """Widgets side by side, each with its error message under it."""
        for column, (field, draw) in zip(st.columns(len(fields)), fields):
            with column:
                draw()
                field_error(errors, field)

    def number(label, field, step_by, disabled=False, fmt=None):
        return field, lambda: st.number_input(label, key=widget(field), step=step_by, format=fmt, disabled=disabled,
                                              on_change=_on_edit, help=FIELD_HELP[field])

    def checkbox(label, field, disabled=False):
        return field, lambda: st.checkbox(label, key=widget(field), on_change=_on_edit, disabled=disabled,
                                          help=FIELD_HELP[field])

    def choice(label, field, options):
        return field, lambda: st.selectbox(label, options, key=widget(field), on_change=_on_edit,
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
                                        on_change=_on_edit, help=FIELD_HELP["device"])),
        choice("Precision", "precision", PRECISIONS))
    st.text_input("Run name", key=widget("name"), on_change=_on_edit, placeholder="optional", help=FIELD_HELP["name"])
    field_error(errors, "name")
    st.session_state[FORM] = {field: st.session_state[widget(field)] for field in st.session_state[FORM]}


def _model_options(config: TrainConfig, errors: dict[str, str]) -> None:
    choices = option_choices(config.model)
    for option, default in default_options(config.model).items():
        key, label, help_text = widget(f"opt.{option}"), option.replace("_", " ").capitalize(), OPTION_HELP.get(option)
        if option in choices:
            st.selectbox(label, choices[option], key=key, on_change=_on_edit, help=help_text)
        elif isinstance(default, bool):
            st.checkbox(label, key=key, on_change=_on_edit, help=help_text)
        elif isinstance(default, list):
            st.text_input(label, key=key, on_change=_on_edit, help=help_text)
        elif isinstance(default, int):
            st.number_input(label, key=key, step=1, on_change=_on_edit, help=help_text)
        else:
            st.number_input(label, key=key, step=0.05, on_change=_on_edit, help=help_text)
        field_error(errors, f"model_options.{option}")
