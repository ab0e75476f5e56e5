"""Training and evaluation as plain functions. No I/O, no UI: train() yields events and the caller decides what to
do with them (the run store writes them, the CLI draws a bar, the dashboard's job keeps a snapshot)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from digitlab import device as devices
from digitlab.config import TrainConfig
from digitlab.data import MNIST, DeviceData, Split, augment, batch_count, batches, to_device
from digitlab.models import count_parameters, create_model

EVAL_BATCH_SIZE = 1000
# Held-out accuracy and loss are measured this many times per epoch (the last at its end, from the full evaluation's
# pass), on at most HELD_OUT_SIZE images: the validation split's, else the test set's, the same images for every run
# (HELD_OUT_SEED). Each check costs a forward pass over them: few enough images that the checks stay a small share
# of training (python -m digitlab bench measures it), enough that a curve's steps are not noise.
HELD_OUT_POINTS = 10
HELD_OUT_SIZE = 800
HELD_OUT_SEED = 20251206


@dataclass(frozen=True)
class RunStart:
    model: nn.Module
    device: str  # "cpu", "cuda", "mps"
    device_name: str  # for people: "CPU, 1 thread"
    param_count: int
    batches_per_epoch: int
    train_size: int
    precision: str  # what it trains in, resolved: fp32, bf16 or fp16
    held_out_split: str = "test"  # what HeldOutScore events measure: "validation" or "test" ...
    held_out_size: int = 0  # ... on this many of its images


@dataclass(frozen=True)
class BatchEnd:
    epoch: int  # 1-based
    batch: int  # 1-based, within the epoch
    batches_per_epoch: int
    loss: float  # cross-entropy of this batch, without label smoothing
    accuracy: float
    samples_seen: int
    elapsed_s: float
    lr: float


@dataclass(frozen=True)
class HeldOutScore:
    """Accuracy and loss on the held-out images (RunStart.held_out_split and _size) after ``samples_seen`` training
    images: several times per epoch, so that accuracy is live inside one."""

    epoch: int
    batch: int  # within the epoch, after which it was measured
    samples_seen: int
    elapsed_s: float
    loss: float
    accuracy: float


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float  # mean of the epoch's batch losses
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float  # the rate used during this epoch's last batch
    samples_seen: int
    elapsed_s: float
    val_loss: float | None = None  # on the held-out training images; None when config.validation_size is 0
    val_acc: float | None = None


@dataclass(frozen=True)
class RunEnd:
    status: str  # completed, stopped, diverged
    message: str
    test_loss: float
    test_acc: float
    train_s: float
    epochs_done: int
    model: nn.Module  # eval mode; after a stop or divergence, the weights of the last finished epoch


Event = RunStart | BatchEnd | HeldOutScore | EpochEnd | RunEnd


def evaluate(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``split`` (on the split's device)."""
    return _evaluate(model, split, batch_size)[0]


@torch.inference_mode()
def _evaluate(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE, part: torch.Tensor | None = None
              ) -> list[tuple[float, float]]:
    """[(loss, accuracy) over ``split``], and over its images where ``part`` (a bool mask (N,) on the split's device)
    is true, if given: both from one pass."""
    model.eval()
    device = split.labels.device
    parts = 1 if part is None else 2
    loss = torch.zeros(parts, device=device)  # summed cross-entropy: over the split (, over the part)
    correct = torch.zeros(parts, device=device, dtype=torch.long)
    # Full precision, no autocast: the metrics must be exactly what predict() gives for the stored weights.
    for start, (images, labels) in zip(range(0, len(split), batch_size), batches(split, batch_size, shuffle=False)):
        logits = model(images)
        losses = F.cross_entropy(logits, labels, reduction="none")
        right = logits.argmax(1) == labels
        loss[0] += losses.sum()
        correct[0] += right.sum()
        if part is not None:
            chosen = part[start : start + len(labels)]
            loss[1] += losses[chosen].sum()
            correct[1] += right[chosen].sum()
    counts = [len(split)] + ([int(part.sum())] if part is not None else [])
    return [(total / n, right / n) for total, right, n in zip(loss.tolist(), correct.tolist(), counts)]


