"""The run record's schema: what digitlab writes reads back, anything else says which field is wrong and how."""

import copy
import json
import math
from pathlib import Path

import pytest

from digitlab.config import TrainConfig
from digitlab.data import MNIST
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.schema import FORMAT, SchemaError, check_record, check_weights
from digitlab.store import RUN_FILE, WEIGHTS_FILE, RunStore

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "checkpoints").glob("shipped-*"))
TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=1, name="tiny")


@pytest.fixture(scope="module")
def shipped_record() -> dict:
    """A record written before format 2: the MLP shipped until December 2026, its batches and epochs cut short, kept
    here so that old records stay tested whatever is shipped."""
    return json.loads(Path(__file__).with_name("format_1_record.json").read_text())


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_records_and_weights_pass(folder):
    data = json.loads((folder / RUN_FILE).read_text())
    check_record(data)
    check_weights(folder / WEIGHTS_FILE, TrainConfig.from_dict(data["config"]))


def test_a_real_diverged_run_reads_with_its_nan_losses(tiny_data, tmp_path):
    """engine.train ends a NaN loss as "diverged": its batch trace and final test loss hold NaN, and it still reads."""
    poisoned = MNIST(tiny_data.train_images.float().clone(), tiny_data.train_labels, tiny_data.test_images,
                     tiny_data.test_labels, tiny_data.root)
    poisoned.train_images[:] = float("nan")
    store = RunStore(tmp_path)
    record = record_training(store, TINY, train(TINY, poisoned))
    data = json.loads((record.path / RUN_FILE).read_text())
    assert data["status"] == "diverged" and math.isnan(data["batches"]["loss"][-1])
    assert math.isnan(data["final"]["test_loss"])
    check_record(data)
    assert store.list().unreadable == [] and not store.read(record.id).usable


@pytest.mark.parametrize("change, message", [
    (lambda d: d["final"].update(test_acc=7.0), "final.test_acc must be a number between 0 and 1, got 7.0"),
    (lambda d: d["final"].update(test_loss=float("nan")), "final.test_loss must be a finite number, got nan"),
    (lambda d: d["batches"]["loss"].__setitem__(3, float("inf")), "batches.loss[3] must be a finite number"),
    (lambda d: d["batches"]["loss"].pop(), "batches lists must have equal lengths"),
    (lambda d: d.update(created_at="yesterday"), "created_at must be an ISO 8601 date"),
    (lambda d: d.update(created_at="2026-11-25T07:15:13"), "with a time zone"),
    (lambda d: d.update(status="finished"), "status must be one of running, completed"),
    (lambda d: d.update(param_count=10**400), "param_count must be an integer between 0 and 1e+12, got 1000"),
    (lambda d: d.update(param_count=True), "param_count must be an integer, got True"),
    (lambda d: d["epochs"][2].pop("test_acc"), "epochs[2].test_acc is missing"),
    (lambda d: d["config"].update(lr=-1), "config: lr must be above 0 and at most 10, got -1"),
    (lambda d: d["config"].update(colour="red"), "config cannot be read: unknown config field(s) colour"),
    (lambda d: d.pop("name"), "name is missing"),
    (lambda d: d.update(format=FORMAT + 1),
     f"format {FORMAT + 1} is newer than this digitlab reads (format {FORMAT}): upgrade digitlab"),
    (lambda d: d.update(format="1"), "format must be a positive integer, got '1'"),
    (lambda d: d.update(final={}), "final is empty, but a completed run has finished"),
])
def test_a_bad_record_names_the_field_and_the_problem(shipped_record, change, message):
    assert message in refusal(shipped_record, change)


def refusal(record: dict, change) -> str:
    """What check_record says of a copy of ``record`` changed by ``change`` (it must refuse it)."""
    data = copy.deepcopy(record)
    change(data)
    with pytest.raises(SchemaError) as raised:
        check_record(data)
    return str(raised.value)


def test_only_diverged_or_failed_runs_may_hold_a_non_finite_loss(shipped_record):
    data = copy.deepcopy(shipped_record)
    data["batches"]["loss"][-1] = float("inf")
    data["final"]["test_loss"] = float("nan")
    for status in ("diverged", "failed"):
        check_record({**data, "status": status})
    data["final"]["test_loss"] = float("-inf")  # cross-entropy is never negative, even diverged
    with pytest.raises(SchemaError, match="final.test_loss must be a finite number"):
        check_record({**data, "status": "diverged"})


def test_a_cuda_run_reads_on_a_machine_without_cuda(shipped_record):
    check_record({**shipped_record, "config": {**shipped_record["config"], "device": "cuda"}})
    with pytest.raises(SchemaError, match="device must be one of"):
        check_record({**shipped_record, "config": {**shipped_record["config"], "device": "tpu"}})


def test_an_fp16_cuda_run_reads_here_and_its_recorded_precision_is_checked(shipped_record):
    check_record({**shipped_record, "precision": "fp16", "config": {**shipped_record["config"], "precision": "fp16"}})
    with pytest.raises(SchemaError, match="precision must be one of fp32, bf16, fp16, got 'fp8'"):
        check_record({**shipped_record, "precision": "fp8"})


