"""Studies (digitlab.study) on the tiny synthetic MNIST: repeat, grid (exact under two workers), search with pruning,
resume or refuse, every bad input with its message, and the CLI's shape."""

import re
import socket
import threading
import time

import optuna
import pytest

from digitlab import study
from digitlab.__main__ import main
from digitlab.config import TrainConfig
from digitlab.store import RunStore
from digitlab.study.storage import CONNECT_TIMEOUT_S

TINY = TrainConfig(model="mlp", model_options={"hidden": [16]}, lr=0.01, batch_size=64, epochs=1)
FAST_HEARTBEAT = {"heartbeat_s": 1, "grace_s": 2}


def runs_of(root, name):
    runs = [r for r in RunStore(root).list().runs if (r.study or {}).get("name") == name]
    return sorted(runs, key=lambda r: r.study["trial"])


def test_a_repeat_trains_one_config_over_seeds_as_tagged_runs(tiny_data, tmp_path):
    spec = study.define_study("rep", TINY, repeat=2, validation_size=50)
    summary = study.run_study(spec, tiny_data, tmp_path, workers=1, **FAST_HEARTBEAT)
    runs = runs_of(tmp_path, "rep")
    assert [r.study for r in runs] == [{"name": "rep", "trial": 0}, {"name": "rep", "trial": 1}]
    assert [r.config.seed for r in runs] == [0, 1] and {r.status for r in runs} == {"completed"}
    assert {r.config.validation_size for r in runs} == {50}
    best = max(r.epochs[-1]["val_acc"] for r in runs)
    assert summary.line().startswith(f"study=rep trials=2 complete=2 pruned=0 failed=0 best_val={best:.4f} best_test=")
    assert (tmp_path / study.STUDIES_FILE).is_file() and RunStore(tmp_path).list().unreadable == []


def test_a_grid_under_two_workers_runs_every_combination_exactly_once(tiny_data, tmp_path):
    spec = study.define_study("grid", TINY, validation_size=50,
                              grid={"lr": [0.01, 0.02], "model_options.hidden": study.parse_values("[16];[8]")})
    summary = study.run_study(spec, tiny_data, tmp_path, workers=2, **FAST_HEARTBEAT)
    combos = sorted((r.config.lr, r.config.model_options["hidden"][0]) for r in runs_of(tmp_path, "grid"))
    assert combos == [(0.01, 8), (0.01, 16), (0.02, 8), (0.02, 16)]
    assert summary.line().startswith("study=grid trials=4 complete=4 pruned=0 failed=0")


def test_a_pruned_search_trial_is_a_pruned_run_with_its_finished_epochs(tiny_data, tmp_path, monkeypatch):
    # Every trial below 110% accuracy is pruned at its first report: the pruning path, deterministically.
    monkeypatch.setattr("digitlab.study.storage._pruner", lambda spec: optuna.pruners.ThresholdPruner(lower=1.1))
    spec = study.define_study("srch", TINY.replace(epochs=2), validation_size=50, trials=2, prune=True,
                              search={"lr": study.parse_spec("1e-3:1e-1:log"), "batch_size": study.parse_spec("32,64")})
    summary = study.run_study(spec, tiny_data, tmp_path, workers=1, **FAST_HEARTBEAT)
    assert summary.line() == "study=srch trials=2 complete=0 pruned=2 failed=0 best_val=- best_test=-"
    for run in runs_of(tmp_path, "srch"):
        assert run.status == "pruned" and len(run.epochs) == 1 and run.final["epochs_done"] == 1
        assert run.usable and "Pruned after epoch 1" in run.message


def test_a_search_ranks_by_validation_and_stops_at_its_trials(tiny_data, tmp_path):
    spec = study.define_study("tpe", TINY, validation_size=50, trials=3, search={"lr": study.parse_spec("1e-3:1e-1")})
    summary = study.run_study(spec, tiny_data, tmp_path, workers=1, **FAST_HEARTBEAT)
    runs = runs_of(tmp_path, "tpe")
    assert len(runs) == 3 and len({r.config.lr for r in runs}) == 3
    best = max(runs, key=lambda r: r.epochs[-1]["val_acc"])
    assert summary.best.attrs["run_id"] == best.id