def held_out_part(split: DeviceData, size: int = HELD_OUT_SIZE) -> tuple[str, torch.Tensor]:
    """("validation" or "test", a bool mask over that split's images): the images held-out checks measure, the same
    for every run (a fixed permutation)."""
    name = "validation" if split.validation is not None else "test"
    source = split.validation if split.validation is not None else split.test
    chosen = torch.randperm(len(source), generator=torch.Generator().manual_seed(HELD_OUT_SEED))[:size]
    part = torch.zeros(len(source), dtype=torch.bool)
    part[chosen] = True
    return name, part.to(source.labels.device)


def held_out_marks(batches_per_epoch: int, points: int = HELD_OUT_POINTS) -> set[int]:
    """The batches of an epoch after which held-out accuracy is measured, besides its end: evenly spaced."""
    return {round(k * batches_per_epoch / points) for k in range(1, points)} - {0, batches_per_epoch}


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    # One fused kernel for the whole update instead of a dozen ops per parameter, a real share of a small model's
    # step on a CPU. Adadelta has no fused kernel.
    fused = next(model.parameters()).device.type in devices.FUSED_OPTIMIZER_DEVICES
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd,
                               fused=fused)
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd, fused=fused)
    return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps: int):
    """(scheduler, steps per batch?) — onecycle and cosine move every batch, step every epoch."""
    if config.schedule == "onecycle":
        # Adadelta has no momentum for one-cycle to cycle; the rate still follows the cycle.
        cycle_momentum = config.cycle_momentum and config.optimizer != "adadelta"
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps,
                                                   cycle_momentum=cycle_momentum), True
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps), True
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.step_gamma), False
    return None, False


