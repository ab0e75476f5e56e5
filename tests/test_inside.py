"""digitlab.inside: feature maps, filters, attributions, nearest training images and the embedding map."""

from __future__ import annotations

import dataclasses
import functools
import statistics

import pandas as pd
import pytest
import torch
from safetensors import safe_open

from digitlab import deletion, inside
from digitlab.data import DataNotFoundError
from digitlab.models import create_model, list_models
from digitlab.preprocess import canvas_image
from digitlab.bench.strokes import pen_digits, render_digit
from digitlab.store import RunStore, load_run, save_weights
from tests.conftest import SHIPPED, real_data_root, refuse_writes_under

# A model with an input normalisation shows the image as its first layer is given it, before the rest.
INPUT_TAP = ("input", "normalised input", (1, 28, 28))
# Worked out by hand from the shipped configs (checkpoints/shipped-*/run.json), conv by conv:
# out = (in + 2 * padding - kernel) // stride + 1, and a 2x2 max-pool halves (rounding down).
SHIPPED_SHAPES = {
    # its input normalised; hidden 1024, 1024
    "mlp": [INPUT_TAP, ("fc1", "dense", (1024,)), ("fc2", "dense", (1024,)), ("output", "output", (10,))],
    # its input normalised; channels 32, 64, a 5x5 then a 3x3 conv, padded, pooling "each" (28 -> 14 -> 7), fc 256
    "cnn": [INPUT_TAP, ("conv1", "conv", (32, 28, 28)), ("pool1", "pool", (32, 14, 14)),
            ("conv2", "conv", (64, 14, 14)), ("pool2", "pool", (64, 7, 7)), ("fc1", "dense", (256,)),
            ("output", "output", (10,))],
    # LeNet-5, its input normalised: 5x5 conv padded 2 (28), pool (14), 5x5 conv (10), pool (5), fc 120, 84
    "lenet": [INPUT_TAP, ("conv1", "conv", (6, 28, 28)), ("pool1", "pool", (6, 14, 14)),
              ("conv2", "conv", (16, 10, 10)), ("pool2", "pool", (16, 5, 5)), ("fc1", "dense", (120,)),
              ("fc2", "dense", (84,)), ("output", "output", (10,))],
    # its input normalised; stem 32 (3x3 padded: 28), pool (14); stages 32 (14), 64 stride 2 (7), 128 stride 2
    # (4); global average pool
    "resnet": [INPUT_TAP, ("stem", "conv", (32, 28, 28)), ("stem pool", "pool", (32, 14, 14)),
               ("block1", "residual block", (32, 14, 14)), ("block2", "residual block", (64, 7, 7)),
               ("block3", "residual block", (128, 4, 4)), ("pool1", "pool", (128, 1, 1)),
               ("output", "output", (10,))],
}
# Other layouts of the same builders, on the weights of a shipped run of that architecture.
VARIANTS = {
    # unpadded 3x3 convs 32 (26), 64 (24), one pool at the end (12), fc 128
    ("cnn", "pooling end"): ({}, [("conv1", "conv", (32, 26, 26)), ("conv2", "conv", (64, 24, 24)),
                                  ("pool1", "pool", (64, 12, 12)), ("fc1", "dense", (128,)),
                                  ("output", "output", (10,))]),
    # 5x5 (24), pool (12), 2x2 stride 2 (6), pool (3), 2x2 stride 2 (1), fc 84
    ("lenet", "three_conv"): ({"variant": "three_conv"},
                              [("conv1", "conv", (6, 24, 24)), ("pool1", "pool", (6, 12, 12)),
                               ("conv2", "conv", (16, 6, 6)), ("pool2", "pool", (16, 3, 3)),
                               ("conv3", "conv", (120, 1, 1)), ("fc1", "dense", (84,)), ("output", "output", (10,))]),
}
# The image normalised per image first, as the model's first layer sees it, then the layers of the pooling-end CNN.
VARIANTS["cnn", "input_norm strokes"] = ({"input_norm": "strokes"},
                                         [INPUT_TAP, *VARIANTS["cnn", "pooling end"][1]])


@pytest.fixture
def runs(store_with_shipped):
    return {name: load_run(store_with_shipped / f"shipped-{name}") for name in list_models()}


def drawn(run, digit: int = 7) -> torch.Tensor:
    return inside.model_input(run, canvas_image(render_digit(digit)))


def described(maps) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(m.name, m.kind, m.shape) for m in maps]


