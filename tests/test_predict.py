import importlib

import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.data import normalize, to_device
from digitlab.engine import evaluate, train
from digitlab.models import create_model
from digitlab.predict import PREDICTIONS_FILE, RunPredictions, predict, run_predictions
from digitlab.recorder import record_training
from digitlab.store import RunStore, load_model, save_weights
from tests.conftest import refuse_writes_under

CONFIG = TrainConfig(model="cnn", model_options={"channels": [8], "hidden": 16, "pooling": "each"}, lr=0.01,
                     batch_size=32, epochs=2)


@pytest.fixture
def run(tiny_data, store_root):
    store = RunStore(store_root)
    return record_training(store, CONFIG, train(CONFIG, tiny_data))


def load(run):
    return RunStore(run.path.parent).load(run.id)


def test_predict_gives_probabilities(run, tiny_data):
    probs = predict(load_model(run), normalize(tiny_data.test_images[:7]))
    assert probs.shape == (7, 10)
    assert torch.allclose(probs.sum(1), torch.ones(7), atol=1e-5) and (probs >= 0).all()


def test_test_predictions_agree_with_evaluation(run, tiny_data):
    loaded = load(run)
    model = loaded.model
    preds = run_predictions(loaded, tiny_data)
    n = len(tiny_data.test_labels)
    assert preds.probs.shape == (n, 10)
    assert preds.confusion.sum().item() == n
    assert preds.confusion.diag().sum().item() == n - len(preds.misclassified)
    assert preds.accuracy == pytest.approx(evaluate(model, to_device(tiny_data, torch.device("cpu")).test)[1])
    assert preds.accuracy == pytest.approx(run.final["test_acc"])
    wrong = preds.misclassified
    assert (preds.predicted[wrong] != preds.labels[wrong]).all()
    assert torch.equal(preds.confidence, preds.probs.max(1).values)
    for digit in range(10):
        row = preds.confusion[digit]
        assert preds.per_class_accuracy[digit].item() == pytest.approx(row[digit].item() / max(row.sum().item(), 1))


def test_confusion_layout_is_true_by_predicted():
    probs = torch.zeros(3, 10)
    probs[0, 1] = probs[1, 1] = probs[2, 2] = 1.0
    preds = RunPredictions(probs, torch.tensor([1, 7, 2]))
    assert preds.confusion[7, 1] == 1 and preds.confusion[1, 1] == 1 and preds.confusion[2, 2] == 1
    assert preds.misclassified.tolist() == [1]
    assert preds.accuracy == pytest.approx(2 / 3)


def test_predictions_are_cached_beside_the_run(run, tiny_data, monkeypatch):
    loaded = load(run)
    first = run_predictions(loaded, tiny_data)
    assert (run.path / PREDICTIONS_FILE).is_file()

    def no_model_calls(*args, **kwargs):
        raise AssertionError("the cached predictions should have been used")

    # importlib: the attribute digitlab.predict is the public predict() function, which shadows the module.
    monkeypatch.setattr(importlib.import_module("digitlab.predict"), "predict", no_model_calls)
    again = run_predictions(loaded, tiny_data)
    assert torch.equal(first.probs, again.probs)


def test_changed_weights_invalidate_the_cache(run, tiny_data):
    loaded = load(run)
    before = run_predictions(loaded, tiny_data)
    model = loaded.model
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1)
    save_weights(model, run.weights_path)
    after = run_predictions(load(run), tiny_data)
    assert not torch.equal(before.probs, after.probs)


def test_a_damaged_cache_is_recomputed(run, tiny_data):
    loaded = load(run)
    first = run_predictions(loaded, tiny_data)
    (run.path / PREDICTIONS_FILE).write_bytes(b"garbage")
    assert torch.equal(run_predictions(loaded, tiny_data).probs, first.probs)


def test_predictions_are_cached_under_the_weights_they_were_computed_with(run, tiny_data):
    """A run in training rewrites its weights at every epoch end. Predictions computed with the weights loaded
    before such a write must not be cached under the hash of the weights written after it."""
    loaded = load(run)  # the page loads the model...
    newer = create_model(CONFIG.model, **CONFIG.model_options)  # ...and then the trainer writes the next epoch
    save_weights(newer, run.weights_path)
    run_predictions(loaded, tiny_data)
    current = load(run)
    assert current.weights_sha256 != loaded.weights_sha256
    served = run_predictions(current, tiny_data)
    assert torch.equal(served.probs, predict(current.model, normalize(tiny_data.test_images)))


def test_a_read_only_run_folder_keeps_its_predictions_in_the_cache_folder(run, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    refuse_writes_under(monkeypatch, run.path)
    loaded = load(run)
    first = run_predictions(loaded, tiny_data)
    assert not (run.path / PREDICTIONS_FILE).exists()
    assert (tmp_path / "cache" / loaded.weights_sha256 / PREDICTIONS_FILE).is_file()
    monkeypatch.setattr(importlib.import_module("digitlab.predict"), "predict", lambda *a: pytest.fail("computed again"))
    assert torch.equal(run_predictions(loaded, tiny_data).probs, first.probs)
