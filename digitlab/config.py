"""TrainConfig: everything that defines a training run, round-tripping through JSON, with per-field validation."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from digitlab.data import AUGMENTATIONS
from digitlab.device import DEVICE_CHOICES, PRECISIONS, available_devices, pick_device, supported_precisions
from digitlab.models import list_models, option_errors

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("none", "step", "onecycle", "cosine")
MAX_BATCH_SIZE = 60000  # the training set's size: a larger batch is the same as the whole set
MAX_EPOCHS = 1000
MAX_NAME_LENGTH = 80


class ConfigError(ValueError):
    """A config that cannot be read at all (not JSON, unknown fields); bad values go through validate()."""


@dataclass
class TrainConfig:
    model: str = "cnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 2
    schedule: str = "none"
    step_gamma: float = 0.7  # step: lr *= gamma every step_size epochs
    step_size: int = 1
    label_smoothing: float = 0.0
    augment: str = "none"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto, fp32, bf16, fp16 (CUDA, MPS); the run records what auto resolved to
    name: str = ""  # optional run name shown in the dashboard

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(dataclasses.asdict(self), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"the config is not valid JSON: {err}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> dict[str, str]:
        """A message per bad field ({} when the config is valid), in words a form can show beside the field."""
        errors: dict[str, str] = {}

        def check_number(name: str, low: float, high: float, *, integer: bool = False, low_open: bool = False,
                         high_open: bool = False) -> None:
            value = getattr(self, name)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds):
                errors[name] = f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}"
                return
            too_low = value <= low if low_open else value < low
            too_high = value >= high if high_open else value > high
            if value != value or too_low or too_high:  # value != value catches NaN
                if low_open or high_open:
                    lower = f"above {low:g}" if low_open else f"at least {low:g}"
                    upper = f"below {high:g}" if high_open else f"at most {high:g}"
                    bounds = f"{lower} and {upper}"
                else:
                    bounds = f"between {low:g} and {high:g}"
                errors[name] = f"{name} must be {bounds}, got {value!r}"

        def check_choice(name: str, choices: tuple[str, ...] | list[str]) -> None:
            value = getattr(self, name)
            if value not in choices:
                errors[name] = f"{name} must be one of {', '.join(choices)}, got {value!r}"

        check_choice("model", list_models())
        if "model" not in errors:
            if not isinstance(self.model_options, dict):
                errors["model_options"] = f"model_options must be an object of option: value, got {self.model_options!r}"
            else:
                for option, message in option_errors(self.model, self.model_options).items():
                    errors[option if option == "model_options" else f"model_options.{option}"] = message
        check_choice("optimizer", OPTIMIZERS)
        check_number("lr", 0.0, 10.0, low_open=True)
        check_number("momentum", 0.0, 1.0, high_open=True)
        if not isinstance(self.nesterov, bool):
            errors["nesterov"] = f"nesterov must be true or false, got {self.nesterov!r}"
        elif self.nesterov and (self.optimizer != "sgd" or "momentum" in errors or self.momentum == 0):
            errors["nesterov"] = "nesterov needs the sgd optimizer with momentum above 0"
        check_number("weight_decay", 0.0, 1.0)
        check_number("batch_size", 1, MAX_BATCH_SIZE, integer=True)
        check_number("epochs", 1, MAX_EPOCHS, integer=True)
        check_choice("schedule", SCHEDULES)
        check_number("step_gamma", 0.0, 1.0, low_open=True)
        check_number("step_size", 1, MAX_EPOCHS, integer=True)
        check_number("label_smoothing", 0.0, 1.0, high_open=True)
        check_choice("augment", AUGMENTATIONS)
        check_number("seed", 0, 2**31 - 1, integer=True)
        check_choice("device", DEVICE_CHOICES)
        if "device" not in errors and self.device != "auto" and self.device not in available_devices():
            errors["device"] = (
                f"device {self.device!r} is not available on this machine; available: {', '.join(available_devices())}"
            )
        check_choice("precision", PRECISIONS)
        if "device" not in errors and "precision" not in errors and self.precision != "auto":
            device = pick_device(self.device)
            if self.precision not in supported_precisions(device):
                errors["precision"] = (f"precision {self.precision} is not available on {device.type}; choose auto or "
                                       f"one of {', '.join(supported_precisions(device))}")
        if not isinstance(self.name, str):
            errors["name"] = f"name must be text, got {self.name!r}"
        elif len(self.name) > MAX_NAME_LENGTH:
            errors["name"] = f"name must be at most {MAX_NAME_LENGTH} characters, got {len(self.name)}"
        return errors

    def describe(self) -> str:
        """One line of the hyperparameters that matter, for tables."""
        parts = [f"{self.optimizer} lr={self.lr:g}", f"batch={self.batch_size}", f"epochs={self.epochs}"]
        if self.schedule != "none":
            parts.append(self.schedule)
        if self.weight_decay:
            parts.append(f"wd={self.weight_decay:g}")
        if self.label_smoothing:
            parts.append(f"ls={self.label_smoothing:g}")
        if self.augment != "none":
            parts.append(f"aug={self.augment}")
        return ", ".join(parts)


class UnknownPresetError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Preset:
    description: str
    config: TrainConfig


SEED_CNN = {"channels": [8, 16], "hidden": 64}
SEED_RESNET = {"stem": 8, "widths": [16, 32, 64, 128], "blocks_per_stage": 2, "downsample": False,
               "stem_padding": 0, "head": "flatten"}

PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "A small CNN with BatchNorm (conv 16-32-64, a pool after each): over 99% test accuracy in one epoch, "
        "under 10 s on a 2-core CPU.",
        TrainConfig(model="cnn", model_options={"channels": [16, 32, 64], "hidden": 256, "batch_norm": True,
                                                "pooling": "each", "dropout": 0.0, "conv_dropout": 0.0},
                    optimizer="adam", lr=0.004, batch_size=128, epochs=1, schedule="onecycle", label_smoothing=0.1),
    ),
    "seed-cnn": Preset(
        "Seed 000's CNN (conv 8, 16; fc 2304-64-10), Adadelta lr 1.0, StepLR gamma 0.7, batch 512, 15 epochs.",
        TrainConfig(model="cnn", model_options=SEED_CNN, optimizer="adadelta", lr=1.0, batch_size=512, epochs=15,
                    schedule="step", step_gamma=0.7, seed=1),
    ),
    "seed-lenet": Preset(
        "Seed 001's LeNet-5 without BatchNorm, SGD lr 0.01, batch 32, 8 epochs.",
        TrainConfig(model="lenet", optimizer="sgd", lr=0.01, momentum=0.0, batch_size=32, epochs=8),
    ),
    "seed-lenet-bn": Preset(
        "Seed 001's LeNet-5 with BatchNorm and dropout, SGD lr 0.01, batch 32, 8 epochs.",
        TrainConfig(model="lenet", model_options={"batch_norm": True, "dropout": 0.5}, optimizer="sgd", lr=0.01,
                    momentum=0.0, batch_size=32, epochs=8),
    ),
    "seed-mlp": Preset(
        "Seed 003's MLP 784-512-512-512-10, Adam lr 0.003, batch 1000, 20 epochs.",
        TrainConfig(model="mlp", optimizer="adam", lr=0.003, batch_size=1000, epochs=20),
    ),
    "seed-resnet": Preset(
        "Seed 000's modified ResNet18 (Table I, Appendix C), trained like its CNN: Adadelta lr 1.0, StepLR 0.7, "
        "batch 512, 15 epochs. Slow on a CPU.",
        TrainConfig(model="resnet", model_options=SEED_RESNET, optimizer="adadelta", lr=1.0, batch_size=512,
                    epochs=15, schedule="step", step_gamma=0.7, seed=1),
    ),
    "seed-lenet3": Preset(
        "Seed 004's LeNet-like 3-conv net, SGD lr 0.01 momentum 0.5, batch 64, 10 epochs.",
        TrainConfig(model="lenet", model_options={"variant": "three_conv"}, optimizer="sgd", lr=0.01, momentum=0.5,
                    batch_size=64, epochs=10),
    ),
    # The recipes of the shipped checkpoints, so anyone can retrain them.
    "best-mlp": Preset(
        "The shipped MLP: 784-1024-1024-10 with BatchNorm and dropout, shifted images, AdamW one-cycle.",
        TrainConfig(model="mlp", model_options={"hidden": [1024, 1024], "batch_norm": True, "dropout": 0.3},
                    optimizer="adamw", lr=0.003, weight_decay=0.05, batch_size=256, epochs=20, schedule="onecycle",
                    augment="shift", label_smoothing=0.05),
    ),
    "best-lenet": Preset(
        "The shipped LeNet-5: BatchNorm, shifted and rotated images, AdamW one-cycle.",
        TrainConfig(model="lenet", model_options={"batch_norm": True, "dropout": 0.1}, optimizer="adamw", lr=0.004,
                    weight_decay=0.05, batch_size=128, epochs=15, schedule="onecycle", augment="shift_rotate",
                    label_smoothing=0.05),
    ),
    "best-cnn": Preset(
        "The shipped CNN: conv 32, 64 with a pool after each, BatchNorm, shifted and rotated images, one-cycle.",
        TrainConfig(model="cnn", model_options={"channels": [32, 64], "hidden": 256, "batch_norm": True,
                                                "pooling": "each", "dropout": 0.3, "conv_dropout": 0.0},
                    optimizer="adamw", lr=0.004, weight_decay=0.05, batch_size=128, epochs=12, schedule="onecycle",
                    augment="shift_rotate", label_smoothing=0.05),
    ),
    "best-resnet": Preset(
        "The shipped ResNet: stem 32, stages 32-64-128 (14 -> 7 -> 4 px), shifted and rotated images, one-cycle.",
        TrainConfig(model="resnet", optimizer="adamw", lr=0.004, weight_decay=0.05, batch_size=128, epochs=12,
                    schedule="onecycle", augment="shift_rotate", label_smoothing=0.05),
    ),
}


def list_presets() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> TrainConfig:
    """A fresh copy of a preset's config; unknown names fail with the known ones listed."""
    try:
        found = PRESETS[name]
    except KeyError:
        raise UnknownPresetError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return TrainConfig.from_dict(found.config.to_dict())
