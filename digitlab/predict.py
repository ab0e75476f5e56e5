"""Predictions: class probabilities for any batch, and a run's cached predictions over the 10k test images."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from digitlab.data import MNIST, split_fingerprint
from digitlab.device import configure_cpu
from digitlab.store import LoadedRun, atomic_write

PREDICTIONS_FILE = "predictions.safetensors"
_BATCH = 1000


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, 10) for scaled images (B, 1, 28, 28) (see LoadedRun.input_from_image), on the
    model's device."""
    device = next(model.parameters()).device
    model.eval()
    probs = [torch.softmax(model(chunk.to(device)).float(), dim=1) for chunk in images.split(_BATCH)]
    return torch.cat(probs).cpu()


@dataclass(frozen=True)
class RunPredictions:
    """One run's view of the test set: probabilities (N, 10) and the true labels (N,).

    test_sha256 identifies the test set (images and labels) they were computed on, so that two runs' predictions
    are only compared over the same images; None when unknown (built by hand)."""

    probs: torch.Tensor
    labels: torch.Tensor
    test_sha256: str | None = None

    @functools.cached_property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(1)

    @functools.cached_property
    def confidence(self) -> torch.Tensor:
        """The probability of the predicted class."""
        return self.probs.max(1).values

    @functools.cached_property
    def confusion(self) -> torch.Tensor:
        """(10, 10) counts; row = true class, column = predicted class."""
        return torch.bincount(self.labels * 10 + self.predicted, minlength=100).reshape(10, 10)

    @functools.cached_property
    def per_class_accuracy(self) -> torch.Tensor:
        counts = self.confusion.sum(1).clamp(min=1)
        return self.confusion.diag().float() / counts

    @functools.cached_property
    def misclassified(self) -> torch.Tensor:
        """Indices into the test set where the prediction is wrong, in test-set order."""
        return (self.predicted != self.labels).nonzero().flatten()

    @property
    def accuracy(self) -> float:
        return 1.0 - len(self.misclassified) / len(self.labels)


def run_predictions(run: LoadedRun, data: MNIST) -> RunPredictions:
    """The run's predictions over the test set, its images scaled the way the run was trained: read from beside the
    run when the weights, scaling and test set are the ones they were computed from, else computed (on the CPU)
    and written there."""
    cache = run.record.path / PREDICTIONS_FILE
    fingerprint = split_fingerprint(data, "test")
    key = {"weights_sha256": run.weights_sha256, "test_sha256": fingerprint,
           "input_scaling": run.config.input_scaling}
    if cache.is_file():
        try:
            with safe_open(str(cache), framework="pt") as f:
                if f.metadata() == key:
                    probs = f.get_tensor("probs")
                    if probs.shape == (len(data.test_labels), 10):
                        return RunPredictions(probs, data.test_labels, fingerprint)
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # a damaged cache is recomputed below
    configure_cpu()
    model = run.model.to(memory_format=torch.channels_last)
    probs = predict(model, run.input_from_image(data.test_images))
    try:
        atomic_write(cache, lambda tmp: save_file({"probs": probs.contiguous()}, str(tmp), metadata=key))
    except OSError:
        pass  # a read-only checkpoint folder only costs recomputing next time
    return RunPredictions(probs, data.test_labels, fingerprint)

