import numpy as np
import pytest
import torch

from digitlab.data import MNIST_MEAN, MNIST_STD
from digitlab.predict import predict
from digitlab.preprocess import fit_digit, ink_image, preprocess_canvas
from digitlab.store import RunStore, load_model
from digitlab.bench.strokes import render_digit
from tests.conftest import SHIPPED

BLANK = -MNIST_MEAN / MNIST_STD

# How people draw on a 280x280 canvas: (box, stroke width).
VARIANTS = {
    "normal": ((70, 40, 210, 240), 18),
    "small in a corner": ((8, 10, 58, 75), 18),
    "small, bottom right, thin": ((215, 200, 262, 268), 8),
    "huge": ((4, 2, 276, 278), 18),
    "thin": ((70, 40, 210, 240), 5),
    "thick": ((60, 30, 220, 250), 40),
}


@pytest.fixture(scope="module")
def shipped_cnn():
    return load_model(RunStore(SHIPPED).read("shipped-cnn"))


def test_empty_canvas_gives_none():
    assert preprocess_canvas(np.zeros((280, 280, 4), np.uint8)) is None
    opaque_black = np.zeros((280, 280, 4), np.uint8)
    opaque_black[..., 3] = 255
    assert preprocess_canvas(opaque_black) is None


def test_nearly_empty_canvas_gives_none():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[100:104, 100:104] = 255  # a 4x4 speck
    assert preprocess_canvas(canvas) is None
    faint = render_digit(7)
    faint[..., 3] = 20  # ink below the threshold: anti-aliasing dust
    assert preprocess_canvas(faint) is None


def test_output_is_a_normalised_centred_28x28_batch():
    out = preprocess_canvas(render_digit(0, box=(10, 10, 80, 110)))
    assert out.shape == (1, 1, 28, 28) and out.dtype == torch.float32
    image = out[0, 0] * MNIST_STD + MNIST_MEAN  # back to 0..1
    assert image.min().item() == pytest.approx(0, abs=1e-5) and image.max().item() == pytest.approx(1, abs=1e-5)
    # The ink fits a 20 px box, like MNIST's.
    rows = (image > 0.1).any(1).nonzero().flatten()
    cols = (image > 0.1).any(0).nonzero().flatten()
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1).item() <= 20
    # Its centre of mass is within a pixel of the centre.
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    total = image.sum()
    assert abs((image * ys).sum() / total - 13.5) <= 1 and abs((image * xs).sum() / total - 13.5) <= 1


def test_position_and_size_do_not_change_the_result():
    small = preprocess_canvas(render_digit(3, box=(5, 5, 75, 105)))
    large = preprocess_canvas(render_digit(3, box=(40, 20, 250, 270), stroke_width=50))
    assert torch.nn.functional.cosine_similarity(small.flatten(), large.flatten(), dim=0) > 0.8


def test_aspect_ratio_is_kept_for_a_one():
    image = fit_digit(ink_image(render_digit(1)))
    cols = (image > 0.1).any(0).nonzero().flatten()
    assert cols[-1] - cols[0] + 1 <= 8  # a thin upright stroke, not stretched into a square


def test_transparent_and_black_backgrounds_agree():
    assert torch.allclose(preprocess_canvas(render_digit(5)), preprocess_canvas(render_digit(5, background="black")))


def test_rgb_without_alpha_and_bad_shapes():
    rgb = render_digit(4, background="black")[..., :3]
    assert preprocess_canvas(rgb).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="RGBA"):
        preprocess_canvas(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("digit", [0, 1, 7, 2, 3, 4])
def test_the_shipped_cnn_reads_drawn_digits(shipped_cnn, digit, variant):
    box, width = VARIANTS[variant]
    probs = predict(shipped_cnn, preprocess_canvas(render_digit(digit, box=box, stroke_width=width)))[0]
    assert probs.argmax().item() == digit, f"{digit} drawn {variant} read as {probs.argmax().item()}: {probs}"
