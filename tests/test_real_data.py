"""Tests on the real MNIST: skipped only when its files are absent (CI points DIGITLAB_DATA at them)."""

import pytest
import torch

from digitlab import robustness
from digitlab.config import preset
from digitlab.engine import RunEnd, train
from digitlab.predict import run_predictions
from digitlab.store import RunStore, load_run
from tests.conftest import PREDICT_MODULE, SHIPPED

MINIMUM_ACCURACY = {"mlp": 0.985, "lenet": 0.992, "cnn": 0.994, "resnet": 0.996}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_preset_reaches_99_percent_in_its_epoch(real_data, seed):
    """`python -m digitlab bench` times seeds 0, 1 and 2 to 99.0%: each must get there."""
    end = [e for e in train(preset("fast").replace(seed=seed), real_data) if isinstance(e, RunEnd)][0]
    assert end.status == "completed"
    assert end.test_acc >= 0.99, end.test_acc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_002s_cnn_with_batchnorm_reads_95_percent_after_one_epoch(real_data, seed):
    """Seed 002 reports 96.83% after its CNN's first epoch with BatchNorm (2,159 parameters, SGD lr 0.1)."""
    end = [e for e in train(preset("seed-002-cnn-bn").replace(epochs=1, seed=seed), real_data, held_out_points=0)
           if isinstance(e, RunEnd)][0]
    assert end.test_acc >= 0.95, end.test_acc


@pytest.mark.parametrize("model", list(MINIMUM_ACCURACY))
def test_shipped_checkpoints_meet_their_minimum_accuracy(real_data, store_with_shipped, model):
    record = RunStore(store_with_shipped).read(f"shipped-{model}")
    preds = run_predictions(RunStore(store_with_shipped).load(record.id), real_data)
    assert preds.accuracy >= MINIMUM_ACCURACY[model]
    assert preds.accuracy == pytest.approx(record.final["test_acc"])


@pytest.mark.parametrize("model", list(MINIMUM_ACCURACY))
def test_each_checkpoint_ships_its_pages_results_for_the_real_mnist(real_data, model, monkeypatch):
    """A fresh clone opens Compare, Errors and Inside on the shipped checkpoints without computing (2.2 s on Compare's
    first visit before): the caches committed beside each are keyed by its weights, this MNIST and today's code,
    and its predictions are what predict() gives for its weights."""
    run = load_run(SHIPPED / f"shipped-{model}")
    fix = (f"compute them with digitlab.shipping.cache_results(RunStore().load('shipped-{model}'), load_mnist()) "
           "and commit them")
    assert robustness.benchmark_cached(run, real_data) is not None, fix
    assert robustness.adversarial_curve_cached(run, real_data) is not None, fix
    computed = PREDICT_MODULE.predict(run.model, run.input_from_image(real_data.test_images))

    def must_not_compute(*_):
        raise AssertionError(f"shipped-{model}'s committed predictions are stale or missing: {fix}")

    monkeypatch.setattr(PREDICT_MODULE, "predict", must_not_compute)
    committed = run_predictions(run, real_data)
    assert torch.equal(committed.predicted, computed.argmax(1))
    assert torch.allclose(committed.probs, computed, atol=1e-5)
