import json
import re

import pytest

from digitlab.__main__ import main
from digitlab.store import RunStore

FINAL_LINE = re.compile(r"^run=(\S+) status=(\w+) test_acc=(0\.\d{4}|1\.0000) train_s=(\d+\.\d)$")


def train_args(data, out, *extra):
    return ["train", "--preset", "fast", "--epochs", "2", "--data", str(data), "--out", str(out), "--quiet",
            "--no-download", *extra]


def test_train_list_eval(tiny_data_root, store_root, capsys):
    assert main(train_args(tiny_data_root, store_root, "--name", "cli run", "--set", "augment=shift",
                           "--set", "model_options.hidden=64", "--batch-size", "32")) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = FINAL_LINE.match(last)
    assert match, last
    run_id, status = match.group(1), match.group(2)
    assert status == "completed"
    record = RunStore(store_root).read(run_id)
    assert record.name == "cli run" and record.config.augment == "shift" and record.config.batch_size == 32
    assert record.config.model_options["hidden"] == 64 and len(record.epochs) == 2

    assert main(["list", "--out", str(store_root)]) == 0
    assert run_id in capsys.readouterr().out

    assert main(["eval", run_id, "--data", str(tiny_data_root), "--out", str(store_root), "--no-download"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"run={run_id} test_acc={match.group(3)}")


def test_train_from_a_config_file(tiny_data_root, store_root, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "lenet", "epochs": 1, "batch_size": 50}))
    assert main(["train", "--config", str(config), "--data", str(tiny_data_root), "--out", str(store_root),
                 "--quiet", "--no-download"]) == 0
    assert "status=completed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--preset", "nope"], "known presets: fast, seed-cnn"),
        (["train", "--lr", "0", "--batch-size", "0"], "batch_size must be between 1 and 60000, got 0"),
        (["train", "--set", "model=vit"], "model must be one of mlp, cnn, lenet, resnet"),
        (["train", "--set", "colour=red"], "unknown field 'colour'"),
        (["train", "--set", "oops"], "--set expects key=value"),
        (["train", "--config", "/nonexistent/config.json"], "cannot read config file"),
        (["eval", "../../etc"], "invalid run id"),
        (["eval", "missing-run"], "no run 'missing-run'"),
    ],
)
def test_bad_input_gets_a_clear_message_and_exit_code_2(args, expected, store_root, tiny_data_root, capsys):
    assert main([*args, "--out", str(store_root), "--data", str(tiny_data_root)]) == 2
    assert expected in capsys.readouterr().err


def test_missing_data_names_the_folder(tmp_path, store_root, capsys):
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(store_root), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty" / "MNIST" / "raw") in err and "train-images-idx3-ubyte" in err


def test_a_bad_config_file_is_reported(tmp_path, store_root, capsys):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    assert main(["train", "--config", str(config), "--out", str(store_root)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("fast", "seed-cnn", "seed-lenet", "seed-mlp", "seed-resnet", "seed-lenet3"):
        assert name in out


def test_ship_scores_the_run_ships_it_and_refuses_a_second_that_is_no_better(tiny_data_root, store_root, capsys):
    common = ["--data", str(tiny_data_root), "--out", str(store_root), "--no-download"]
    runs = []
    for seed in (0, 0):  # the same seed twice: the second run is exactly as good, so not better
        assert main(train_args(tiny_data_root, store_root, "--seed", str(seed))) == 0
        runs.append(FINAL_LINE.match(capsys.readouterr().out.strip().splitlines()[-1]).group(1))
    assert main(["ship", runs[0], "--quiet", *common]) == 0
    assert capsys.readouterr().out.startswith("shipped shipped-")
    assert main(["ship", runs[1], "--quiet", *common]) == 2
    assert "does not beat shipped-" in capsys.readouterr().err
    assert RunStore(store_root).read(runs[1]).status == "completed"  # still there, unshipped
