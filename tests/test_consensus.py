import numpy as np
import torch

from digitlab.dashboard.consensus import Guess, agreement, guess_drawing, predict_all
from digitlab.models import create_model
from digitlab.bench.strokes import render_digit


def guess(model, digit, confidence):
    return Guess(model, digit, confidence, torch.zeros(10))


def test_agreement_wording():
    assert agreement([]) == (True, "")
    assert agreement([guess("cnn", 7, 0.91)]) == (True, "cnn says 7 (91%).")
    assert agreement([guess("cnn", 7, 0.91), guess("mlp", 7, 0.6)]) == (True, "All 2 models say 7.")
    assert agreement([guess("cnn", 7, 0.91), guess("mlp", 1, 0.55)]) == (False, "cnn says 7 (91%), mlp says 1 (55%)")


def test_the_majority_is_named_first():
    agree, sentence = agreement([guess("mlp", 1, 0.55), guess("cnn", 7, 0.91), guess("resnet", 7, 0.97)])
    assert not agree
    assert sentence == "cnn says 7 (91%), resnet says 7 (97%), mlp says 1 (55%)"


def test_predict_all_and_guess_drawing():
    torch.manual_seed(0)
    models = {"a": create_model("mlp", hidden=[16]).eval(), "b": create_model("lenet").eval()}
    image, guesses, ms = guess_drawing(models, render_digit(4))
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1
    assert [g.model for g in guesses] == ["a", "b"] and ms > 0
    for g in guesses:
        assert 0 <= g.digit <= 9 and g.confidence == g.probs.max().item()
    again = predict_all(models, image)
    assert [g.digit for g in again] == [g.digit for g in guesses]


def test_an_empty_canvas_gets_no_guesses():
    image, guesses, _ = guess_drawing({"a": create_model("mlp")}, np.zeros((280, 280, 4), np.uint8))
    assert image is None and guesses == []


def test_each_model_sees_the_drawing_scaled_the_way_it_was_trained():
    from digitlab.predict import predict
    from digitlab.preprocess import canvas_input

    torch.manual_seed(0)
    model = create_model("mlp", hidden=[16]).eval()
    canvas = render_digit(2)
    _, (as_unit, as_mnist), _ = guess_drawing({"u": model, "m": model}, canvas, scalings={"u": "unit"})
    assert torch.allclose(as_unit.probs, predict(model, canvas_input(canvas, "unit"))[0])
    assert torch.allclose(as_mnist.probs, predict(model, canvas_input(canvas, "mnist"))[0])
    assert not torch.allclose(as_unit.probs, as_mnist.probs)