def test_a_matching_definition_resumes_and_another_is_refused(tiny_data, tmp_path):
    spec = study.define_study("again", TINY, repeat=2, validation_size=50)
    study.run_study(spec, tiny_data, tmp_path, workers=1, **FAST_HEARTBEAT)
    summary = study.run_study(spec, tiny_data, tmp_path, workers=1, **FAST_HEARTBEAT)
    assert len(runs_of(tmp_path, "again")) == 2 and summary.line().startswith("study=again trials=2 complete=2")
    other = study.define_study("again", TINY, repeat=3, validation_size=50)
    with pytest.raises(study.StudyError, match="exists with another definition .it differs in: repeat"):
        study.create_or_resume(other, study.open_storage(out=tmp_path))
    assert len(runs_of(tmp_path, "again")) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": {"colour": ["red"]}}, "grid colour: unknown field 'colour'"),
    ({"grid": {"lr": [0.1, -1]}}, "grid lr=-1: lr must be above 0 and at most 10, got -1"),
    ({"grid": {"model_options.hidden": [[0]]}}, "grid model_options.hidden=[0]: hidden must hold integers between 1 and 4096"),
    ({"grid": {"preset": ["fast", "nope"]}}, "grid preset: unknown preset 'nope'"),
    ({"search": {"lr": {"low": 0.1, "high": 20, "log": False, "int": False}}}, "search lr=20: lr must be above 0"),
    ({"trials": 5}, "empty search space"),
    ({"name": "x" * 73}, "a study name needs 1 to 72 characters"),
    ({"search": {"lr": {"choices": [0.1, 0.2]}}, "validation_size": 0}, "validation size above 0"),
    ({"prune": True}, "pruning needs a search"),
    ({"repeat": 1001}, "repeat must be a whole number from 1 to 1000"),
    ({"grid": {"seed": list(range(600))}, "repeat": 2}, "the study would train 1,200 runs; at most 1,000"),
    ({"search": {"lr": {"choices": [0.1]}}, "trials": 1001}, "the study would train 1,001 runs; at most 1,000"),
    ({"base": TINY.replace(optimizer="sgd"), "grid": {"optimizer": ["sgd", "adam"], "nesterov": [True]}},
     'grid combination {"optimizer": "adam", "nesterov": true}: nesterov needs the sgd optimizer'),
])
def test_bad_study_input_names_what_is_wrong(kwargs, message):
    with pytest.raises(study.StudyError) as raised:
        study.define_study(kwargs.pop("name", "bad"), kwargs.pop("base", TINY), **kwargs)
    assert message in str(raised.value)


@pytest.mark.parametrize("text, message", [
    ("1:0", "LOW must be below HIGH"), ("0:1:log", "a log range needs LOW above 0"),
    ("1:2:cube", "the third part must be log or int"), ("0.5:4:int", "LOW:HIGH:int needs whole numbers"),
])
def test_bad_search_specs_say_what_is_wrong(text, message):
    with pytest.raises(study.StudyError, match=message):
        study.parse_spec(text)


def test_specs_and_values_parse_as_the_issue_writes_them():
    assert study.parse_values("[16,32];[32,64]") == [[16, 32], [32, 64]]
    assert study.parse_values("0.01,0.1") == [0.01, 0.1] and study.parse_values("adam,sgd") == ["adam", "sgd"]
    assert study.parse_spec("1e-4:1e-1:log") == {"low": 1e-4, "high": 0.1, "log": True, "int": False}
    assert study.parse_spec("16:128:int") == {"low": 16, "high": 128, "log": False, "int": True}
    assert study.parse_spec("sgd,adam") == {"choices": ["sgd", "adam"]}


def test_grids_and_searches_parse_from_the_clis_items_or_the_pages_lines():
    assert study.parse_grid(["lr=0.01,0.1", "model_options.hidden=[16];[8]"], "--grid") == {
        "lr": [0.01, 0.1], "model_options.hidden": [[16], [8]]}
    assert study.parse_grid("lr=0.01,0.1\n\n  \n optimizer = adam,sgd\n") == {"lr": [0.01, 0.1],
                                                                            "optimizer": ["adam", "sgd"]}
    assert study.parse_search("lr=1e-4:1e-1:log\nbatch_size=64,128") == {
        "lr": {"low": 1e-4, "high": 0.1, "log": True, "int": False}, "batch_size": {"choices": [64, 128]}}
    assert study.parse_grid("") == {} and study.parse_search([], "--search") == {}