def test_validation_metrics_are_numbers_or_null_and_old_runs_lack_them(shipped_record):
    epoch = shipped_record["epochs"][0]
    assert "val_acc" not in epoch  # recorded before validation splits: still reads (the shipped records pass)
    check_record({**shipped_record, "epochs": [{**epoch, "val_loss": None, "val_acc": None}]})
    check_record({**shipped_record, "epochs": [{**epoch, "val_loss": 0.1, "val_acc": 0.98}]})
    with pytest.raises(SchemaError, match=r"epochs\[0\].val_acc must be a number between 0 and 1, got 7"):
        check_record({**shipped_record, "epochs": [{**epoch, "val_loss": 0.1, "val_acc": 7}]})


def test_only_a_stopped_run_may_have_no_score(shipped_record):
    unscored = {"train_s": 0.1, "epochs_done": 0}
    check_record({**shipped_record, "status": "stopped", "final": unscored, "epochs": []})
    with pytest.raises(SchemaError, match="final.test_acc is missing"):
        check_record({**shipped_record, "final": unscored})


def test_a_hostile_name_is_valid_and_a_long_value_is_quoted_short(shipped_record):
    check_record({**shipped_record, "name": "<img src=x onerror=alert(1)> [click](http://evil) " * 100})
    with pytest.raises(SchemaError) as raised:
        check_record({**shipped_record, "status": "x" * 5000})
    assert len(str(raised.value)) < 300


def test_weights_of_another_architecture_or_cut_short_are_refused(tmp_path):
    cnn, mlp = (REPO / "checkpoints" / f"shipped-{m}" for m in ("cnn", "mlp"))
    config = TrainConfig.from_dict(json.loads((cnn / RUN_FILE).read_text())["config"])
    with pytest.raises(SchemaError, match="another architecture than this cnn"):
        check_weights(mlp / WEIGHTS_FILE, config)
    cut = tmp_path / WEIGHTS_FILE
    cut.write_bytes((cnn / WEIGHTS_FILE).read_bytes()[:-100])
    with pytest.raises(SchemaError, match="cannot be read .*damaged"):
        check_weights(cut, config)


def test_a_study_run_names_its_study_and_trial_and_a_pruned_run_reads(shipped_record):
    study_run = {**copy.deepcopy(shipped_record), "study": {"name": "s2", "trial": 7}, "status": "pruned"}
    check_record(study_run)
    for bad in ({"name": "s2"}, {"name": "", "trial": 1}, {"name": "s2", "trial": -1}, "s2"):
        with pytest.raises(SchemaError, match='study must be an object {"name": text, "trial"'):
            check_record({**study_run, "study": bad})
    with pytest.raises(SchemaError, match="final is empty, but a pruned run has finished"):
        check_record({**study_run, "final": {}})


@pytest.fixture(scope="module")
def format_2_record(tiny_data, tmp_path_factory) -> dict:
    """A run recorded now: batch accuracy and the held-out checks (format 2)."""
    record = record_training(RunStore(tmp_path_factory.mktemp("format-2")), TINY.replace(epochs=2),
                             train(TINY.replace(epochs=2), tiny_data))
    return json.loads((record.path / RUN_FILE).read_text())


def test_a_run_recorded_now_holds_batch_accuracy_and_held_out_checks_and_reads(format_2_record):
    data = format_2_record
    assert data["format"] == FORMAT == 2
    check_record(data)
    batches, held_out = data["batches"], data["held_out"]
    assert len(batches["accuracy"]) == len(batches["loss"]) and all(0 <= a <= 1 for a in batches["accuracy"])
    assert held_out["split"] == "test" and held_out["size"] == 100  # the tiny test set, whole: under 1,000 images
    assert len(held_out["accuracy"]) == len(held_out["loss"]) == len(held_out["samples_seen"]) >= 2
    # The last check of each epoch is measured on the same images and weights as that epoch's end.
    assert held_out["samples_seen"][-1] == data["epochs"][-1]["samples_seen"]
    assert held_out["accuracy"][-1] == data["epochs"][-1]["test_acc"]


def test_format_1_records_without_the_new_fields_still_read(shipped_record, format_2_record):
    assert shipped_record["format"] == 1 and "accuracy" not in shipped_record["batches"]
    check_record(shipped_record)
    as_format_1 = copy.deepcopy(format_2_record)
    with pytest.raises(SchemaError, match="batches.accuracy is missing"):  # format 2 must have it
        check_record({**as_format_1, "batches": {k: v for k, v in as_format_1["batches"].items() if k != "accuracy"}})


@pytest.mark.parametrize("change, message", [
    (lambda d: d["held_out"].update(split="train"), "held_out.split must be one of validation, test, got 'train'"),
    (lambda d: d["held_out"].update(size=0), "held_out.size must be an integer between 1 and 1e+12, got 0"),
    (lambda d: d["held_out"]["accuracy"].__setitem__(0, 1.5), "held_out.accuracy[0] must be a number between 0 and 1"),
    (lambda d: d["held_out"]["loss"].pop(), "held_out lists must have equal lengths"),
    (lambda d: d["held_out"].pop("elapsed_s"), "held_out.elapsed_s is missing"),
    (lambda d: d.update(held_out=[]), "held_out must be an object, got []"),
    (lambda d: d["batches"]["accuracy"].__setitem__(0, -0.1), "batches.accuracy[0] must be a number between 0 and 1"),
])
def test_bad_held_out_checks_or_batch_accuracy_name_the_field(format_2_record, change, message):
    assert message in refusal(format_2_record, change)