@pytest.mark.parametrize("name", list_models())
def test_feature_maps_of_every_registered_architecture_have_the_shapes_worked_out_by_hand(runs, name):
    assert name in SHIPPED_SHAPES, f"work out {name}'s feature-map shapes by hand and add them here"
    maps = inside.feature_maps(runs[name], drawn(runs[name]))
    assert described(maps) == SHIPPED_SHAPES[name]
    output = maps[-1].values
    assert torch.allclose(output.sum(), torch.tensor(1.0)) and output.argmax().item() == 7
    for m in maps:
        if m.kind in ("conv", "pool", "residual block", "dense"):
            assert m.values.min() >= 0, f"{m.name} is read after its ReLU"


@pytest.mark.parametrize("variant", list(VARIANTS), ids=lambda v: f"{v[0]}-{v[1]}")
def test_feature_maps_of_other_layouts(runs, variant):
    options, expected = VARIANTS[variant]
    run = dataclasses.replace(runs[variant[0]], model=create_model(variant[0], **options).eval())
    assert described(inside.feature_maps(run, drawn(run))) == expected


def test_a_conv_map_is_its_conv_output_after_the_activation_even_when_pooled_before_it(runs):
    run = runs["cnn"]  # conv (its BatchNorm where it has one), max-pool, ReLU
    image = drawn(run)
    conv1 = next(m for m in inside.feature_maps(run, image) if m.kind == "conv")
    layers = list(run.model)
    first_conv = next(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d))
    conv_end = first_conv + 1 + isinstance(layers[first_conv + 1], torch.nn.BatchNorm2d)
    assert isinstance(layers[conv_end], torch.nn.MaxPool2d)
    with torch.inference_mode():  # the layers before it (an input normalisation), the conv, its BatchNorm
        expected = torch.relu(torch.nn.Sequential(*layers[:conv_end])(image))[0]
    assert torch.allclose(conv1.values, expected, atol=1e-5)


def test_filters(runs):
    # The shipped CNN's first layer is its input normalisation: its convs are layers 1 (5x5) and 4 (3x3).
    assert [(f.name, tuple(f.kernels.shape)) for f in inside.filters(runs["cnn"])] == [("1", (32, 5, 5)),
                                                                                       ("4", (64, 3, 3))]
    conv2 = runs["cnn"].model[4].weight
    assert torch.allclose(inside.filters(runs["cnn"])[1].kernels, conv2.mean(1))
    assert [(f.name, tuple(f.kernels.shape)) for f in inside.filters(runs["mlp"])] == [("fc1", (1024, 28, 28))]
    resnet = [f.name for f in inside.filters(runs["resnet"])]  # after its input normalisation too
    assert resnet[0] == "1" and "5.conv1" in resnet and not any("shortcut" in n for n in resnet)


@pytest.mark.parametrize("method", inside.METHODS)
def test_every_method_gives_a_28x28_map_for_the_predicted_class_or_a_target(runs, method):
    run = runs["lenet"]
    image = drawn(run, 4)  # not the 7: Grad-CAM is zero everywhere on it (the test below)
    predicted = inside.attribution(run, image, method)
    assert predicted.shape == (28, 28) and torch.isfinite(predicted).all() and predicted.abs().sum() > 0
    assert inside.empty_map_reason(method, predicted) is None
    assert torch.equal(inside.attribution(run, image, method, target=4), predicted)
    assert not torch.equal(inside.attribution(run, image, method, target=3), predicted)


def test_a_gradcam_that_is_zero_everywhere_is_gradcams_own_relu_and_says_so(runs):
    """On the shipped LeNet the pen 7's Grad-CAM is all zero. Without Grad-CAM's final ReLU the same map is negative
    wherever the conv layer is active, so the zero is the method's, not lost gradients (which would give 0 there)."""
    from captum.attr import LayerGradCam

    run = runs["lenet"]
    image = drawn(run, 7)
    assert int(run.model(image).argmax()) == 7
    cam = inside.attribution(run, image, "gradcam")
    assert cam.abs().sum() == 0
    _, layer = inside._gradcam_layer(run.model, image)
    unrectified = LayerGradCam(run.model, layer).attribute(image.clone().requires_grad_(True), target=7)
    assert unrectified.max() <= 0 and unrectified.min() < -1e-3
    assert "Grad-CAM is zero everywhere" in inside.empty_map_reason("gradcam", cam)


