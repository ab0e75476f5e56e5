import pytest
import torch

from digitlab.config import PRESETS
from digitlab.models import (
    OptionError,
    UnknownModelError,
    count_parameters,
    create_model,
    default_options,
    list_models,
    option_errors,
    parameter_count,
)
from digitlab.resnet import BasicBlock

# Every registered model with its defaults, plus every preset's model: a new model or preset is tested for free.
CASES = [(name, {}) for name in list_models()] + [
    (p.config.model, p.config.model_options) for p in PRESETS.values() if p.config.model_options
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_model_shapes_and_gradients(name, options):
    torch.manual_seed(0)
    model = create_model(name, **options).train()
    images = torch.randn(4, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} has a non-finite gradient"
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_single_image(name):
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_registry_lists_the_four_architectures():
    assert {"mlp", "cnn", "lenet", "resnet"} <= set(list_models())


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError) as err:
        create_model("transformer")
    for name in list_models():
        assert name in str(err.value)


def test_seed_architectures_have_the_write_ups_parameter_counts():
    # Seed 000's CNN: conv 1->8, 8->16 (3x3), fc 2304->64->10.
    assert count_parameters(create_model("cnn", channels=[8, 16], hidden=64)) == 80 + 1168 + 147520 + 650
    # Seed 001's LeNet-5: conv 6 and 16 at 5x5, fc 400-120-84-10.
    assert count_parameters(create_model("lenet")) == 156 + 2416 + 48120 + 10164 + 850
    # Seed 003's MLP 784-512-512-512-10.
    assert count_parameters(create_model("mlp")) == 401920 + 262656 + 262656 + 5130
    # Seed 004's net: conv 6@5x5, 16@2x2, 120@2x2, fc 120-84-10.
    assert count_parameters(create_model("lenet", variant="three_conv")) == 156 + 400 + 7800 + 10164 + 850


def test_options_change_the_model():
    plain = create_model("mlp", hidden=[64])
    assert count_parameters(plain) == 784 * 64 + 64 + 64 * 10 + 10
    with_bn = create_model("mlp", hidden=[64], batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in with_bn.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in create_model("lenet", dropout=0.3).modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in create_model("cnn", batch_norm=True).modules())


def test_cnn_valid_padding_and_a_5x5_first_conv_trim_the_map_as_the_fast_preset_says():
    # 28 -(5x5)-> 24 -(pool)-> 12 -(3x3)-> 10 -(pool)-> 5: fc 32 * 5 * 5 = 800 -> 256 -> 10.
    net = create_model("cnn", channels=[8, 32], first_kernel=5, padding="valid", pooling="each", hidden=256,
                       dropout=0.0, conv_dropout=0.0)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3)] and [c.padding for c in convs] == [(0, 0), (0, 0)]
    assert count_parameters(net) == (8 * 25 + 8) + (32 * 8 * 9 + 32) + (800 * 256 + 256) + (256 * 10 + 10)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # padding=same keeps each map's size before its pool, whatever the kernel: 28 -> 14 -> 7.
    same = create_model("cnn", channels=[8, 16], first_kernel=7, padding="same", pooling="each", hidden=32)
    assert [m for m in same.modules() if isinstance(m, torch.nn.Linear)][0].in_features == 16 * 7 * 7
    # The defaults keep every earlier run's layout: auto pads with pooling=each and not with pooling=end.
    assert count_parameters(create_model("cnn", channels=[8, 16], hidden=64, padding="auto")) == \
        count_parameters(create_model("cnn", channels=[8, 16], hidden=64, padding="valid"))


def test_resnet_has_projection_shortcuts_only_where_shapes_change():
    blocks = [m for m in create_model("resnet", stem=32, widths=[32, 64]).modules() if isinstance(m, BasicBlock)]
    assert isinstance(blocks[0].shortcut, torch.nn.Identity)
    assert isinstance(blocks[1].shortcut, torch.nn.Sequential)


