"""A run's curves from its record: each metric against the epoch (a continuous axis for what is measured inside
one), the images seen or the wall time."""

from __future__ import annotations

from typing import Any

from digitlab.dashboard.charts import ema

X_AXES = {"epoch": "Epoch", "samples": "Images seen", "time": "Wall time (s)"}
METRICS = {
    "test_acc": "Test accuracy",
    "test_loss": "Test loss",
    "train_loss": "Train loss",
    "train_acc": "Train accuracy",
    "val_acc": "Validation accuracy",
    "val_loss": "Validation loss",
    "held_out_acc": "Held-out accuracy, inside each epoch",
    "held_out_loss": "Held-out loss, inside each epoch",
}
HELD_OUT_METRICS = {"held_out_acc": "accuracy", "held_out_loss": "loss"}  # -> the list in run.json's held_out
_EPOCH_X = {"epoch": "epoch", "samples": "samples_seen", "time": "elapsed_s"}


def per_epoch(metric: str) -> bool:
    """Whether ``metric`` has one point per epoch (drawn with markers), not many (batches, held-out checks)."""
    return metric != "train_loss" and metric not in HELD_OUT_METRICS


def train_size(record_data: dict[str, Any]) -> int:
    """Training images per epoch: recorded since RunStart kept it; else the first epoch's count, else MNIST's."""
    if record_data.get("train_size"):
        return record_data["train_size"]
    epochs = record_data.get("epochs") or []
    return int(epochs[0]["samples_seen"]) if epochs else 60000


def trace_x(record_data: dict[str, Any], trace: dict[str, list[float]], x_axis: str) -> list[float]:
    """Where the points of a trace (batches, or held-out checks) lie on ``x_axis``: in epochs, images or seconds."""
    samples = trace.get("samples_seen", [])
    if x_axis == "epoch":
        size = train_size(record_data)
        return [s / size for s in samples]
    return list(samples if x_axis == "samples" else trace.get("elapsed_s", []))


def metric_curve(record_data: dict[str, Any], metric: str, x_axis: str, smoothing: float = 0.0
                 ) -> tuple[list[float], list[float]]:
    """(x, y) of one run's ``metric`` against ``x_axis`` (epoch, samples or time).

    train_loss comes from the per-batch trace (smoothed) and the held-out metrics from the checks inside each epoch,
    both on a fractional epoch axis; the others are per epoch.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if x_axis not in X_AXES:
        raise ValueError(f"unknown x axis {x_axis!r}; choose one of {', '.join(X_AXES)}")
    if metric == "train_loss":
        batches = record_data.get("batches") or {}
        return trace_x(record_data, batches, x_axis), ema(batches.get("loss", []), smoothing)
    if metric in HELD_OUT_METRICS:  # absent in runs recorded before the checks existed
        checks = record_data.get("held_out") or {}
        return trace_x(record_data, checks, x_axis), list(checks.get(HELD_OUT_METRICS[metric], []))
    # Validation metrics are None in runs without a split, and absent in runs recorded before splits existed.
    epochs = [e for e in record_data.get("epochs") or [] if e.get(metric) is not None]
    return [e[_EPOCH_X[x_axis]] for e in epochs], [e[metric] for e in epochs]
