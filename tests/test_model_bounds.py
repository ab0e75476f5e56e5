"""Every model option is bounded, and so is the total: one form entry cannot take the server down. Validation
builds nothing real: shapes and counts come from the meta device."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from digitlab.config import TrainConfig
from digitlab.models import count_parameters, create_model, max_parameters, option_errors, parameter_count


class RealAllocations(TorchDispatchMode):
    """Records the size of every tensor that an operation creates on a real device (not the meta device)."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.sizes += [t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and not t.is_meta]
        return out


# The largest of each architecture that the bounds allow (the parameter cap included).
LARGEST = {
    "mlp": {"hidden": [4096, 4096, 4096]},
    "cnn": {"channels": [1024, 1024, 1024, 1024], "hidden": 4096, "pooling": "each"},
    "lenet": {},
    "resnet": {"stem": 1024, "widths": [1024], "blocks_per_stage": 2},
}


@pytest.mark.parametrize("name", list(LARGEST))
def test_validating_the_largest_allowed_model_allocates_no_weights(name):
    config = TrainConfig(model=name, model_options=LARGEST[name])
    with RealAllocations() as seen:
        errors = config.validate()
    assert errors == {}
    assert max(seen.sizes, default=0) < 10_000, f"{name}: a tensor of {max(seen.sizes):,} elements was allocated"


@pytest.mark.parametrize("name", list(LARGEST))
def test_parameter_count_from_the_meta_device_is_the_real_count(name):
    small = {"mlp": {"hidden": [64, 32]}, "cnn": {"channels": [8, 16]}, "lenet": {}, "resnet": {"widths": [8, 16]}}
    assert parameter_count(name, small[name]) == count_parameters(create_model(name, **small[name]))


def test_a_model_over_the_parameter_cap_is_refused_with_its_count_and_the_cap():
    options = {"hidden": [4096] * 6}
    errors = option_errors("mlp", options)
    count = 784 * 4096 + 4096 + 5 * (4096 * 4096 + 4096) + 4096 * 10 + 10
    assert list(errors) == ["model_options"]
    assert f"{count:,}" in errors["model_options"] and "50,000,000" in errors["model_options"]


def test_the_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DIGITLAB_MAX_PARAMETERS", "100000")
    assert max_parameters() == 100_000
    assert "the cap is 100,000" in option_errors("mlp", {"hidden": [512]})["model_options"]


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("mlp", {"hidden": [64] * 9}, "hidden"),
        ("mlp", {"hidden": [8192]}, "hidden"),
        ("cnn", {"channels": [2048]}, "channels"),
        ("cnn", {"hidden": 16384}, "hidden"),
        ("cnn", {"channels": [8] * 9}, "channels"),
        ("resnet", {"widths": [2048]}, "widths"),
        ("resnet", {"widths": [8] * 7, "downsample": False}, "widths"),
        ("resnet", {"stem": 4096}, "stem"),
    ],
)
def test_each_list_and_width_is_bounded(name, options, field):
    errors = option_errors(name, options)
    assert field in errors, errors