def test_gradcam_on_an_mlp_names_the_methods_that_apply(runs):
    with pytest.raises(inside.AttributionError, match="saliency, integrated_gradients, occlusion"):
        inside.attribution(runs["mlp"], drawn(runs["mlp"]), "gradcam")
    with pytest.raises(inside.AttributionError, match="known: saliency"):
        inside.attribution(runs["mlp"], drawn(runs["mlp"]), "lime")
    with pytest.raises(inside.AttributionError, match="target must be a digit"):
        inside.attribution(runs["mlp"], drawn(runs["mlp"]), "saliency", target=10)


def test_integrated_gradients_add_up_to_the_score_difference_from_a_black_canvas(runs):
    """Completeness: the attributions sum to f(input) - f(baseline), up to the 50-step approximation. On a model
    without an input normalisation: one that scales each image to std 1 answers the same along nearly all the path
    from black, and 50 steps sample its start too coarsely (the shipped LeNet's sum: 3.93 against a gap of 3.57)."""
    run = runs["mlp"]
    image, black = drawn(run), inside.model_input(run, torch.zeros(28, 28))
    with torch.inference_mode():
        gap = (run.model(image)[0, 7] - run.model(black)[0, 7]).item()
    assert inside.attribution(run, image, "integrated_gradients").sum().item() == pytest.approx(gap, rel=0.05)


@pytest.mark.parametrize("method", inside.METHODS)
def test_attributions_of_a_batch_are_each_image_s_own(runs, method):
    run = runs["lenet"]
    images = torch.cat([drawn(run, digit) for digit in (2, 7, 9)])
    one_by_one = torch.stack([inside.attribution(run, image[None], method) for image in images])
    assert torch.allclose(inside.attributions(run, images, method), one_by_one, atol=1e-5)
    assert torch.allclose(inside.attributions(run, images, method, targets=(1, 1, 1))[1],
                          inside.attribution(run, images[1:2], method, target=1), atol=1e-5)
    with pytest.raises(inside.AttributionError, match="got 2 targets for 3 inputs"):
        inside.attributions(run, images, method, targets=[1, 2])


SHIPPED_NAMES = ("mlp", "cnn", "lenet", "resnet")
APPLICABLE = [(name, method) for name in SHIPPED_NAMES for method in inside.METHODS
              if (name, method) != ("mlp", "gradcam")]  # Grad-CAM needs a conv layer


@pytest.fixture(scope="module")
def deletion_figures(request):
    """(which digits, figures): figures(name, method) is the mean drop in the probability of the shipped model's
    answer when the 10% of pixels the method ranks highest are removed, figures(name) when 10% at random are; each
    worked out once for the module. The first 30 real test digits where DIGITLAB_DATA holds MNIST, else 30
    pen-stroke digits like those drawn on the Draw page."""
    if real_data_root() is None:
        which, images = "pen strokes", pen_digits(3)
    else:
        which, images = "real", request.getfixturevalue("real_data").test_images[:30].float() / 255
    runs = {name: RunStore(SHIPPED).load(f"shipped-{name}") for name in SHIPPED_NAMES}

    @functools.cache
    def figures(name: str, method: str | None = None) -> float:
        if method is None:
            return deletion.random_deletion_drop(runs[name], images)
        return deletion.deletion_drop(runs[name], images, method)

    return which, figures


# Plain gradients fail the deletion test on the robust ResNet: on the 30 real digits removing saliency's top 10%
# lowers p(answer) by -0.003, 10% at random by 0.005 (every other method: 0.16-0.75). Strict, so that it is seen the
# day saliency passes again; the pen-stroke digits (no MNIST) are another set, on which it may pass.
SALIENCY_FAILS = pytest.mark.xfail(real_data_root() is not None, strict=True,
                                   reason="saliency is no better than random pixels on the shipped ResNet")
DELETION_CASES = [pytest.param(*case, marks=SALIENCY_FAILS) if case == ("resnet", "saliency") else case
                  for case in APPLICABLE]


@pytest.mark.parametrize(("name", "method"), DELETION_CASES)
def test_removing_the_pixels_an_attribution_ranks_highest_hurts_the_answer_more_than_removing_pixels_at_random(
        deletion_figures, name, method):
    """The deletion test: the pixels a method ranks highest matter more to the model than as many picked at random."""
    which, figures = deletion_figures
    ranked, at_random = figures(name, method), figures(name)
    assert ranked > at_random, (f"shipped-{name} on {which} digits: removing {method}'s top 10% lowers the answer's "
                                f"probability by {ranked:.3f}, 10% at random by {at_random:.3f}")