@pytest.mark.parametrize("parse, items, message", [
    (study.parse_grid, "lr", "grid expects FIELD=VALUES, got 'lr'"),
    (study.parse_grid, "lr=0.1\nbatch_size=", "grid expects FIELD=VALUES, got 'batch_size='"),
    (study.parse_grid, ["=0.1"], "grid expects FIELD=VALUES, got '=0.1'"),
    (study.parse_grid, ["lr=0.1", "lr=0.2"], "grid gives lr twice: give all its values in one FIELD=VALUES"),
    (study.parse_search, "lr=1:0", "search lr: search range '1:0': LOW must be below HIGH"),
    (study.parse_search, ["lr=0:1:log"], "search lr: search range '0:1:log': a log range needs LOW above 0"),
])
def test_bad_grid_and_search_text_says_what_is_wrong(parse, items, message):
    with pytest.raises(study.StudyError) as raised:
        parse(items)
    assert str(raised.value) == message


def test_seed_studies_use_the_faithful_presets_with_three_seeds():
    spec = study.define_study("s2", seed_study="seed-002", epochs=3)
    configs = [spec.config_for({"preset": p, "repeat": k}) for p in spec.grid["preset"] for k in range(3)]
    assert spec.total == 12 and {c.epochs for c in configs} == {3} and {c.validation_size for c in configs} == {5000}
    assert spec.config_for({"preset": "seed-002-cnn-bn", "repeat": 2}).model_options["batch_norm"] is True
    batch = study.define_study("s0", seed_study="seed-000-batch")
    assert batch.grid == {"batch_size": [32, 512]} and batch.base["optimizer"] == "adadelta" and batch.repeat == 3
    assert set(study.SEED_STUDIES) == {"seed-000-batch", "seed-001-bn", "seed-002", "seed-003"}


