"""The robustness lab through AppTest: the Inside page's Perturb and Adversarial views, and Compare's corruption
benchmark column, action and chart."""

import json

import pytest

from digitlab import robustness
from digitlab.dashboard.ui import handoff
from tests.test_app import app_env, assert_clean, canvas, open_app, shipped  # noqa: F401  (fixtures)
from tests.test_inside_page import columns_text


NAMES = {f"shipped-{m}": f"{m} (shipped)" for m in ("mlp", "cnn", "lenet", "resnet")}


def open_view(view: str, models: list[str] | None = None):
    """The Inside page opened straight on ``view`` (the Inside view's embeddings are not computed on the way)."""
    at = open_app()
    at.session_state["inside.view"] = view
    if models is not None:
        at.session_state[handoff.INSIDE_MODELS] = models
    return at.switch_page("pages/inside.py").run()


def figure(at, key: str) -> dict:
    [chart] = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id]
    return json.loads(chart.proto.spec)


def model_lines(spec: dict) -> list[str]:
    return [trace["name"] for trace in spec["data"] if trace.get("mode") == "lines+markers"]


def test_a_rotation_sweep_draws_one_curve_per_model(shipped, canvas):
    at = open_view("Perturb")
    assert_clean(at)
    assert at.selectbox(key="inside.perturb.transform").value == "rotation"
    assert sorted(model_lines(figure(at, "inside.perturb.chart"))) == sorted(NAMES.values())
    notes = columns_text(at)
    assert notes.count(" at first; ") + notes.count(" throughout") == 4  # where each model's answer changes
    assert not [s for s in at.selectbox if s.key == "inside.method"]  # the Inside view's settings: not here


def test_a_sweep_range_out_of_range_shows_the_fields_message(shipped, canvas):
    at = open_view("Perturb", ["shipped-mlp"])
    at.number_input(key="inside.perturb.low.rotation").set_value(-90.0).run()
    assert_clean(at)
    assert "Rotation runs from -60 to 60°; got -90." in columns_text(at)
    assert not at.get("plotly_chart")
    at.number_input(key="inside.perturb.low.rotation").set_value(-30.0).run()
    assert model_lines(figure(at, "inside.perturb.chart")) == [NAMES["shipped-mlp"]]


def test_moving_epsilon_changes_the_predictions(shipped, canvas):
    # Not the LeNet: PGD's 10 steps of ε/4 leave it at 3 on this drawing even at ε = 0.3 (FGSM makes it a 2).
    at = open_view("Adversarial", ["shipped-mlp", "shipped-cnn"])
    at.slider(key="inside.adversarial.epsilon").set_value(0.0).run()
    assert_clean(at)
    text = columns_text(at)
    assert text.count("still says **3**") == 2 and "now says" not in text
    at.radio(key="inside.adversarial.method").set_value("pgd").run()
    at.slider(key="inside.adversarial.epsilon").set_value(0.3).run()
    assert_clean(at)
    assert columns_text(at).count("now says") == 2


def test_the_accuracy_against_epsilon_curve_is_computed_on_request_and_then_shown(shipped, canvas,
                                                                                   monkeypatch):
    monkeypatch.setattr(robustness.attacks, "ATTACK_SUBSET", 30)  # of the tiny test set's 100: enough to draw the curve
    at = open_view("Adversarial", ["shipped-mlp", "shipped-lenet"])
    assert "not computed yet for mlp (shipped), lenet (shipped)" in columns_text(at).replace("\\", "")
    assert not [c for c in at.get("plotly_chart") if "adversarial" in c.proto.id]
    at.button(key="inside.adversarial.compute").click().run()
    assert_clean(at)
    spec = figure(at, "inside.adversarial.chart")
    assert model_lines(spec) == [NAMES["shipped-mlp"], NAMES["shipped-lenet"]]
    assert [len(t["y"]) for t in spec["data"]] == [len(robustness.EPSILONS)] * 2
    assert "on 30 fixed test images" in spec["layout"]["title"]["text"]
    assert not any(b.key == "inside.adversarial.compute" for b in at.button)


def test_read_only_mode_shows_no_way_to_start_a_computation(shipped, canvas, monkeypatch):
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    at = open_view("Adversarial", ["shipped-mlp"])
    assert at.button(key="inside.adversarial.compute").disabled
    at.switch_page("pages/compare.py").run()
    assert at.button(key="compare.robustness.compute").disabled


def test_a_run_whose_weights_cannot_be_read_says_so_and_the_others_still_sweep(shipped, canvas, damaged_cnn):
    at = open_view("Perturb")
    assert_clean(at)
    assert any("Cannot sweep" in e.value and "damaged" in e.value for e in at.error)
    assert len(model_lines(figure(at, "inside.perturb.chart"))) == 3
    at.query_params["inside.view"] = "Adversarial"  # the view is bound to the URL
    at.session_state["inside.view"] = "Adversarial"
    at.run()
    assert any("Cannot attack" in e.value for e in at.error) and columns_text(at).count("says **") >= 3


def test_compare_shows_a_dash_until_the_benchmark_is_computed_then_its_mean_and_bars(shipped):
    at = open_app("pages/compare.py")
    at.multiselect(key="compare.runs").set_value(["shipped-mlp", "shipped-lenet"]).run()
    assert_clean(at)
    table = at.table[0].value
    assert list(table["Corrupted mean accuracy"]) == [None, None] or table["Corrupted mean accuracy"].isna().all()
    assert "Not computed yet for 2 runs" in " ".join(c.value for c in at.caption)
    at.button(key="compare.robustness.compute").click().run()
    assert_clean(at)
    means = at.table[0].value["Corrupted mean accuracy"]
    assert means.notna().all() and ((0 <= means) & (means <= 1)).all()
    at.session_state["compare.view"] = "Corruptions"
    at.run()
    spec = figure(at, "compare.chart.corruptions")
    assert [t["name"] for t in spec["data"]] == [NAMES["shipped-mlp"], NAMES["shipped-lenet"]]
    assert len(spec["data"][0]["x"]) == len(robustness.CORRUPTIONS) + 2  # clean, each corruption, the mean


def test_without_mnist_compare_and_the_curve_name_the_data_folder(shipped, canvas, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "no-mnist-here"))
    at = open_app("pages/compare.py")
    assert_clean(at)
    assert any("no-mnist-here" in c.value for c in at.caption)
    at = open_view("Adversarial", ["shipped-mlp"])
    assert_clean(at)
    assert any("needs MNIST" in w.value and "no-mnist-here" in w.value for w in at.warning)
