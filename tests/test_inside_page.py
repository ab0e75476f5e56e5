"""The Inside page through AppTest, with a stand-in for the drawing canvas."""


import pytest
import torch

from digitlab import inside
from digitlab.bench.strokes import render_digit
from tests.test_app import app_env, assert_clean, canvas, open_app, shipped  # noqa: F401  (fixtures)


def columns_text(at) -> str:
    return " ".join(m.value for m in at.markdown) + " " + " ".join(c.value for c in at.caption)


def test_a_drawing_shows_every_model_side_by_side(shipped, canvas):
    at = open_app("pages/inside.py")
    assert_clean(at)
    assert len(at.multiselect(key="inside.models").value) == 4
    text = columns_text(at)
    assert text.count("says **3**") >= 3
    assert "stem · conv · 32 × 28 × 28" in text and "block3 · residual block · 128 × 4 × 4" in text
    assert "fc1 · dense · 1024" in text
    assert len(at.get("plotly_chart")) == 4  # one embedding map per model
    neighbours = [h for h in at.get("html") if "inside-neighbours" in h.proto.body]
    assert len(neighbours) == 4 and all(h.proto.body.count("<figure") == 8 for h in neighbours)


def test_the_attribution_shown_first_is_the_default_method_and_a_choice_outlasts_another_view(shipped, canvas):
    at = open_app("pages/inside.py")
    assert_clean(at)
    assert at.selectbox(key="inside.method").value == inside.DEFAULT_METHOD == "occlusion"
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert captions.count("Occlusion for 3") >= 3
    at.selectbox(key="inside.method").set_value("integrated_gradients").run()
    for view in ("Perturb", "Inside"):
        at.query_params["inside.view"] = view  # the view is bound to the URL
        at.session_state["inside.view"] = view
        at.run()
    assert_clean(at)
    assert at.selectbox(key="inside.method").value == "integrated_gradients"


def test_gradcam_on_the_mlp_says_which_methods_apply_and_the_others_still_show_it(shipped, canvas):
    at = open_app("pages/inside.py")
    at.selectbox(key="inside.method").set_value("gradcam").run()
    assert_clean(at)
    assert any("saliency, integrated_gradients, occlusion" in i.value.replace("\\", "") for i in at.info)


def test_a_gradcam_that_is_zero_everywhere_says_why(shipped, canvas):
    canvas.image_data = render_digit(7)  # the shipped LeNet's Grad-CAM is zero on it (test_inside), the others' not
    at = open_app("pages/inside.py")
    at.selectbox(key="inside.method").set_value("gradcam").run()
    assert_clean(at)
    reasons = [c.value for c in at.caption if "Grad-CAM is zero everywhere" in c.value]
    assert len(reasons) == 1


def test_an_empty_canvas_asks_for_a_drawing(shipped, canvas):
    canvas.image_data = None
    at = open_app("pages/inside.py")
    assert_clean(at)
    assert any("Draw a digit" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_a_test_image_by_number_and_a_number_out_of_range(shipped, canvas):
    at = open_app("pages/inside.py")
    at.radio(key="inside.source").set_value("test").run()
    at.text_input(key="inside.test_index").set_value("100").run()
    assert "Enter a whole number from 0 to 99, got '100'." in columns_text(at)
    at.text_input(key="inside.test_index").set_value("7").run()
    assert_clean(at)
    assert "Test image #7" in columns_text(at) and len(at.get("plotly_chart")) == 4


def test_arriving_from_an_errors_link(shipped, canvas):
    at = open_app()
    at.switch_page("pages/inside.py")
    at.query_params["test"] = "4"
    at.query_params["run"] = "shipped-lenet"
    at.run()
    assert_clean(at)
    assert at.radio(key="inside.source").value == "test" and at.text_input(key="inside.test_index").value == "4"
    assert at.multiselect(key="inside.models").value[0] == "shipped-lenet"


def test_arriving_from_draw_shows_its_drawing_to_its_models(shipped, canvas):
    at = open_app()
    at.switch_page("pages/inside.py")
    drawing = torch.zeros(28, 28)
    drawing[4:24, 13:15] = 1.0  # a 1
    at.session_state["inside.arrival"] = {"source": "carried", "drawing": drawing.tolist(),
                                          "models": ["shipped-mlp", "shipped-lenet"]}
    at.run()
    assert_clean(at)
    assert at.radio(key="inside.source").value == "carried"
    assert at.multiselect(key="inside.models").value == ["shipped-mlp", "shipped-lenet"]
    assert len(at.get("plotly_chart")) == 2


def test_a_run_whose_weights_cannot_be_read_says_so_and_the_others_work(shipped, canvas, damaged_cnn):
    at = open_app("pages/inside.py")
    assert_clean(at)
    assert any("Cannot look inside" in e.value and "damaged" in e.value for e in at.error)
    assert columns_text(at).count("says **3**") >= 2


def test_without_mnist_neighbours_and_the_map_name_the_data_folder(shipped, canvas, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "no-mnist-here"))
    at = open_app("pages/inside.py")
    assert_clean(at)
    warnings = [w.value for w in at.warning if "Needs MNIST" in w.value]
    assert len(warnings) == 4 and all("no-mnist-here" in w for w in warnings)
    assert "pool2 · pool · 64 × 7 × 7" in columns_text(at)  # the feature maps still show
