from pathlib import Path

import pytest

from digitlab.config import TrainConfig
from digitlab.dashboard.grouping import epoch_curve, group_colours, group_key, group_runs
from digitlab.store import RunRecord


def record(run_id: str, config: TrainConfig, accs: list[float]) -> RunRecord:
    epochs = [{"epoch": i + 1, "test_acc": acc, "val_acc": None} for i, acc in enumerate(accs)]
    data = {"status": "completed", "epochs": epochs, "final": {"test_acc": accs[-1]} if accs else {}}
    return RunRecord(run_id, Path(run_id), data, config)


BASE = TrainConfig(model="mlp", lr=0.01)


def test_runs_differing_only_in_seed_and_name_form_one_group():
    assert group_key(BASE.replace(seed=1, name="a")) == group_key(BASE.replace(seed=2))
    assert group_key(BASE) != group_key(BASE.replace(model_options={"hidden": [64]}))
    runs = [record("a", BASE.replace(seed=1), [0.90, 0.94]), record("b", BASE.replace(seed=2), [0.92, 0.96]),
            record("c", BASE.replace(seed=3), [0.91]), record("d", BASE.replace(lr=0.1), [0.80])]
    first, second = group_runs(runs)
    assert [r.id for r in first.runs] == ["a", "b", "c"] and first.n == 3 and first.seeds == [1, 2, 3]
    assert first.label == "lr=0.01" and second.label == "lr=0.1"
    assert first.fields["optimizer"] == "adam" and "seed" not in first.fields
    # Final accuracies 0.94, 0.96, 0.91: mean 0.9367, sample std 0.02517.
    assert first.test_acc.mean == pytest.approx(0.936667, abs=1e-6)
    assert first.test_acc.std == pytest.approx(0.025166, abs=1e-6)
    # A single run has no spread: drawn as the run itself, no band.
    assert second.n == 1 and second.test_acc.std is None and second.test_acc.mean == 0.80
    assert first.colour != second.colour


def test_epoch_curves_average_the_runs_that_reached_each_epoch():
    runs = [record("a", BASE, [0.90, 0.94]), record("b", BASE, [0.92, 0.96]), record("c", BASE, [0.91])]
    curve = epoch_curve(runs, "test_acc")
    assert curve.epochs == [1, 2] and curve.n == [3, 2]
    assert curve.mean == pytest.approx([0.91, 0.95])
    assert curve.std == pytest.approx([0.01, 0.0141421], abs=1e-6)
    assert epoch_curve(runs[2:], "test_acc").std == [None]
    assert epoch_curve(runs, "val_acc").epochs == []  # runs without a validation split have no such curve
    with pytest.raises(ValueError, match="unknown per-epoch metric"):
        epoch_curve(runs, "accuracy")


def test_group_colours_depend_on_the_key_not_the_order():
    keys = [group_key(BASE.replace(lr=lr)) for lr in (0.1, 0.01, 0.001)]
    assert group_colours(keys) == group_colours(list(reversed(keys)))
    assert len(set(group_colours(keys).values())) == 3


def test_groups_go_by_their_runs_shared_name_and_fields_tell_apart_the_rest():
    named = [record("a", BASE.replace(seed=0, name="fast, seed 0"), [0.9]),
             record("b", BASE.replace(seed=1, name="fast, seed 1"), [0.9]),
             record("c", BASE.replace(lr=0.1, name="cnn (shipped)"), [0.9]),
             record("d", BASE.replace(lr=0.2), [0.9]),
             record("e", BASE.replace(lr=0.3, name="sweep 1"), [0.9]),
             record("f", BASE.replace(lr=0.4, name="sweep 2"), [0.9])]
    for run in named:
        run.data["name"] = run.config.name
    labels = [group.label for group in group_runs(named)]
    assert labels == ["fast", "cnn (shipped)", "lr=0.2", "sweep 1", "sweep 2"]
    twins = [record("g", BASE.replace(lr=0.1, name="same"), [0.9]), record("h", BASE.replace(lr=0.2, name="same"), [0.9])]
    for run in twins:
        run.data["name"] = run.config.name
    assert [group.label for group in group_runs(twins)] == ["same · lr=0.1", "same · lr=0.2"]


def test_a_label_names_at_most_three_differing_fields():
    runs = [record("a", BASE, [0.9]), record("b", BASE.replace(lr=0.1, batch_size=64, epochs=3, momentum=0.5), [0.9])]
    assert group_runs(runs)[1].label == "batch_size=64, epochs=3, lr=0.1, …"
