"""The Train form's logic, kept out of the page: field help, text <-> value conversion, and form -> TrainConfig
with a message per bad field."""

from __future__ import annotations

from typing import Any

from digitlab.config import TrainConfig
from digitlab.models import default_options, parameter_count

CUSTOM = "custom"

FIELD_HELP = {
    "model": "The architecture: mlp (dense layers only), cnn, lenet (LeNet-5) or resnet (a small residual net).",
    "optimizer": "sgd (with momentum), adam, adamw (Adam with decoupled weight decay) or adadelta (seed 000).",
    "lr": "Learning rate: the step size. Too high and the loss explodes; too low and nothing moves.",
    "momentum": "SGD only: how much of the previous step is kept (0.9 is usual; seed 004 used 0.5).",
    "nesterov": "SGD only: look-ahead momentum; needs momentum above 0.",
    "beta1": "Adam and AdamW: how much of the previous gradient direction each step keeps (their momentum; 0.9 is "
             "usual, the fast preset's 0.7 follows the rate more closely).",
    "beta2": "Adam and AdamW: how long the running average of squared gradients remembers (0.999 is usual; the fast "
             "preset's 0.9 forgets within about ten steps).",
    "weight_decay": "L2 penalty on the weights (with adamw: decoupled decay). 0 turns it off.",
    "batch_size": "Images per step. Larger is faster per image on a GPU; smaller often generalises better.",
    "epochs": "Passes over the 60,000 training images.",
    "schedule": "How the learning rate changes: none, step (x gamma every few epochs), onecycle (warm up then "
                "anneal) or cosine.",
    "step_gamma": "step schedule: multiply the rate by this every step_size epochs (seed 000: 0.7 every epoch).",
    "step_size": "step schedule: epochs between two multiplications.",
    "cycle_momentum": "onecycle schedule: also cycle SGD's momentum or Adam's β1 from 0.95 to 0.85 and back, against "
                      "the rate (PyTorch's default). Off keeps the momentum or β1 set above.",
    "label_smoothing": "Train towards 90% instead of 100% confidence when 0.1: less over-confident models.",
    "augment": "Random shifts of up to 2 px (shift), plus rotations of up to 10 degrees (shift_rotate); distort: "
               "shifts, rotations up to 12 degrees, zoom, shear, thicker or thinner strokes and Gaussian noise; "
               "elastic: distort, then the strokes bent by a smooth random field.",
    "seed": "The same seed and config give the same run on the CPU.",
    "input_scaling": "How pixels become model input: mnist (MNIST's mean and std, most seeds), unit (0 to 1, seed "
                     "001's ToTensor alone) or half (mean 0.5, std 0.5, seed 003). The run keeps it, and every image "
                     "it sees later (Errors, Draw) is scaled the same way.",
    "validation_size": "Training images held out (the same ones for every run, whatever its seed) and scored every "
                       "epoch as validation loss and accuracy. 0 keeps all 60,000 for training.",
    "device": "auto picks CUDA, then Apple MPS, then the CPU.",
    "precision": "auto trains in bf16 on CUDA cards and CPUs with native bf16, fp16 on MPS, else fp32; the run "
                 "records what it used. fp16 needs CUDA or MPS.",
    "name": "Optional: how the run is shown in Compare, Errors and Draw.",
}


def to_text(value: Any) -> Any:
    """A config value as its form widget shows it: lists as '512, 512'."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value


def parse_int_list(option: str, text: str) -> tuple[list[int] | None, str | None]:
    parts = [part.strip() for part in str(text).replace(";", ",").split(",") if part.strip()]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        return None, f"{option} must be whole numbers separated by commas, e.g. 512, 256; got {text!r}"
    if not values:
        return None, f"{option} needs at least one number, e.g. 64"
    return values, None


def form_values(config: TrainConfig) -> dict[str, Any]:
    """Widget values (by field name; model options as ``opt.<name>``) that show ``config``, every option of its
    model included so the form is complete."""
    values = {key: value for key, value in config.to_dict().items() if key != "model_options"}
    options = {**default_options(config.model), **config.model_options}
    values.update({f"opt.{key}": to_text(value) for key, value in options.items()})
    return values


def config_from_form(values: dict[str, Any]) -> tuple[TrainConfig, dict[str, str]]:
    """The config the form describes and a message per bad field (keys as in TrainConfig.validate)."""
    fields = {key: value for key, value in values.items() if not key.startswith("opt.")}
    errors: dict[str, str] = {}
    model = fields.get("model", "cnn")
    try:
        defaults = default_options(model)
    except ValueError:
        defaults = {}
    options: dict[str, Any] = {}
    for key, value in values.items():
        if not key.startswith("opt."):
            continue
        option = key[4:]
        if option not in defaults:
            continue  # a leftover widget of another architecture
        if isinstance(defaults[option], list):
            parsed, error = parse_int_list(option, value)
            if error:
                errors[f"model_options.{option}"] = error
                continue
            value = parsed
        options[option] = value
    config = TrainConfig.from_dict({**fields, "model_options": options})
    for key, message in config.validate().items():
        errors.setdefault(key, message)
    return config, errors


def model_size(config: TrainConfig, errors: dict[str, str]) -> str | None:
    """ "173,946 parameters, 0.7 MB of weights" for a valid architecture (worked out on the meta device, nothing
    allocated), or None while the architecture has errors."""
    if any(field == "model" or field.startswith("model_options") for field in errors):
        return None
    count = parameter_count(config.model, config.model_options)
    return f"{count:,} parameters, {count * 4 / 1e6:,.1f} MB of weights"