@pytest.fixture
def silent_host():
    """A host:port on loopback that takes connections and never answers, as a database host that has hung (or a
    firewall that swallows packets) does: without a connect timeout a client would wait there for ever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # never accepted: the kernel completes the handshake, nobody speaks
    yield "127.0.0.1:%d" % listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a database URL"),
    ("mysql://someone@localhost/db", "needs a database driver that is not installed"),
    ("postgresql://someone@127.0.0.1:1/db", "cannot open the study database at 127.0.0.1"),
    ("postgresql://someone@{silent}/db", "cannot open the study database at 127.0.0.1"),
])
def test_a_bad_storage_fails_fast_naming_the_problem(url, message, silent_host):
    """Fast: within the connect timeout, not after the operating system's minutes (or never, for a silent host).
    Given a deadline of several timeouts rather than one, so that a loaded machine does not fail it."""
    outcome = []

    def open_it():
        try:
            study.open_storage(url.format(silent=silent_host))
        except study.StudyError as err:
            outcome.append(err)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(CONNECT_TIMEOUT_S * 6)
    assert not opener.is_alive(), f"opening {url} took over {CONNECT_TIMEOUT_S * 6} s"
    (err,) = outcome
    assert re.search(message, str(err))


def test_the_cli_runs_lists_and_shows_a_study(tiny_data_root, tmp_path, capsys):
    common = ["--data", str(tiny_data_root), "--out", str(tmp_path), "--no-download"]
    assert main(["study", "run", "cli", "--base", "fast", "--repeat", "2", "--validation", "50", "--workers", "1",
                 "--epochs", "1", "--quiet", *common]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("study=cli trials=2 complete=2 pruned=0 failed=0 best_val=0.") and "best_test=0." in last
    assert main(["study", "work", "cli", "--workers", "1", "--quiet", *common]) == 0  # nothing left: it just reports
    assert capsys.readouterr().out.strip().splitlines()[-1] == last
    assert main(["study", "list", "--out", str(tmp_path)]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["study", "show", "cli", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last
    assert main(["study", "run", "cli", "--base", "fast", "--repeat", "3", "--validation", "50", *common]) == 2
    assert "exists with another definition" in capsys.readouterr().err
    assert main(["study", "run", "x", "--base", "fast", "--grid", "lr", *common]) == 2
    assert "--grid expects FIELD=VALUES, got 'lr'" in capsys.readouterr().err
    assert main(["study", "run", "x", "--base", "fast", "--workers", "0", *common]) == 2
    assert "--workers must be from 1 to 64, got 0" in capsys.readouterr().err
    assert main(["study", "show", "nope", "--out", str(tmp_path)]) == 2
    assert "no study 'nope' in this storage" in capsys.readouterr().err


def test_a_worker_whose_trial_is_failed_under_it_goes_on(tiny_data, tmp_path):
    """Another worker may fail a trial whose heartbeats looked stale: this worker's run ends failed, saying why, and
    the worker takes the next trial instead of crashing."""
    spec = study.define_study("lost", TINY.replace(epochs=1000), repeat=2, validation_size=50)
    storage = study.open_storage(out=tmp_path, **FAST_HEARTBEAT)
    found = study.create_or_resume(spec, storage)
    stop = threading.Event()

    timed_out = []

    def wait_until(condition, what: str) -> bool:
        deadline = time.monotonic() + 120
        while not condition():
            if time.monotonic() > deadline:
                timed_out.append(what)
                stop.set()  # the worker ends: the test fails below instead of hanging
                return False
            time.sleep(0.05)
        return True

    def fail_the_first_then_stop():
        # Once its run trains: a trial failed before its objective has begun is another case (CI's slow pass hung
        # here, the worker never starting a second run).
        if not wait_until(lambda: found.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                          and RunStore(tmp_path).list().runs, "the first trial's run to train"):
            return
        first = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("lost"), 0)
        storage.set_trial_state_values(first, optuna.trial.TrialState.FAIL)
        if wait_until(lambda: len(RunStore(tmp_path).list().runs) >= 2, "the worker to go on to the second trial"):
            stop.set()

    helper = threading.Thread(target=fail_the_first_then_stop, daemon=True)
    helper.start()
    study.work("lost", storage, tiny_data, RunStore(tmp_path), stop)
    helper.join(30)
    assert timed_out == [] and not helper.is_alive()
    first, second = runs_of(tmp_path, "lost")
    assert first.status == "failed" and "UpdateFinishedTrialError" in first.message
    assert second.status == "stopped"


def test_a_worker_still_raises_its_objectives_own_errors(tiny_data, tmp_path, monkeypatch):
    """Only a trial ended under the worker is passed over: a defect in the objective still ends the worker."""
    spec = study.define_study("own", TINY, validation_size=50)
    storage = study.open_storage(out=tmp_path, **FAST_HEARTBEAT)
    study.create_or_resume(spec, storage)

    def defect(self, trial):
        raise ValueError("a defect")

    monkeypatch.setattr(study.StudySpec, "suggest", defect)
    with pytest.raises(ValueError, match="a defect"):
        study.work("own", storage, tiny_data, RunStore(tmp_path))


def test_optuna_still_refuses_to_record_the_end_of_a_trial_ended_under_it(tmp_path):
    """A worker goes on after a trial another worker failed under it by catching the ValueError that optimize raises
    then (digitlab.study.trials.work). Optuna documents that telling a finished trial raises (Study.tell's
    skip_if_finished), not which error: this says when that changes."""
    storage = study.open_storage(f"sqlite:///{tmp_path / 'tell.db'}")
    found = optuna.create_study(study_name="tell", storage=storage)
    study_id = storage.get_study_id_from_name("tell")

    def ended_elsewhere(trial):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        raise RuntimeError("its run failed")  # as the objective's, whose next write to the ended trial fails

    try:
        found.optimize(ended_elsewhere, n_trials=1, catch=(RuntimeError,))
    except ValueError:
        return
    except Exception as err:
        pytest.fail(f"Optuna now raises {type(err).__name__}, not ValueError, when a trial has ended under optimize "
                    f"({err}): digitlab.study.trials.work must catch that instead, or such a worker crashes")
    pytest.fail("Optuna no longer raises when a trial has ended under optimize: digitlab.study.trials.work need not "
                "catch ValueError for it any more")


def test_a_trial_has_a_heartbeat_before_its_run_exists(tiny_data, tmp_path, monkeypatch):
    """Optuna's heartbeat thread beats concurrently with the objective: a worker killed before that first beat left
    a trial no stale check ever sees, stuck running (seen once in CI). The objective beats first, before the run."""
    import contextlib
    import sqlite3

    import optuna.study._optimize

    from digitlab import recorder

    database = tmp_path / "beat.db"
    spec = study.define_study("beat", TINY, validation_size=50, repeat=1)
    storage = study.open_storage(f"sqlite:///{database}", heartbeat_s=3600)
    study.create_or_resume(spec, storage)
    beats_at_run_start = []
    real_init = recorder.RunRecorder.__init__

    def counting_init(self, *args, **kwargs):
        with sqlite3.connect(database) as db:
            beats_at_run_start.append(db.execute("SELECT count(*) FROM trial_heartbeats").fetchone()[0])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(recorder.RunRecorder, "__init__", counting_init)
    # The race, decided against the worker: Optuna's own heartbeat thread has not beaten yet.
    monkeypatch.setattr(optuna.study._optimize, "get_heartbeat_thread", lambda *args: contextlib.nullcontext())
    study.work("beat", storage, tiny_data, RunStore(tmp_path))
    assert beats_at_run_start == [1]
