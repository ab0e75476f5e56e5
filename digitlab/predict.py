"""Predictions: class probabilities for any batch, and a run's cached predictions over the 10k test images."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from digitlab.cache import cached, run_entry
from digitlab.data import MNIST, TestSplit, split_fingerprint
from digitlab.device import configure_cpu
from digitlab.store import LoadedRun

PREDICTIONS = "predictions"  # the cache's name: beside a run, predictions.safetensors
PREDICTIONS_FILE = f"{PREDICTIONS}.safetensors"
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


def run_predictions(run: LoadedRun, data: MNIST | TestSplit) -> RunPredictions:
    """The run's predictions over the test set, its images scaled the way the run was trained: read from the cache
    (beside the run, or in the cache folder where its folder cannot be written) when the weights, scaling and test
    set are the ones they were computed from, else computed (on the CPU) and cached."""
    fingerprint = split_fingerprint(data, "test")
    key = {"weights_sha256": run.weights_sha256, "test_sha256": fingerprint,
           "input_scaling": run.config.input_scaling}

    def compute() -> dict[str, torch.Tensor]:
        configure_cpu()
        model = run.model.to(memory_format=torch.channels_last)
        return {"probs": predict(model, run.input_from_image(data.test_images))}

    probs = cached(run_entry(run, PREDICTIONS, key, {"probs": (len(data.test_labels), 10)}), compute)["probs"]
    return RunPredictions(probs, data.test_labels, fingerprint)
