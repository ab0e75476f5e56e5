"""The recorder: feeds engine events into one run's folder of the run store.

A run is created at RunStart, written at every epoch end (weights, then run.json) and at RunEnd. The per-batch
loss is kept downsampled, so run.json stays small however long the run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from digitlab import __version__
from digitlab.config import TrainConfig
from digitlab.engine import BatchEnd, EpochEnd, Event, HeldOutScore, RunEnd, RunStart
from digitlab.pause import pause_point
from digitlab.store import (
    FORMAT,
    LOCK_FILE,
    RUN_FILE,
    WEIGHTS_FILE,
    RunRecord,
    RunStore,
    _now,
    fcntl,
    save_weights,
    write_json,
)

MAX_BATCH_POINTS = 2000


def downsample(values: list[float], max_points: int = MAX_BATCH_POINTS) -> list[float]:
    """Average consecutive values into at most ``max_points`` buckets of equal size (the last may be smaller)."""
    if len(values) <= max_points:
        return list(values)
    size = -(-len(values) // max_points)  # ceiling division
    return [sum(chunk) / len(chunk) for chunk in (values[i : i + size] for i in range(0, len(values), size))]


@dataclass
class BatchTrace:
    """Per-batch training loss and accuracy (of the logits each step computed anyway), with where they happened:
    samples seen and seconds since the start."""

    samples_seen: list[int] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)

    def add(self, event: BatchEnd | HeldOutScore) -> None:
        for name in self.names():
            getattr(self, name).append(getattr(event, name))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self, max_points: int = MAX_BATCH_POINTS) -> dict[str, list[float]]:
        return {name: downsample(getattr(self, name), max_points) for name in self.names()}


def held_out_record(start: RunStart, trace: BatchTrace) -> dict:
    """run.json's "held_out": which images the held-out checks (HeldOutScore) measure, and the checks so far."""
    return {"split": start.held_out_split, "size": start.held_out_size, **trace.to_dict()}


def epoch_record(event: EpochEnd) -> dict[str, float | None]:
    """An epoch's metrics as run.json (and the dashboard's snapshot) keep them; val_loss and val_acc are null for a
    run without a validation split."""
    return {
        "epoch": event.epoch, "train_loss": event.train_loss, "train_acc": event.train_acc,
        "test_loss": event.test_loss, "test_acc": event.test_acc, "lr": event.lr,
        "samples_seen": event.samples_seen, "elapsed_s": event.elapsed_s,
        "val_loss": event.val_loss, "val_acc": event.val_acc,
    }


class RunRecorder:
    """Feeds engine events into one run's folder: created at RunStart, written at every epoch end and at RunEnd."""

    def __init__(self, store: RunStore, config: TrainConfig, study: dict[str, Any] | None = None):
        self.store = store
        self.config = config
        self.run_id, self.path = store.create_folder(config)
        self.trace = BatchTrace()
        self.held_out = BatchTrace()  # the held-out checks
        self._start: RunStart | None = None
        self.model: nn.Module | None = None
        self._lock = None
        now = _now()
        self.data: dict[str, Any] = {
            "format": FORMAT,
            "name": config.name,
            "status": "running",
            "message": "",
            "config": config.to_dict(),
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            "pid": os.getpid(),
            "host": platform.node(),
            "versions": {"digitlab": __version__, "torch": torch.__version__, "python": sys.version.split()[0]},
            "epochs": [],
            "batches": self.trace.to_dict(),
            "final": {},
        }
        if study is not None:  # {"name", "trial"}: the study and trial that trained it
            self.data["study"] = study
        self._hold_lock()
        self._write()

    def _hold_lock(self) -> None:
        if fcntl is not None:
            self._lock = open(self.path / LOCK_FILE, "a+")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def _release_lock(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _write(self) -> None:
        self.data["updated_at"] = _now()
        self.data["batches"] = self.trace.to_dict()
        if self._start is not None and self._start.held_out_size:
            self.data["held_out"] = held_out_record(self._start, self.held_out)
        write_json(self.path / RUN_FILE, self.data)

    def handle(self, event: Event) -> None:
        if isinstance(event, BatchEnd):
            self.trace.add(event)
        elif isinstance(event, HeldOutScore):
            self.held_out.add(event)
        elif isinstance(event, RunStart):
            self._start = event
            self.model = event.model
            self.data.update(device=event.device, device_name=event.device_name, precision=event.precision,
                             param_count=event.param_count, train_size=event.train_size)
            self._write()
        elif isinstance(event, EpochEnd):
            pause_point("recorder.epoch_end")
            self.data["epochs"].append(epoch_record(event))
            save_weights(self.model, self.path / WEIGHTS_FILE)
            self._write()
        elif isinstance(event, RunEnd):
            pause_point("recorder.run_end")
            final, message = {}, event.message
            if self.trace.loss:
                save_weights(event.model, self.path / WEIGHTS_FILE)
                final.update(test_acc=event.test_acc, test_loss=event.test_loss)
            else:  # stopped before its first batch: its weights are random, nothing worth keeping or scoring
                message += " No batch was trained, so no weights are kept."
            final.update(train_s=event.train_s, epochs_done=event.epochs_done)
            self.data.update(status=event.status, message=message, finished_at=_now(), final=final)
            self._write()
            self._release_lock()

    def fail(self, error: BaseException) -> None:
        """The run crashed: keep what was written, say why."""
        self.data.update(status="failed", message=f"Training failed: {type(error).__name__}: {error}",
                         finished_at=_now())
        self._write()
        self._release_lock()


def record_training(store: RunStore, config: TrainConfig, events, on_event=None,
                    study: dict[str, Any] | None = None) -> RunRecord:
    """Drive ``events`` (from engine.train) into a new run of ``store``; ``on_event(recorder, event)`` sees each.
    ``study`` ({"name", "trial"}) tags the run with the study trial that trained it.

    An exception inside training marks the run failed and is raised again.
    """
    recorder = RunRecorder(store, config, study)
    try:
        for event in events:
            recorder.handle(event)
            if on_event is not None:
                on_event(recorder, event)
    except BaseException as err:
        recorder.fail(err)
        raise
    return store.read(recorder.run_id)


