import json

import numpy as np
import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.data import INPUT_SCALINGS, normalize, to_device, validation_indices
from digitlab.engine import EpochEnd, train
from digitlab.predict import run_predictions
from digitlab.preprocess import canvas_input, fit_digit, image_input, ink_image, preprocess_canvas
from digitlab.recorder import record_training
from digitlab.store import RunStore, load_run
from tests.fakedata import render_digit

TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, optimizer="adam", lr=0.01, batch_size=64, epochs=1)


def test_the_validation_images_are_the_same_for_every_seed_and_never_trained_on(tiny_data):
    kept, held_out = validation_indices(300, 50)
    assert len(held_out) == 50 and len(kept) == 250
    assert not set(kept.tolist()) & set(held_out.tolist())
    split = to_device(tiny_data, torch.device("cpu"), "mnist", 50)
    assert torch.equal(split.validation.images, normalize(tiny_data.train_images[held_out]))
    assert torch.equal(split.train.images, normalize(tiny_data.train_images[kept]))
    epochs = {}
    for seed in (1, 2):
        events = list(train(TINY.replace(seed=seed, validation_size=50), tiny_data))
        assert events[0].train_size == 250
        epochs[seed] = [e for e in events if isinstance(e, EpochEnd)][0]
        assert epochs[seed].samples_seen == 250 and 0 <= epochs[seed].val_acc <= 1 and epochs[seed].val_loss > 0
    assert epochs[1].val_loss != epochs[2].val_loss  # different models, same held-out images (checked above)


def test_without_a_split_there_are_no_validation_metrics(tiny_data, store_root):
    record = record_training(RunStore(store_root), TINY, train(TINY, tiny_data))
    assert record.epochs[0]["val_loss"] is None and record.epochs[0]["val_acc"] is None
    assert record.data["train_size"] == 300
    with_split = TINY.replace(validation_size=50)
    record = record_training(RunStore(store_root), with_split, train(with_split, tiny_data))
    assert isinstance(record.epochs[0]["val_acc"], float)
    json.dumps(record.epochs, allow_nan=False)  # plain numbers or null


def test_validation_size_is_bounded_with_a_field_message(tiny_data):
    assert TrainConfig(validation_size=30000).validate() == {}
    assert TrainConfig(validation_size=30001).validate()["validation_size"] == (
        "validation_size must be between 0 and 30000, got 30001")
    assert "validation_size" in TrainConfig(validation_size=-1).validate()
    assert "input_scaling" in TrainConfig(input_scaling="zscore").validate()
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        next(train(TINY.replace(validation_size=300), tiny_data))


def test_an_old_config_reads_with_mnist_scaling_and_no_split():
    old = TrainConfig().to_dict()
    del old["input_scaling"], old["validation_size"]
    config = TrainConfig.from_dict(old)
    assert config.input_scaling == "mnist" and config.validation_size == 0


@pytest.mark.parametrize("scaling", list(INPUT_SCALINGS))
def test_canvas_and_image_inputs_round_trip_for_each_scaling(scaling):
    mean, std = INPUT_SCALINGS[scaling]
    canvas = render_digit(3)
    image = fit_digit(ink_image(canvas))  # (28, 28) on 0..1
    out = canvas_input(canvas, scaling)
    assert out.shape == (1, 1, 28, 28)
    assert torch.allclose(out[0, 0] * std + mean, image, atol=1e-6)
    uint8 = (image * 255).round().to(torch.uint8)
    batch = image_input(uint8.numpy(), scaling)
    assert batch.shape == (1, 1, 28, 28)
    assert torch.allclose(batch[0, 0] * std + mean, uint8.float() / 255, atol=1e-6)
    assert image_input(torch.stack([uint8, uint8]), scaling).shape == (2, 1, 28, 28)


def test_preprocess_canvas_keeps_mnist_scaling():
    canvas = render_digit(7)
    assert torch.equal(preprocess_canvas(canvas), canvas_input(canvas, "mnist"))
    with pytest.raises(ValueError, match="expected uint8 images"):
        image_input(np.zeros((28, 28), np.float32))


def test_a_run_trained_on_unit_pixels_predicts_as_it_was_scored(tiny_data, store_root):
    config = TINY.replace(input_scaling="unit", epochs=2)
    record = record_training(RunStore(store_root), config, train(config, tiny_data))
    run = load_run(record.id, store_root)
    assert run.config.input_scaling == "unit"
    assert run_predictions(run, tiny_data).accuracy == pytest.approx(record.final["test_acc"])
    assert torch.equal(run.input_from_image(tiny_data.test_images[:3]), tiny_data.test_images[:3, None].float() / 255)
    canvas = render_digit(1)
    assert torch.allclose(run.input_from_canvas(canvas), fit_digit(ink_image(canvas))[None, None])