@pytest.mark.parametrize("norm", ["group", "none"])
def test_resnet_without_batchnorm_reads_each_image_on_its_own(norm):
    # BatchNorm in training mode normalises over the batch, so an image's logits move with its batch-mates; with
    # GroupNorm or no norm they must not (the point of the option: clean digits' statistics do not reach a noisy one).
    torch.manual_seed(0)
    model = create_model("resnet", stem=8, widths=[8, 16], norm=norm).train()
    image = torch.randn(1, 1, 28, 28)
    alone = model(image)
    with_others = model(torch.cat([image, torch.randn(7, 1, 28, 28) * 3 + 2]))[:1]
    torch.testing.assert_close(with_others, alone, rtol=1e-4, atol=1e-5)
    batch_model = create_model("resnet", stem=8, widths=[8, 16], norm="batch").train()
    brighter_mate, darker_mate = torch.cat([image, image + 1]), torch.cat([image, image - 1])
    assert not torch.allclose(batch_model(brighter_mate)[:1], batch_model(darker_mate)[:1])
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))]
    assert all(isinstance(m, torch.nn.GroupNorm) for m in norms) and (len(norms) > 0) == (norm == "group")
    if norm == "none":  # no norm's shift to stand in for a bias, so every conv has its own
        assert all(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_resnet_default_keeps_the_layout_of_saved_runs():
    # The weight names the ResNet had before its norm option (printed from that code): runs saved then, the ResNet
    # shipped then among them, must still load, strictly, into today's default model.
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    block = [f"{part}.{key}" for conv, norm in [("conv1", "bn1"), ("conv2", "bn2")] for part, key in
             [(conv, "weight"), *[(norm, k) for k in bn]]]
    saved = ["0.weight", *[f"1.{k}" for k in bn], *[f"4.{k}" for k in block], *[f"5.{k}" for k in block],
             "5.shortcut.0.weight", *[f"5.shortcut.1.{k}" for k in bn], "8.weight", "8.bias"]
    assert list(create_model("resnet", stem=4, widths=[4, 8]).state_dict()) == saved


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("mlp", {"hidden": []}, "hidden"),
        ("mlp", {"dropout": 1.5}, "dropout"),
        ("cnn", {"channels": [8, 0]}, "channels"),
        ("cnn", {"pooling": "sideways"}, "pooling"),
        ("cnn", {"channels": [8, 8, 8, 8, 8], "pooling": "each"}, "channels"),
        ("cnn", {"padding": "full"}, "padding"),
        ("cnn", {"first_kernel": 4}, "first_kernel"),
        ("cnn", {"first_kernel": 9}, "first_kernel"),
        ("cnn", {"channels": [8, 8, 8, 8], "pooling": "each", "padding": "valid"}, "channels"),
        ("lenet", {"variant": "lenet7"}, "variant"),
        ("resnet", {"widths": "wide"}, "widths"),
        ("resnet", {"blocks_per_stage": 0}, "blocks_per_stage"),
        ("resnet", {"norm": "layer"}, "norm"),
    ],
)
def test_bad_options_name_the_option(name, options, field):
    with pytest.raises(OptionError) as err:
        create_model(name, **options)
    assert err.value.option == field
    assert field in str(err.value)
    assert option_errors(name, options) == {field: str(err.value)}


def test_unknown_option_lists_the_known_ones():
    errors = option_errors("lenet", {"width": 3})
    assert list(errors) == ["width"]
    for option in default_options("lenet"):
        assert option in errors["width"]


def test_byte_dropout_drops_the_right_share_and_keeps_the_mean():
    from digitlab.models import Dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    out = Dropout(0.25).train()(x)
    assert (out == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.equal(Dropout(0.25).eval()(x), x)
    # Every byte of each 64-bit draw is used; the top one (never above 127) must not be.
    for period in (7, 8):
        by_position = (out == 0).float()[: period * 20_000].view(-1, period).mean(0)
        assert torch.allclose(by_position, torch.full((period,), 0.25), atol=0.02), by_position


def test_byte_dropout_keeps_the_memory_layout():
    from digitlab.models import Dropout

    channels_last = torch.ones(8, 4, 6, 6).to(memory_format=torch.channels_last)
    out = Dropout(0.5).train()(channels_last)
    assert out.shape == (8, 4, 6, 6) and out.is_contiguous(memory_format=torch.channels_last)
    strided = torch.ones(8, 4, 6, 12)[..., ::2]  # neither layout: dropped on a dense copy
    assert (Dropout(0.5).train()(strided) == 0).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_flatten_is_nchw_order_and_sends_channels_last_gradients_back():
    from digitlab.models import Flatten

    x = torch.randn(4, 3, 5, 5).to(memory_format=torch.channels_last).requires_grad_()
    out = Flatten()(x)
    assert torch.equal(out, x.detach().contiguous().flatten(1))
    weights = torch.randn(4, 75)
    (out * weights).sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x.grad, weights.view(4, 3, 5, 5))
    with torch.no_grad():
        assert torch.equal(Flatten()(x), out)


def test_created_models_are_in_training_mode_throughout():
    for name in list_models():
        assert all(module.training for module in create_model(name).modules()), name


def test_the_benchmark_baseline_is_the_same_network_as_seed_cnn():
    from digitlab.bench import SeedNet

    assert count_parameters(SeedNet()) == count_parameters(create_model("cnn", **PRESETS["seed-cnn"].config.model_options))