def train(config: TrainConfig, data: MNIST, stop: threading.Event | None = None,
          held_out_points: int = HELD_OUT_POINTS) -> Iterator[Event]:
    """Train ``config`` on ``data``: RunStart, then per epoch BatchEnd... (with ``held_out_points`` HeldOutScore
    events among them, the last just before the epoch ends; 0 for none) EpochEnd, then RunEnd.

    A set ``stop`` ends training before the next batch (status "stopped"); a non-finite loss ends it with status
    "diverged". On the CPU the same config and seed give the same loss sequence, whatever ``held_out_points``.
    """
    errors = config.validate()
    if errors:
        raise ValueError("invalid config: " + "; ".join(errors.values()))
    stop = stop or threading.Event()
    device = devices.pick_device(config.device)
    devices.prepare(device)
    if config.validation_size >= len(data.train_labels):
        raise ValueError(f"validation_size {config.validation_size} leaves nothing to train on: the training set has "
                         f"{len(data.train_labels)} images; hold out fewer")
    split = to_device(data, device, config.input_scaling, config.validation_size)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation: CPU, same on any device
    # channels_last: the layout oneDNN and cuDNN convolutions are fastest in.
    model = create_model(config.model, **config.model_options).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)
    per_epoch = batch_count(len(split.train), config.batch_size)
    scheduler, per_batch_schedule = make_scheduler(config, optimizer, config.epochs * per_epoch)
    precision = devices.resolve_precision(device, config.precision)
    scaler = devices.grad_scaler(device, precision)
    # Reading a loss back forces the host to wait for the device: on an accelerator, read them ten at a time.
    sync_every = 1 if device.type == "cpu" else 10
    held_out_name, held_out = held_out_part(split)
    held_out_source = split.validation if held_out_name == "validation" else split.test
    held_out_split = Split(held_out_source.images[held_out], held_out_source.labels[held_out])
    marks = held_out_marks(per_epoch, held_out_points) if held_out_points else set()
    yield RunStart(model, device.type, devices.describe(device), count_parameters(model), per_epoch, len(split.train),
                   precision, held_out_name, len(held_out_split) if held_out_points else 0)

    start = time.perf_counter()
    samples_seen = 0
    last_good: dict[str, torch.Tensor] | None = None  # weights at the last epoch end: what a stop or NaN keeps
    finished: EpochEnd | None = None

    def end(status: str, message: str) -> RunEnd:
        if last_good is not None:
            model.load_state_dict(last_good)
        if finished is not None:
            test_loss, test_acc = finished.test_loss, finished.test_acc
        else:
            test_loss, test_acc = evaluate(model, split.test)
        model.eval()
        epochs_done = finished.epoch if finished else 0
        return RunEnd(status, message, test_loss, test_acc, time.perf_counter() - start, epochs_done, model)

    for epoch in range(1, config.epochs + 1):
        model.train()
        pending: list[tuple[torch.Tensor, torch.Tensor, int, float]] = []  # (loss, correct, size, lr)
        loss_sum = correct_sum = 0.0
        batch = 0
        last_lr = optimizer.param_groups[0]["lr"]

        def flush() -> Iterator[BatchEnd]:
            """Yield the pending batches' events; return the first with a non-finite loss, if any."""
            nonlocal batch, samples_seen, loss_sum, correct_sum
            if not pending:
                return None
            values = torch.stack([torch.stack([loss, correct.float()]) for loss, correct, _, _ in pending]).tolist()
            pending_sizes = [(size, lr) for _, _, size, lr in pending]
            pending.clear()
            elapsed = time.perf_counter() - start
            for (loss, correct), (size, lr) in zip(values, pending_sizes):
                batch += 1
                samples_seen += size
                loss_sum += loss
                correct_sum += correct
                event = BatchEnd(epoch, batch, per_epoch, loss, correct / size, samples_seen, elapsed, lr)
                yield event
                if not math.isfinite(loss):
                    return event
            return None

        stopped = False
        for step, (images, labels) in enumerate(batches(split.train, config.batch_size, generator), start=1):
            if stop.is_set():
                stopped = True
                break
            images = augment(images, config.augment, generator, config.input_scaling)
            with devices.autocast(device, precision):
                logits = model(images).float()
            objective = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            scaler.step(optimizer)
            scaler.update()
            last_lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None and per_batch_schedule:
                scheduler.step()
            with torch.no_grad():
                # Report plain cross-entropy so train and test losses are comparable whatever the smoothing.
                reported = F.cross_entropy(logits, labels) if config.label_smoothing else objective
                pending.append((reported.detach(), (logits.argmax(1) == labels).sum(), len(labels), last_lr))
            if (len(pending) >= sync_every or step in marks) and (bad := (yield from flush())):
                yield end("diverged", _diverged_message(config, bad))
                return
            if step in marks:
                (held_loss, held_acc), = _evaluate(model, held_out_split)
                model.train()
                yield HeldOutScore(epoch, batch, samples_seen, time.perf_counter() - start, held_loss, held_acc)
        if bad := (yield from flush()):
            yield end("diverged", _diverged_message(config, bad))
            return
        if stopped:
            yield end("stopped", f"Stopped by request during epoch {epoch}.")
            return
        if scheduler is not None and not per_batch_schedule:
            scheduler.step()
        # The epoch's last held-out check comes from the same passes as its full evaluation.
        check = held_out if held_out_points else None
        on_test = check if held_out_name == "test" else None
        (test_loss, test_acc), *test_part = _evaluate(model, split.test, part=on_test)
        val_loss = val_acc = None
        val_part = []
        if split.validation is not None:
            (val_loss, val_acc), *val_part = _evaluate(model, split.validation, part=check)
        if held_out_points:
            yield HeldOutScore(epoch, batch, samples_seen, time.perf_counter() - start, *(test_part or val_part)[0])
        finished = EpochEnd(epoch, config.epochs, loss_sum / batch, correct_sum / len(split.train), test_loss,
                            test_acc, last_lr, samples_seen, time.perf_counter() - start, val_loss, val_acc)
        last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        yield finished
    yield end("completed", f"Completed {config.epochs} epoch{'s' if config.epochs != 1 else ''}.")


def _diverged_message(config: TrainConfig, event: BatchEnd) -> str:
    return (
        f"The loss became {event.loss} at epoch {event.epoch}, batch {event.batch}: training diverged. "
        f"Try a lower learning rate than {config.lr:g}, for example {config.lr / 10:g}."
    )
