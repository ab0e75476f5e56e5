import json
from dataclasses import replace
from pathlib import Path

import pytest

from digitlab.config import (DISTORT, ELASTIC, PRESETS, ConfigError, TrainConfig, UnknownPresetError, list_presets,
                             preset)
from digitlab.store import RunStore


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(model="resnet", model_options={"widths": [16, 32]}, optimizer="sgd", lr=0.05,
                         nesterov=True, beta1=0.7, beta2=0.9, batch_size=64, epochs=3, schedule="step", step_gamma=0.5,
                         step_size=2, cycle_momentum=False, label_smoothing=0.1, augment="shift_rotate", seed=7,
                         device="cpu", name="mine")
    again = TrainConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["model_options"] == {"widths": [16, 32]}


def test_defaults_and_presets_are_valid():
    assert TrainConfig().validate() == {}
    for name in list_presets():
        assert preset(name).validate() == {}, name


def test_validate_gives_one_message_per_bad_field():
    config = TrainConfig(batch_size=0, lr=0.0, epochs=10**6, optimizer="rmsprop", schedule="warp",
                         label_smoothing=1.0, augment="flip", seed=-1, device="tpu", weight_decay=-0.1,
                         momentum=1.0, step_gamma=0.0, beta1=1.0, beta2=-0.1, name="x" * 81)
    errors = config.validate()
    assert errors["batch_size"] == "batch_size must be between 1 and 60000, got 0"
    assert errors["lr"] == "lr must be above 0 and at most 10, got 0.0"
    assert "epochs must be between 1 and 1000" in errors["epochs"]
    assert "sgd, adam, adamw, adadelta" in errors["optimizer"]
    assert "none, step, onecycle, cosine" in errors["schedule"]
    assert "label_smoothing must be at least 0 and below 1" in errors["label_smoothing"]
    assert "none, shift, shift_rotate" in errors["augment"]
    assert "seed" in errors and "device" in errors and "weight_decay" in errors
    assert "momentum" in errors and "step_gamma" in errors
    assert errors["beta1"] == "beta1 must be at least 0 and below 1, got 1.0"
    assert errors["beta2"] == "beta2 must be at least 0 and below 1, got -0.1"
    assert "at most 80 characters" in errors["name"]
    assert "model" not in errors


def test_validate_rejects_wrong_types_and_nan():
    errors = TrainConfig(batch_size="64", lr=float("nan"), epochs=2.5, nesterov="yes", cycle_momentum="no").validate()
    assert errors["batch_size"] == "batch_size must be an integer, got '64'"
    assert "lr must be" in errors["lr"]
    assert errors["epochs"] == "epochs must be an integer, got 2.5"
    assert "true or false" in errors["nesterov"]
    assert errors["cycle_momentum"] == "cycle_momentum must be true or false, got 'no'"


def test_validate_checks_model_and_its_options():
    assert "mlp, cnn, lenet, resnet" in TrainConfig(model="vit").validate()["model"]
    errors = TrainConfig(model="cnn", model_options={"hidden": 0, "colour": 1}).validate()
    assert "model_options.colour" in errors
    errors = TrainConfig(model="cnn", model_options={"hidden": 0}).validate()
    assert errors == {"model_options.hidden": "hidden must be an integer between 1 and 8192, got 0"}


def test_nesterov_needs_sgd_with_momentum():
    assert "nesterov" in TrainConfig(optimizer="adam", nesterov=True).validate()
    assert "nesterov" in TrainConfig(optimizer="sgd", momentum=0.0, nesterov=True).validate()
    assert TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True).validate() == {}


def test_unknown_preset_lists_known_names():
    with pytest.raises(UnknownPresetError) as err:
        preset("nope")
    for name in PRESETS:
        assert name in str(err.value)


def test_preset_returns_an_independent_copy():
    first = preset("seed-cnn")
    first.model_options["hidden"] = 1
    assert preset("seed-cnn").model_options["hidden"] == 64


def test_seed_presets_rebuild_the_write_ups():
    cnn = preset("seed-cnn")
    assert (cnn.optimizer, cnn.lr, cnn.schedule, cnn.step_gamma, cnn.batch_size) == ("adadelta", 1.0, "step", 0.7, 512)
    assert cnn.model_options == {"channels": [8, 16], "hidden": 64}
    lenet = preset("seed-lenet")
    assert (lenet.model, lenet.optimizer, lenet.lr, lenet.batch_size, lenet.momentum) == ("lenet", "sgd", 0.01, 32, 0)
    assert preset("seed-lenet-bn").model_options["batch_norm"] is True
    mlp = preset("seed-mlp")
    assert (mlp.model, mlp.optimizer, mlp.lr, mlp.batch_size) == ("mlp", "adam", 0.003, 1000)
    lenet3 = preset("seed-lenet3")
    assert (lenet3.model_options["variant"], lenet3.momentum, lenet3.batch_size) == ("three_conv", 0.5, 64)
    resnet = preset("seed-resnet")
    assert resnet.model_options["widths"] == [16, 32, 64, 128] and resnet.model_options["blocks_per_stage"] == 2


def test_from_dict_rejects_unknown_fields_and_bad_json():
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"model": "cnn", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{model: cnn")
    with pytest.raises(ConfigError, match="JSON object"):
        TrainConfig.from_json("[1, 2]")


def test_describe_shows_adams_betas_only_where_they_apply_and_differ():
    assert "betas" not in TrainConfig(optimizer="adam").describe()
    assert "betas=0.7/0.9" in TrainConfig(optimizer="adamw", beta1=0.7, beta2=0.9).describe()
    assert "betas" not in TrainConfig(optimizer="sgd", beta1=0.7, beta2=0.9).describe()


def test_every_robust_recipe_lists_what_it_trains_on():
    """A robustness figure means something only beside the augmentations the model saw: each preset that distorts
    its images says how, in full."""
    distorting = {name: p for name, p in PRESETS.items() if p.config.augment in ("distort", "elastic")}
    assert {"best-cnn", "best-lenet", "best-mlp", "best-resnet", "robust-mlp"} <= set(distorting)
    for name, found in distorting.items():
        assert DISTORT in found.description, name
        assert (ELASTIC in found.description) == (found.config.augment == "elastic"), name


@pytest.mark.parametrize("model", ["mlp", "lenet", "cnn", "resnet"])
def test_each_shipped_checkpoint_was_trained_by_its_best_preset(model):
    """`python -m digitlab train --preset best-<model>` rebuilds the shipped checkpoint: the same settings, the seed
    included; only the run's name may differ."""
    shipped = RunStore(Path(__file__).resolve().parents[1] / "checkpoints").read(f"shipped-{model}").config
    assert replace(shipped, name="") == PRESETS[f"best-{model}"].config