def test_the_default_method_does_best_on_the_deletion_test(deletion_figures):
    """Averaged over the shipped architectures it applies to (Grad-CAM: all but the MLP)."""
    which, figures = deletion_figures
    means = {method: statistics.mean(figures(n, m) for n, m in APPLICABLE if m == method) for method in inside.METHODS}
    assert max(means, key=means.get) == inside.DEFAULT_METHOD, f"{which} digits: {means}"


def test_deleting_every_pixel_is_the_drop_to_a_blank_canvas(runs):
    run, images = runs["cnn"], pen_digits(1)
    with torch.inference_mode():
        before = torch.softmax(run.model(inside.model_input(run, images)), 1)
        blank = torch.softmax(run.model(inside.model_input(run, torch.zeros(1, 28, 28))), 1)[0]
    answers = before.argmax(1)
    expected = (before.gather(1, answers[:, None])[:, 0] - blank[answers]).mean().item()
    assert deletion.deletion_drop(run, images, "saliency", fraction=1.0) == pytest.approx(expected, abs=1e-6)
    assert deletion.random_deletion_drop(run, images, fraction=1.0) == pytest.approx(expected, abs=1e-6)
    assert deletion.random_deletion_drop(run, images, seed=3) == deletion.random_deletion_drop(run, images, seed=3)
    with pytest.raises(ValueError, match="fraction must be .* got 0"):
        deletion.deletion_drop(run, images, "saliency", fraction=0)
    with pytest.raises(ValueError, match=r"expected images \(N, 28, 28\).*got \(10, 1, 28, 28\)"):
        deletion.deletion_drop(run, images[:, None], "saliency")
    with pytest.raises(ValueError, match="draws must be a whole number of at least 1, got 0"):
        deletion.random_deletion_drop(run, images, draws=0)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation, ties given their average rank (Grad-CAM's ReLU zeroes whole regions)."""
    ranks = [torch.tensor(pd.Series(x.flatten().numpy()).rank().to_numpy()) for x in (a, b)]
    return torch.corrcoef(torch.stack(ranks))[0, 1].item()


def randomised(run):
    """The run with every layer re-initialised (Adebayo et al. 2018's model randomisation test)."""
    model = create_model(run.config.model, **run.config.model_options).eval()
    torch.manual_seed(0)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return dataclasses.replace(run, model=model)


@pytest.mark.parametrize("name", ["mlp", "cnn", "lenet", "resnet"])
def test_randomising_the_weights_changes_the_saliency_map(runs, name):
    run, random_run = runs[name], randomised(runs[name])
    for digit in range(10):
        image = drawn(run, digit)
        trained = inside.attribution(run, image, "saliency", target=digit)
        random = inside.attribution(random_run, image, "saliency", target=digit)
        assert spearman(trained, random) < 0.5, f"{name} on a {digit}"


@pytest.mark.parametrize("name", ["cnn", "lenet", "resnet"])
def test_randomising_the_weights_changes_the_gradcam_map(runs, name):
    """Over the ten digits, as Adebayo et al. aggregate over images: Grad-CAM's 4x4 to 7x7 maps are coarse, and on
    single digits the rank correlation ranges from -0.4 to 0.9 (resnet on a 2). A map that Grad-CAM's ReLU zeroes
    everywhere (no positive evidence at that layer) has no ranks: it counts as uncorrelated."""
    run, random_run = runs[name], randomised(runs[name])
    correlations = []
    for digit in range(10):
        image = drawn(run, digit)
        trained = inside.attribution(run, image, "gradcam", target=digit)
        random = inside.attribution(random_run, image, "gradcam", target=digit)
        constant = trained.min() == trained.max() or random.min() == random.max()
        correlations.append(0.0 if constant else spearman(trained, random))
    assert sum(correlations) / len(correlations) < 0.5, correlations


# --- embeddings --------------------------------------------------------------------------------------------------


def train_input(run, data, index: int) -> torch.Tensor:
    return inside.model_input(run, data.train_images[index].float() / 255)


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_training_image_is_its_own_nearest_neighbour(runs, tiny_data, cache_folder):
    run = runs["cnn"]
    embeddings = inside.training_embeddings(run, tiny_data)
    assert (run.record.path / "inside-train.safetensors").is_file()
    for index in (0, 17, 299):
        nearest = inside.nearest_training_images(run, train_input(run, tiny_data, index), k=8, data=tiny_data,
                                                 embeddings=embeddings)
        assert len(nearest) == 8 and nearest[0].index == index and nearest[0].similarity >= 0.999
        assert nearest[0].label == tiny_data.train_labels[index].item()
        assert [n.similarity for n in nearest] == sorted((n.similarity for n in nearest), reverse=True)
    with pytest.raises(ValueError, match="k must be a whole number from 1 to 300"):
        inside.nearest_training_images(run, train_input(run, tiny_data, 0), k=0, data=tiny_data)


def cached_sha(path) -> str:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["weights_sha256"]


def test_a_stale_cache_is_recomputed_never_used(runs, tiny_data, cache_folder):
    run = runs["cnn"]
    cache = run.record.path / "inside-train.safetensors"
    before = inside.training_embeddings(run, tiny_data).features
    assert inside.embeddings_cached(run, tiny_data)
    model = run.model
    with torch.no_grad():
        model[-1].weight.mul_(0.5)  # the last layer: the penultimate features stay, the predictions change
        first_conv = next(m for m in model if isinstance(m, torch.nn.Conv2d))
        first_conv.weight.mul_(2.0)  # the first conv: the features change
    save_weights(model, run.record.weights_path)
    changed = load_run(run.record.path)
    assert changed.weights_sha256 != run.weights_sha256
    assert not inside.embeddings_cached(changed, tiny_data)
    after = inside.training_embeddings(changed, tiny_data).features
    assert not torch.allclose(after, before, atol=1e-3)
    assert cached_sha(cache) == changed.weights_sha256
    stale_map = inside.embedding_map(run, tiny_data)
    assert not torch.equal(inside.embedding_map(changed, tiny_data).xy, stale_map.xy)


def test_a_corrupt_cache_is_recomputed(runs, tiny_data, cache_folder):
    run = runs["lenet"]
    good = inside.training_embeddings(run, tiny_data).features
    cache = run.record.path / "inside-train.safetensors"
    for damage in (b"not a safetensors file", cache.read_bytes()[:200]):
        cache.write_bytes(damage)
        assert not inside.embeddings_cached(run, tiny_data)
        assert torch.allclose(inside.training_embeddings(run, tiny_data).features, good)
        assert cached_sha(cache) == run.weights_sha256


def test_a_read_only_run_folder_caches_in_the_cache_folder(runs, tiny_data, cache_folder, monkeypatch):
    run = runs["resnet"]
    refuse_writes_under(monkeypatch, run.record.path)
    inside.training_embeddings(run, tiny_data)
    inside.embedding_map(run, tiny_data)
    assert not list(run.record.path.glob("inside-*"))
    assert sorted(p.name for p in (cache_folder / run.weights_sha256).iterdir()) == ["map.safetensors",
                                                                                     "train.safetensors"]
    assert inside.embeddings_cached(run, tiny_data) and inside.map_cached(run, tiny_data)


def test_the_embedding_map(runs, tiny_data, cache_folder):
    run = runs["cnn"]
    first = inside.embedding_map(run, tiny_data)
    n = len(tiny_data.test_labels)
    assert first.xy.shape == (n, 2) and first.predicted.shape == (n,) and torch.equal(first.labels,
                                                                                      tiny_data.test_labels)
    assert (first.predicted != first.labels).any()  # the tiny test set mislabels every 25th image
    assert inside.map_cached(run, tiny_data)
    again = inside.embedding_map(run, tiny_data)
    assert torch.equal(again.xy, first.xy) and torch.equal(again.predicted, first.predicted)
    # A test image lands where the map put it (the map is stored in fp16).
    x, y = first.place(run, inside.model_input(run, tiny_data.test_images[5].float() / 255))
    assert (x, y) == pytest.approx(tuple(first.xy[5].tolist()), abs=0.05 * first.xy.abs().max().item())


def test_without_mnist_neighbours_and_the_map_name_the_data_folder(runs, tmp_path, monkeypatch, cache_folder):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "no-mnist-here"))
    run = runs["cnn"]
    for call in (lambda: inside.nearest_training_images(run, drawn(run)), lambda: inside.embedding_map(run)):
        with pytest.raises(DataNotFoundError, match="no-mnist-here"):
            call()
    assert len(inside.feature_maps(run, drawn(run))) == len(SHIPPED_SHAPES["cnn"])  # the rest works
