import threading

import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.data import MNIST
from digitlab.engine import (HELD_OUT_POINTS, BatchEnd, EpochEnd, HeldOutScore, RunEnd, RunStart, evaluate,
                             held_out_marks, make_optimizer, make_scheduler, train)
from digitlab.models import create_model

TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, optimizer="adam", lr=0.01, batch_size=64,
                   epochs=2, seed=3)


def test_event_order(tiny_data):
    events = list(train(TINY, tiny_data, held_out_points=0))
    kinds = [type(e).__name__ for e in events]
    per_epoch = 5  # ceil(300 / 64)
    assert kinds == ["RunStart"] + (["BatchEnd"] * per_epoch + ["EpochEnd"]) * 2 + ["RunEnd"]
    start, end = events[0], events[-1]
    assert isinstance(start, RunStart) and start.batches_per_epoch == per_epoch and start.param_count > 0
    batch_events = [e for e in events if isinstance(e, BatchEnd)]
    assert [e.batch for e in batch_events] == [1, 2, 3, 4, 5] * 2
    assert batch_events[-1].samples_seen == 600
    assert all(b.elapsed_s <= a.elapsed_s for b, a in zip(batch_events, batch_events[1:]))
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.test_acc <= 1 and e.test_loss > 0 for e in epochs)
    assert isinstance(end, RunEnd) and end.status == "completed" and end.epochs_done == 2
    assert end.test_acc == epochs[-1].test_acc


def test_held_out_accuracy_is_measured_inside_each_epoch_and_at_its_end(tiny_data):
    events = list(train(TINY, tiny_data))
    kinds = [type(e).__name__ for e in events]
    # 5 batches an epoch: a check after batches 1 to 4 (10 evenly spaced points, rounded) and one at the end.
    epoch = ["BatchEnd", "HeldOutScore"] * 4 + ["BatchEnd", "HeldOutScore", "EpochEnd"]
    assert kinds == ["RunStart"] + epoch * 2 + ["RunEnd"]
    start = events[0]
    assert (start.held_out_split, start.held_out_size) == ("test", 100)  # the tiny test set has 100 images
    checks = [e for e in events if isinstance(e, HeldOutScore)]
    batches = {(e.epoch, e.batch): e for e in events if isinstance(e, BatchEnd)}
    for check in checks:  # each one comes after the batch it names, with that batch's count of images
        assert batches[(check.epoch, check.batch)].samples_seen == check.samples_seen
        assert 0 <= check.accuracy <= 1 and check.loss > 0
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert [(c.loss, c.accuracy) for c in checks[4::5]] == [(e.test_loss, e.test_acc) for e in ends]
    assert checks[-1].accuracy > checks[0].accuracy  # it learns, and the checks see it


def test_held_out_checks_use_a_fixed_subset_of_the_validation_split_and_change_no_loss(tiny_data):
    config = TINY.replace(validation_size=60)
    with_checks = list(train(config, tiny_data))
    assert (with_checks[0].held_out_split, with_checks[0].held_out_size) == ("validation", 60)
    ends = [e for e in with_checks if isinstance(e, EpochEnd)]
    checks = [e for e in with_checks if isinstance(e, HeldOutScore)]
    assert checks[-1].accuracy == ends[-1].val_acc and checks[-1].loss == pytest.approx(ends[-1].val_loss)
    without = list(train(config, tiny_data, held_out_points=0))
    assert without[0].held_out_size == 0 and not any(isinstance(e, HeldOutScore) for e in without)
    losses = lambda events: [e.loss for e in events if isinstance(e, BatchEnd)]  # noqa: E731
    assert losses(with_checks) == losses(without)  # measuring does not touch training


@pytest.mark.parametrize("batches_per_epoch", [1, 5, 10, 11, 215, 1875])
def test_held_out_marks_are_evenly_spaced_inside_the_epoch(batches_per_epoch):
    marks = sorted(held_out_marks(batches_per_epoch))
    assert all(0 < m < batches_per_epoch for m in marks)
    assert len(marks) == min(HELD_OUT_POINTS, batches_per_epoch) - 1  # with the epoch's end: 10 points, or one a batch
    gaps = [b - a for a, b in zip([0, *marks], [*marks, batches_per_epoch])]
    assert max(gaps) - min(gaps) <= 1


def test_training_learns_the_synthetic_digits(tiny_data):
    config = TrainConfig(model="cnn", model_options={"channels": [8, 16], "hidden": 32, "batch_norm": True,
                                                     "pooling": "each"}, lr=0.01, batch_size=32, epochs=8)
    end = list(train(config, tiny_data))[-1]
    assert end.status == "completed"
    assert end.test_acc >= 0.8, end.test_acc


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_gives_the_same_loss_sequence(tiny_data, precision):
    """Determinism holds, bit for bit, for the same config and seed on the same CPU type, with the same torch
    thread count and the same resolved precision (recorded in run.json). Change any of the three and the losses
    are only close: reductions are split across threads differently, and CPU kernels differ by instruction set."""

    def losses(config):
        return [e.loss for e in train(config, tiny_data) if isinstance(e, BatchEnd)]

    config = TINY.replace(augment="shift_rotate", model_options={"hidden": [32], "dropout": 0.2},
                          precision=precision)
    threads = torch.get_num_threads()
    assert losses(config) == losses(config)
    assert torch.get_num_threads() == threads
    assert losses(config) != losses(config.replace(seed=4))


