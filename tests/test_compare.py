import pandas as pd
import pytest

from digitlab.dashboard.compare import architecture, run_colours, runs_table, sort_runs_table, styled_runs_table
from digitlab.dashboard.curves import metric_curve
from digitlab.config import TrainConfig
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.store import RunStore

DATA = {
    "epochs": [
        {"epoch": 1, "samples_seen": 100, "elapsed_s": 2.0, "test_acc": 0.9, "test_loss": 0.3, "train_acc": 0.8,
         "train_loss": 0.5},
        {"epoch": 2, "samples_seen": 200, "elapsed_s": 4.0, "test_acc": 0.95, "test_loss": 0.2, "train_acc": 0.9,
         "train_loss": 0.3},
    ],
    "batches": {"samples_seen": [50, 100, 150, 200], "elapsed_s": [1, 2, 3, 4], "loss": [1.0, 0.8, 0.6, 0.4]},
}


def test_metric_curves_on_every_x_axis():
    assert metric_curve(DATA, "test_acc", "epoch") == ([1, 2], [0.9, 0.95])
    assert metric_curve(DATA, "test_loss", "samples") == ([100, 200], [0.3, 0.2])
    assert metric_curve(DATA, "train_acc", "time") == ([2.0, 4.0], [0.8, 0.9])
    x, y = metric_curve(DATA, "train_loss", "epoch")
    assert x == [0.5, 1.0, 1.5, 2.0] and y == [1.0, 0.8, 0.6, 0.4]
    x, y = metric_curve(DATA, "train_loss", "time", smoothing=0.5)
    assert x == [1, 2, 3, 4] and y[0] == 1.0 and y[-1] > 0.4
    with pytest.raises(ValueError):
        metric_curve(DATA, "f1", "epoch")
    with pytest.raises(ValueError):
        metric_curve(DATA, "test_acc", "steps")


def test_colours_are_stable_per_run():
    colours = run_colours(["a", "b", "c"])
    assert len(set(colours.values())) == 3
    assert run_colours(["a", "b", "c"]) == colours


def test_runs_table(tiny_data, store_root):
    store = RunStore(store_root)
    config = TrainConfig(model="cnn", model_options={"channels": [4], "hidden": 8, "batch_norm": True}, lr=0.01,
                         batch_size=64, epochs=1, name="small cnn")
    record = record_training(store, config, train(config, tiny_data))
    table = runs_table([record])
    row = table.iloc[0]
    assert row["Run"] == "small cnn" and row["Architecture"] == "cnn (conv 4, fc 8, BN, dropout 0.5)"
    assert row["Parameters"] == record.data["param_count"]
    assert row["Test accuracy"] == record.final["test_acc"] and row["Status"] == "completed"
    assert "adam lr=0.01" in row["Hyperparameters"] and row["Epochs"] == 1
    assert row["Precision"] == record.data["precision"] and row["Precision"] in ("fp32", "bf16")
    csv = table.to_csv(index=False)
    assert csv.splitlines()[0].startswith("Run,Architecture,Hyperparameters,Parameters,Test accuracy")


@pytest.mark.parametrize("model, options, expected", [
    ("mlp", {"hidden": [1024, 1024], "dropout": 0.3, "input_norm": "strokes"},
     "mlp (hidden 1024-1024, dropout 0.3, strokes input norm)"),
    ("resnet", {"input_norm": "strokes"}, "resnet (stages 32-64-128, 1 block(s) each, BN, strokes input norm)"),
    ("resnet", {"norm": "group"}, "resnet (stages 32-64-128, 1 block(s) each, GroupNorm)"),
    ("resnet", {"norm": "none"}, "resnet (stages 32-64-128, 1 block(s) each)"),
    ("lenet", {"input_norm": "standardize"}, "lenet (lenet5, standardize input norm)"),
])
def test_architecture_names_the_normalisations(model, options, expected):
    """Two models that differ only in their input normalisation or their ResNet norm do not read alike."""
    assert architecture(TrainConfig(model=model, model_options=options)) == expected


def test_runs_table_sorts_with_missing_values_last_and_formats_for_reading():
    table = pd.DataFrame({
        "Run": ["a", "b", "c"], "Architecture": "mlp", "Hyperparameters": "adam", "Parameters": [1000, 20000, 300],
        "Test accuracy": [0.9812, None, 0.9934], "Test loss": [0.06, None, 0.03], "Epochs": [2, 0, 3],
        "Train time (s)": [4.25, None, 9.0], "Device": "CPU", "Precision": ["bf16", "fp32", None],
        "Status": ["completed", "stopped", "completed"],
        "Date": pd.to_datetime(["2026-11-25 09:30", "2026-11-25 10:00", None]), "id": ["a1", "b2", "c3"],
    })
    assert list(sort_runs_table(table, "Test accuracy", descending=True)["Run"]) == ["c", "a", "b"]
    assert list(sort_runs_table(table, "Test accuracy", descending=False)["Run"]) == ["a", "c", "b"]
    assert list(sort_runs_table(table, "Run", descending=True)["Run"]) == ["c", "b", "a"]
    shown = styled_runs_table(sort_runs_table(table, "Parameters", descending=True)).to_html()
    # The id column stays in the CSV only. Cells are matched whole: the Styler's random table id ("T_4b2a1") may
    # contain "a1" itself.
    assert ">id<" not in shown and ">a1<" not in shown
    for text in ("20,000", "98.12%", "0.0600", "4.2", "2026-11-25 09:30", "–"):
        assert text in shown, text
