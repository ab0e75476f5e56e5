"""Shipping a run: scored on the test set and MNIST-C, it replaces its architecture's checkpoint only when it beats it
on both; every refusal says why and changes nothing."""

import json

import pytest

from digitlab import robustness, shipping
from digitlab.config import TrainConfig
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.shipping import Scores, ShipRefusedError, ship
from digitlab.predict import run_predictions
from digitlab.store import RUN_FILE, WEIGHTS_FILE, RunStore
from tests.conftest import PREDICT_MODULE
from tests.test_app import app_env, assert_clean, open_app, several_runs  # noqa: F401  (fixtures)

TINY = TrainConfig(model="mlp", model_options={"hidden": [16]}, lr=0.01, batch_size=64, epochs=1)


def trained(store: RunStore, data, seed: int):
    return record_training(store, TINY.replace(seed=seed), train(TINY.replace(seed=seed), data))


def folder_bytes(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_a_first_checkpoint_is_scored_and_shipped(store_root, tiny_data, monkeypatch):
    store = RunStore(store_root)
    record = trained(store, tiny_data, 0)
    report = ship(store, record.id, tiny_data)
    assert report.record.id == "shipped-mlp" and report.record.shipped and report.replaced is None
    assert not record.path.exists()
    assert 0 <= report.scores.corruption_mean <= 1 and report.scores.test_acc == pytest.approx(
        report.record.final["test_acc"])
    # What its pages show is computed now and kept beside it (committed with it), so that none computes it later.
    shipped = store.load("shipped-mlp")
    assert robustness.benchmark_cached(shipped, tiny_data).mean == pytest.approx(report.scores.corruption_mean)
    assert robustness.adversarial_curve_cached(shipped, tiny_data) is not None
    monkeypatch.setattr(PREDICT_MODULE, "predict", lambda *_: pytest.fail("its predictions were not cached"))
    assert run_predictions(shipped, tiny_data).accuracy == pytest.approx(report.scores.test_acc)


@pytest.fixture
def incumbent_and_candidate(store_root, tiny_data, monkeypatch):
    """A shipped MLP and a new completed MLP, with the scores each is given (by run folder) instead of measured."""
    store = RunStore(store_root)
    ship(store, trained(store, tiny_data, 0).id, tiny_data)
    candidate = trained(store, tiny_data, 1)
    given = {}
    monkeypatch.setattr(shipping, "scores", lambda run, data, progress=None: given[run.record.path.name])
    return store, candidate, given


@pytest.mark.parametrize("new", [Scores(0.99, 0.80), Scores(0.95, 0.90), Scores(0.97, 0.85)])
def test_a_run_not_better_on_both_scores_is_refused_and_nothing_changes(incumbent_and_candidate, tiny_data, new):
    store, candidate, given = incumbent_and_candidate
    given.update({"shipped-mlp": Scores(0.97, 0.85), candidate.id: new})
    before = (folder_bytes(store.root / "shipped-mlp"), folder_bytes(candidate.path))
    with pytest.raises(ShipRefusedError, match="does not beat shipped-mlp on") as refused:
        ship(store, candidate.id, tiny_data)
    assert "nothing was changed" in str(refused.value)
    assert (folder_bytes(store.root / "shipped-mlp"), folder_bytes(candidate.path)) == before


def test_a_run_better_on_both_replaces_the_checkpoint(incumbent_and_candidate, tiny_data):
    store, candidate, given = incumbent_and_candidate
    given.update({"shipped-mlp": Scores(0.97, 0.85), candidate.id: Scores(0.98, 0.86)})
    weights = (candidate.path / WEIGHTS_FILE).read_bytes()
    report = ship(store, candidate.id, tiny_data)
    assert report.replaced == Scores(0.97, 0.85) and report.scores == Scores(0.98, 0.86)
    assert (store.root / "shipped-mlp" / WEIGHTS_FILE).read_bytes() == weights
    assert json.loads((store.root / "shipped-mlp" / RUN_FILE).read_text())["config"]["seed"] == 1
    assert sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".")) == ["shipped-mlp"]


def test_weights_over_the_limit_an_unfinished_run_and_a_shipped_one_are_refused(store_root, tiny_data, monkeypatch):
    store = RunStore(store_root)
    record = trained(store, tiny_data, 0)
    monkeypatch.setattr(shipping, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(ShipRefusedError, match="must stay under"):
        ship(store, record.id, tiny_data)
    monkeypatch.undo()
    data = json.loads((record.path / RUN_FILE).read_text())
    (record.path / RUN_FILE).write_text(json.dumps({**data, "status": "stopped"}))
    with pytest.raises(ShipRefusedError, match="only completed runs"):
        ship(store, record.id, tiny_data)
    (record.path / RUN_FILE).write_text(json.dumps(data))
    shipped = ship(store, record.id, tiny_data).record
    with pytest.raises(ShipRefusedError, match="shipped checkpoint already"):
        ship(store, shipped.id, tiny_data)


def test_the_pages_show_the_new_checkpoint_and_nothing_cached_of_the_old(several_runs, tiny_data, monkeypatch):
    """Errors for shipped-mlp, then a far weaker MLP shipped in its place in the same server: Errors and Compare
    show the new weights' figures, not the old checkpoint's cached ones."""
    store = RunStore(several_runs)
    tiny = next(record for record in store.list().runs if record.name == "tiny mlp")
    expected = run_predictions(store.load(tiny.id), tiny_data)
    at = open_app("pages/errors.py")
    at.selectbox(key="errors.run").set_value("shipped-mlp").run()
    before = at.subheader[0].value
    given = {"shipped-mlp": Scores(0.5, 0.5), tiny.id: Scores(0.6, 0.6)}
    monkeypatch.setattr(shipping, "scores", lambda run, data, progress=None: given[run.record.path.name])
    ship(store, tiny.id, tiny_data)

    at.selectbox(key="errors.run").set_value("shipped-mlp").run()
    assert_clean(at)
    after = at.subheader[0].value
    wrong = int(after.split(" of ")[0].replace(",", ""))
    assert after != before and wrong == len(expected.misclassified), after
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="compare.runs").set_value(["shipped-mlp"]).run()
    assert_clean(at)
    (row,) = at.table[0].value.to_dict("records")
    # The record's accuracy (correct / total) and the predictions' (1 - wrong / total) may differ in the last bit.
    assert row["Run"] == "mlp (shipped)" and row["Test accuracy"] == pytest.approx(expected.accuracy, abs=1e-9), row