def test_the_precision_is_in_effect_and_resolved_at_the_start(tiny_data):
    from digitlab.device import auto_precision

    def run(precision):
        events = list(train(TINY.replace(precision=precision), tiny_data))
        return events[0].precision, [e.loss for e in events if isinstance(e, BatchEnd)]

    fp32, bf16 = run("fp32"), run("bf16")
    assert fp32[0] == "fp32" and bf16[0] == "bf16"
    assert fp32[1] != bf16[1]  # bf16 autocast really changed the arithmetic
    assert run("auto")[0] == auto_precision(torch.device("cpu"))


def test_fp16_is_refused_on_the_cpu_with_the_field_message():
    errors = TINY.replace(device="cpu", precision="fp16").validate()
    assert list(errors) == ["precision"] and "fp16 is not available on cpu" in errors["precision"]
    assert "precision" in TINY.replace(precision="fp64").validate()


def test_stop_ends_within_one_batch(tiny_data):
    stop = threading.Event()
    events = []
    for event in train(TINY.replace(epochs=3), tiny_data, stop):
        events.append(event)
        if isinstance(event, BatchEnd) and event.epoch == 2 and event.batch == 2:
            stop.set()
    batch_events = [e for e in events if isinstance(e, BatchEnd)]
    assert (batch_events[-1].epoch, batch_events[-1].batch) == (2, 2)  # no batch after the stop
    end = events[-1]
    assert end.status == "stopped" and end.epochs_done == 1
    # The kept weights and metrics are those of the last finished epoch.
    epoch1 = next(e for e in events if isinstance(e, EpochEnd))
    assert end.test_acc == epoch1.test_acc
    from digitlab.data import to_device

    assert evaluate(end.model, to_device(tiny_data, torch.device("cpu")).test)[1] == pytest.approx(epoch1.test_acc)


def test_stop_before_the_first_epoch_end_still_reports_metrics(tiny_data):
    stop = threading.Event()
    stop.set()
    events = list(train(TINY, tiny_data, stop))
    assert [type(e).__name__ for e in events] == ["RunStart", "RunEnd"]
    assert events[-1].status == "stopped" and 0 <= events[-1].test_acc <= 1


def test_nan_loss_ends_with_status_diverged(tiny_data):
    poisoned = MNIST(tiny_data.train_images.float().clone(), tiny_data.train_labels, tiny_data.test_images,
                     tiny_data.test_labels, tiny_data.root)
    poisoned.train_images[:] = float("nan")
    events = list(train(TINY, poisoned))
    end = events[-1]
    assert end.status == "diverged"
    assert "lower learning rate" in end.message
    assert sum(isinstance(e, BatchEnd) for e in events) == 1  # it stopped at the first NaN


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adadelta"])
@pytest.mark.parametrize("schedule", ["none", "step", "onecycle", "cosine"])
def test_every_optimizer_and_schedule_runs(tiny_data, optimizer, schedule):
    config = TINY.replace(optimizer=optimizer, schedule=schedule, epochs=2, step_gamma=0.5,
                          lr=1.0 if optimizer == "adadelta" else 0.01, label_smoothing=0.1)
    events = list(train(config, tiny_data))
    assert events[-1].status == "completed"
    lrs = [e.lr for e in events if isinstance(e, EpochEnd)]
    if schedule == "step":
        assert lrs[1] == pytest.approx(lrs[0] * 0.5)
    if schedule == "none":
        assert lrs[0] == lrs[1] == config.lr


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adams_betas_come_from_the_config_and_onecycle_cycles_beta1_only_when_asked(optimizer):
    config = TINY.replace(optimizer=optimizer, beta1=0.7, beta2=0.9, schedule="onecycle", epochs=1)
    seen = {}
    for cycle in (False, True):
        opt = make_optimizer(config.replace(cycle_momentum=cycle), create_model("mlp", hidden=[8]))
        scheduler, _ = make_scheduler(config.replace(cycle_momentum=cycle), opt, 10)
        betas = []
        for _ in range(10):
            opt.step()
            scheduler.step()
            betas.append(opt.param_groups[0]["betas"])
        seen[cycle] = betas
    assert set(seen[False]) == {(0.7, 0.9)}
    assert len({b1 for b1, _ in seen[True]}) > 1 and all(0.85 <= b1 <= 0.95 for b1, _ in seen[True])


def test_sgd_onecycle_keeps_the_configs_momentum_without_cycling():
    config = TINY.replace(optimizer="sgd", momentum=0.5, schedule="onecycle", cycle_momentum=False)
    opt = make_optimizer(config, create_model("mlp", hidden=[8]))
    scheduler, _ = make_scheduler(config, opt, 10)
    for _ in range(5):
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["momentum"] == 0.5


def test_invalid_config_is_refused(tiny_data):
    with pytest.raises(ValueError, match="batch_size"):
        next(train(TINY.replace(batch_size=0), tiny_data))
