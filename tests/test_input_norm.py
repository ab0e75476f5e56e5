"""digitlab.input_norm: per-image normalisation as a model's first layer, and the "distort" and "elastic"
augmentations."""

import math

import pytest
import torch
import torch.nn.functional as F

from digitlab.bench.strokes import pen_digits
from digitlab.data import BACKGROUND, ELASTIC_STD_PX, augment, elastic_field, normalize, scale_pixels
from digitlab.input_norm import INPUT_NORMS, InputNormalization, background
from digitlab.models import OptionError, create_model, default_options, list_models, option_choices, option_errors

DIGITS = pen_digits(3).unsqueeze(1)  # (30, 1, 28, 28) on 0..1: pen strokes 14 to 22 px wide on a 280 px canvas


def grey_page(images: torch.Tensor) -> torch.Tensor:
    """A page half as bright as the ink: what a drawing photographed on grey paper gives."""
    return (images + 0.5).clamp(max=1.0)


def shaded_page(images: torch.Tensor) -> torch.Tensor:
    """A page lit from one side: a ramp from black to 0.6 across the image, the ink on top."""
    ramp = torch.linspace(0.0, 0.6, 28).view(1, 1, 1, 28)
    return (images + ramp).clamp(max=1.0)


def gap(first: torch.Tensor, second: torch.Tensor) -> float:
    """The mean absolute difference per image, on the scale of the normalised images."""
    return (first - second).abs().mean().item()


@pytest.mark.parametrize("page", [grey_page, shaded_page])
def test_strokes_normalisation_reads_a_grey_or_shaded_page_as_a_black_one(page):
    clean, shifted = scale_pixels(DIGITS), scale_pixels(page(DIGITS))
    strokes = InputNormalization("strokes")
    standardized = InputNormalization("standardize")
    # The raw inputs differ by far more than the normalised ones: the page is gone, the strokes stay.
    assert gap(strokes(clean), strokes(shifted)) < 0.2 * gap(clean / clean.std(), shifted / clean.std())
    # Removing the background does more than standardising alone, which cannot flatten a ramp.
    if page is shaded_page:
        assert gap(strokes(clean), strokes(shifted)) < 0.5 * gap(standardized(clean), standardized(shifted))


def test_standardisation_is_blind_to_contrast_and_level_of_the_whole_image():
    images = scale_pixels(DIGITS)
    layer = InputNormalization("standardize")
    assert torch.allclose(layer(images), layer(0.3 * images + 2.0), atol=1e-4)
    out = layer(images)
    assert torch.allclose(out.mean((1, 2, 3)), torch.zeros(len(out)), atol=1e-5)
    assert torch.allclose(out.std((1, 2, 3)), torch.ones(len(out)), atol=1e-4)


def test_the_background_keeps_out_pen_strokes_but_holds_a_wide_bar():
    image = torch.zeros(1, 1, 28, 28)
    image[..., 10:18, 12:15] = 1.0  # a 3 px wide stroke: narrower than the window, so not background
    image[..., :, :7] = 1.0  # a 7 px bar at the left side, as MNIST-C's stripe makes: background
    found = background(image)
    assert found[..., 10:18, 12:15].max() == 0.0
    assert torch.equal(found[..., :, :7], torch.ones(1, 1, 28, 7))
    assert torch.equal((image - found)[..., 10:18, 12:15], torch.ones(1, 1, 8, 3))


def test_a_blank_image_stays_blank_rather_than_amplifying_its_last_bits():
    blank = normalize(torch.zeros(2, 28, 28, dtype=torch.uint8))
    blank[1, 0, 5, 5] += 1e-4  # a stray bit, far below any ink
    for kind in INPUT_NORMS[1:]:
        assert InputNormalization(kind)(blank).abs().max() < 1e-2