@pytest.mark.parametrize("p", [0.998, 0.999, 0.9999, 0.001, 0.0001])
def test_a_dropout_the_byte_mask_cannot_do_is_refused_with_a_field_message(p):
    """The CPU mask drops whole 256ths: p >= 0.998 rounds to 256/256 (a division by zero), p < 0.002 to 0 (drops
    nothing). Either is refused, naming the field and the range, for every dropout option of every model."""
    for name, option in (("mlp", "dropout"), ("cnn", "dropout"), ("cnn", "conv_dropout"), ("lenet", "dropout"),
                         ("resnet", "dropout")):
        errors = option_errors(name, {option: p})
        assert list(errors) == [option], (name, option, errors)
        assert "0.002" in errors[option] and "0.997" in errors[option] and repr(p) in errors[option]


@pytest.mark.parametrize("p", [0.0, 0.002, 0.1, 0.5, 0.997])
def test_every_allowed_dropout_drops_its_share(p):
    from digitlab.models import Dropout

    assert option_errors("mlp", {"dropout": p}) == {}
    torch.manual_seed(0)
    out = Dropout(p).train()(torch.ones(400_000))
    assert torch.isfinite(out).all()
    assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.003)


def _seed_000_residual(in_ch: int, out_ch: int) -> int:
    """Seed 000's Residual block: two biased 3x3 convs, two BatchNorms, a biased 1x1 conv3 when channels change."""
    convs = 9 * in_ch * out_ch + out_ch + 9 * out_ch * out_ch + out_ch
    return convs + 4 * out_ch + (in_ch * out_ch + out_ch if in_ch != out_ch else 0)


# Only seed 002 states parameter counts (Tables 3.1 and 3.2); the others give layers, counted here by hand.
SEED_PRESET_COUNTS = {
    "seed-002-mlp": 109_184,  # seed 002, Table 3.1, without BN
    "seed-002-mlp-bn": 109_568,  # Table 3.1, with BN
    "seed-002-cnn": 2_143,  # Table 3.2, without BN
    "seed-002-cnn-bn": 2_159,  # Table 3.2, with BN
    "seed-cnn": 80 + 1168 + 147520 + 650,  # seed 000: conv 1->8, 8->16 at 3x3, fc 2304-64-10
    "seed-lenet": 156 + 2416 + 48120 + 10164 + 850,  # seed 001: conv 6, 16 at 5x5, fc 400-120-84-10
    "seed-mlp": 401920 + 262656 + 262656 + 5130,  # seed 003: 784-512-512-512-10
    "seed-003-cnn": 28 * 9 + 28 + 4732 * 128 + 128 + 128 * 10 + 10,  # seed 003: conv 1->28 at 3x3, fc 4732-128-10
    "seed-lenet3": 156 + 400 + 7800 + 10164 + 850,  # seed 004: conv 6@5x5, 16@2x2, 120@2x2, fc 120-84-10
    # Seed 000's Appendix C: biased stem conv 1->8 + BN, eight Residual blocks, fc 36*128 -> 10.
    "seed-resnet": 80 + 16 + sum(_seed_000_residual(i, o) for i, o in [(8, 16), (16, 16), (16, 32), (32, 32),
                                                                         (32, 64), (64, 64), (64, 128), (128, 128)])
                   + 4608 * 10 + 10,
}


@pytest.mark.parametrize("name", SEED_PRESET_COUNTS)
def test_seed_presets_have_the_write_ups_parameter_counts(name):
    from digitlab.config import PRESETS

    config = PRESETS[name].config
    assert parameter_count(config.model, config.model_options) == SEED_PRESET_COUNTS[name]


def test_seed_002_networks_differ_only_by_batch_norm():
    from digitlab.config import PRESETS

    for net in ("mlp", "cnn"):
        plain, with_bn = PRESETS[f"seed-002-{net}"].config, PRESETS[f"seed-002-{net}-bn"].config
        assert {**plain.model_options, "batch_norm": True} == with_bn.model_options
        assert plain.replace(model_options=with_bn.model_options) == with_bn
    assert not any(m.bias is not None for m in create_model("mlp", hidden=[128, 64], bias=False).modules()
                   if isinstance(m, torch.nn.Linear))


def test_the_shipped_resnet_still_loads_exactly(store_with_shipped):
    from digitlab.store import load_run

    loaded = load_run("shipped-resnet", store_with_shipped)  # a strict load_state_dict
    assert loaded.config.model_options.get("shortcut_bn", True) and not loaded.config.model_options.get("conv_bias")
    seed = create_model("resnet", stem=8, widths=[16, 32], blocks_per_stage=1, shortcut_bn=False, conv_bias=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for block in seed.modules()
                   if hasattr(block, "shortcut") for m in block.shortcut.modules())


def test_the_benchmark_baseline_epoch_runs_in_a_fresh_process(tiny_data_root):
    from digitlab.bench import EPOCH_REPEATS, dataloader_epoch_in_fresh_process

    seconds = dataloader_epoch_in_fresh_process(str(tiny_data_root))
    assert len(seconds) == EPOCH_REPEATS and all(s > 0 for s in seconds)