@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_an_input_norm_as_its_first_layer(name):
    assert default_options(name)["input_norm"] == "none"
    assert option_choices(name)["input_norm"] == INPUT_NORMS
    plain = create_model(name)
    normalised = create_model(name, input_norm="strokes")
    assert isinstance(normalised[0], InputNormalization) and not isinstance(plain[0], InputNormalization)
    assert sum(p.numel() for p in normalised.parameters()) == sum(p.numel() for p in plain.parameters())
    # The weights of the plain model fit the normalised one layer for layer, one index further on.
    torch.nn.Sequential(*list(normalised)[1:]).load_state_dict(plain.state_dict())  # shares the layers
    images = scale_pixels(DIGITS[:4])
    with torch.no_grad():
        assert torch.allclose(normalised.eval()(images), plain.eval()(normalised[0](images)), atol=1e-5)


def test_an_unknown_input_norm_names_the_choices():
    assert "input_norm must be one of none, standardize, strokes" in option_errors("cnn", {"input_norm": "fog"})[
        "input_norm"]
    with pytest.raises(OptionError, match="standardize"):
        create_model("mlp", input_norm="contrast")


def test_distort_moves_reshapes_rethickens_and_adds_noise_to_half_the_images():
    images = scale_pixels(DIGITS.repeat(4, 1, 1, 1))  # 120 images
    out = augment(images, "distort", torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert torch.equal(out, augment(images, "distort", torch.Generator().manual_seed(0)))
    # Noise: the top rows hold no ink, so what is not black there is noise. Half the images have some.
    top_rows = (out[:, :, :3] - BACKGROUND).flatten(1)
    noisy = top_rows.abs().amax(1) > 1e-4
    assert 0.3 < noisy.float().mean() < 0.7
    assert top_rows[noisy].std() > 0.1 / 0.3081 * 0.5  # std up to 0.3 on 0..1, so about 0.15 on average
    # Ink of the noiseless images against the originals: some strokes thicker, some thinner, most about the same.
    ink = (out[~noisy] - BACKGROUND).sum((1, 2, 3)) / (images[~noisy] - BACKGROUND).sum((1, 2, 3))
    assert (ink > 1.3).any() and (ink < 0.7).any()
    assert 0.7 < ink.median() < 1.3


def test_the_elastic_field_is_smooth_and_moves_pixels_its_set_distance():
    field = elastic_field(4000, 28, torch.Generator().manual_seed(0)) * 14  # (N, 28, 28, 2) in pixels
    inside = field[:, 8:20, 8:20]
    assert inside.std().item() == pytest.approx(ELASTIC_STD_PX, rel=0.1)

    def correlation(first: torch.Tensor, second: torch.Tensor) -> float:
        return torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()

    # Smooth: a pixel moves with its neighbour (white noise would give 0), not with one 16 px away.
    assert correlation(field[:, 10:18, 10], field[:, 10:18, 11]) > 0.9
    assert correlation(field[:, 10:18, 6], field[:, 10:18, 22]) < 0.2
    assert correlation(field[..., 0], field[..., 1]) < 0.1  # across and down drawn apart


def test_elastic_bends_the_distorted_digits_and_keeps_their_ink():
    images = scale_pixels(DIGITS.repeat(4, 1, 1, 1))
    bent = augment(images, "elastic", torch.Generator().manual_seed(0))
    assert torch.equal(bent, augment(images, "elastic", torch.Generator().manual_seed(0)))
    assert gap(bent, augment(images, "distort", torch.Generator().manual_seed(0))) > 0.05
    ink = (bent - BACKGROUND).clamp(min=0).sum((1, 2, 3)) / (images - BACKGROUND).sum((1, 2, 3))
    assert 0.7 < ink.median() < 1.3


def test_shift_rotate_draws_and_moves_as_before_distort_so_old_runs_replay():
    """The augmentation of the commit before "distort", written out: shift, then angle, from the same generator."""
    images = scale_pixels(DIGITS[:8])
    generator = torch.Generator().manual_seed(3)
    shift = (torch.rand(8, 2, generator=generator) * 2 - 1) * 2.0 * 2 / 28
    angle = (torch.rand(8, generator=generator) * 2 - 1) * math.radians(10.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    before = F.grid_sample(images - BACKGROUND, grid, align_corners=False) + BACKGROUND
    assert torch.allclose(augment(images, "shift_rotate", torch.Generator().manual_seed(3)), before, atol=1e-6)
