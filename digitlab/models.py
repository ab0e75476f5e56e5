"""Model registry: every architecture takes a normalised (B, 1, 28, 28) batch and returns (B, 10) logits.

New architectures register themselves with ``@register("name")``; the tests are parametrised over
``list_models()``, so a registered model is tested for free.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from digitlab.input_norm import INPUT_NORMS, InputNormalization

NUM_CLASSES = 10
# Bounds that give "the largest model the form allows" a definite size: widths of a layer, layers in a list, and
# parameters in all (200 MB of fp32 weights by default; DIGITLAB_MAX_PARAMETERS moves it).
MAX_DENSE_WIDTH = 4096
MAX_CNN_HIDDEN = 8192
MAX_CHANNELS = 1024
MAX_LAYERS = 8
DEFAULT_MAX_PARAMETERS = 50_000_000


def max_parameters() -> int:
    """The cap on a model's parameter count: DIGITLAB_MAX_PARAMETERS, else 50 million."""
    return int(os.environ.get("DIGITLAB_MAX_PARAMETERS") or DEFAULT_MAX_PARAMETERS)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {}

CNN_POOLINGS = ("end", "each")
CNN_PADDINGS = ("auto", "same", "valid")
LENET_VARIANTS = ("lenet5", "three_conv")

# One line per option, for forms and --help.
OPTION_HELP = {
    "hidden": "Width of each hidden dense layer, e.g. 512, 512, 512 for seed 003's MLP.",
    "channels": "Output channels of each 3x3 conv, e.g. 8, 16 for seed 000's CNN.",
    "batch_norm": "BatchNorm after each conv or dense layer: faster, steadier training.",
    "dropout": "Share of dense-layer activations dropped during training, against overfitting.",
    "conv_dropout": "Dropout on the conv features before the dense layers.",
    "pooling": "end: one 2x2 max-pool after the convs (seed 000). each: a pool after every conv, much cheaper.",
    "padding": "same pads each conv so its map keeps its size; valid does not, so a k x k conv trims k-1 px. auto: "
               "same with pooling=each, valid with pooling=end (seed 000).",
    "first_kernel": "Side of the first conv's kernel: 3, or 5 to see a whole stroke at once (LeNet, the fast preset).",
    "variant": "lenet5: LeNet-5 as in seed 001. three_conv: seed 004's LeNet-like 3-conv net.",
    "stem": "Channels of the first 3x3 conv.",
    "widths": "Channels of each residual stage, e.g. 32, 64, 128.",
    "blocks_per_stage": "Basic residual blocks in each stage.",
    "downsample": "Halve the map at each new stage (14 -> 7 -> 4 px): far cheaper on a CPU.",
    "stem_padding": "1 keeps 28x28 before the first pool; 0 is seed 000's unpadded stem.",
    "head": "global: average each channel. flatten: 2x2 average pool then flatten (seed 000).",
    "bias": "false: no layer has a bias (seed 002's networks, as their parameter counts show).",
    "dense_batch_norm": "With batch_norm, BatchNorm on the hidden dense layer too; false: on the convs only.",
    "shortcut_bn": "BatchNorm after each 1x1 projection shortcut; seed 000's shortcut has none.",
    "conv_bias": "Every conv carries a bias even before BatchNorm, as seed 000's (PyTorch's default).",
    "norm": "batch: BatchNorm. group: GroupNorm, each image normalised on its own, so statistics of clean digits "
            "do not mislead it on noisy ones. none: no normalisation, a bias on every conv.",
    "input_norm": "Each image normalised before the first layer: standardize (mean 0, std 1), or strokes (its "
                  "background, anything wider than a stroke, taken out first): a grey, fogged or shaded page reads "
                  "as a black one. none: as trained on MNIST.",
}


class UnknownModelError(ValueError):
    pass


def register(name: str, choices: dict[str, tuple[str, ...]] | None = None):
    """Add a model builder; ``choices`` lists the allowed values of its text options, for forms."""

    def decorator(builder):
        _REGISTRY[name] = builder
        _CHOICES[name] = choices or {}
        return builder

    return decorator


def option_choices(name: str) -> dict[str, tuple[str, ...]]:
    _builder(name)
    return {**_CHOICES[name], "input_norm": INPUT_NORMS}


def list_models() -> list[str]:
    return list(_REGISTRY)


def _builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def default_options(name: str) -> dict[str, Any]:
    """The options a model accepts, with their defaults (tuples as lists, as in JSON)."""
    params = inspect.signature(_builder(name)).parameters
    own = {key: list(p.default) if isinstance(p.default, tuple) else p.default for key, p in params.items()}
    return {**own, "input_norm": "none"}


def option_errors(name: str, options: dict[str, Any]) -> dict[str, str]:
    """Per-option messages for options ``create_model(name, **options)`` would reject, or for a model over
    max_parameters(); empty when valid. Builds the model on the meta device: shapes and counts, no weights."""
    try:
        known = default_options(name)
    except UnknownModelError as err:
        return {"model": str(err)}
    errors = {key: f"{name} has no option {key!r}; its options are: {', '.join(known)}"
              for key in options if key not in known}
    if errors:
        return errors
    try:
        count = parameter_count(name, options)
    except OptionError as err:
        errors[err.option] = str(err)
    except (TypeError, ValueError, RuntimeError) as err:
        errors["model_options"] = f"{name} options are invalid: {err}"
    else:
        if count > max_parameters():
            errors["model_options"] = (f"this {name} would have {count:,} parameters; the cap is {max_parameters():,} "
                                       "(DIGITLAB_MAX_PARAMETERS sets it): use fewer or narrower layers")
    return errors


def parameter_count(name: str, options: dict[str, Any]) -> int:
    """The parameter count of ``create_model(name, **options)``, built on the meta device: nothing is allocated,
    so it takes milliseconds whatever the size. Raises what create_model raises for bad options."""
    with torch.device("meta"):
        return count_parameters(create_model(name, **options))


def create_model(name: str, input_norm: str = "none", **options: Any) -> nn.Module:
    """The model ``name`` built with ``options``; every model also takes ``input_norm`` (digitlab.input_norm), a
    first layer of the same nn.Sequential, so its layers keep their names' order after it."""
    model = _builder(name)(**options)
    if _check_choice("input_norm", input_norm, INPUT_NORMS) == "none":
        return model
    return nn.Sequential(InputNormalization(input_norm), *model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class OptionError(ValueError):
    """A model option out of range; ``option`` names it so a form can show the message beside the field."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def _check_widths(option: str, widths: Sequence[int], high: int, max_layers: int = MAX_LAYERS) -> tuple[int, ...]:
    low = 1
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise OptionError(option, f"{option} must be a non-empty list of integers, got {widths!r}")
    if len(widths) > max_layers:
        raise OptionError(option, f"{option} allows at most {max_layers} layers, got {len(widths)}")
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, int) or not low <= width <= high:
            raise OptionError(option, f"{option} must hold integers between {low} and {high}, got {width!r}")
    return tuple(widths)


MIN_DROPOUT, MAX_DROPOUT = 0.002, 0.997  # what Dropout's byte mask can do: it drops whole 256ths, 1 to 255 of them


def _check_dropout(option: str, value: float) -> float:
    """0 (no dropout), or a share the byte mask can drop: under 0.002 it would round to dropping nothing, from
    0.998 to dropping everything (and dividing by zero)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (value == 0 or MIN_DROPOUT <= value <= MAX_DROPOUT)):
        raise OptionError(option, f"{option} must be 0 or between {MIN_DROPOUT} and {MAX_DROPOUT} (dropout masks "
                                  f"drop whole 256ths), got {value!r}")
    return float(value)


def _check_int(option: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise OptionError(option, f"{option} must be an integer between {low} and {high}, got {value!r}")
    return value


def _check_bool(option: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise OptionError(option, f"{option} must be true or false, got {value!r}")
    return value


def _check_choice(option: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise OptionError(option, f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _conv_block(
    in_ch: int, out_ch: int, kernel: int, batch_norm: bool, stride: int = 1, padding: int = 0, pool: bool = False,
    bias: bool | None = None,
) -> list[nn.Module]:
    # A conv followed by BatchNorm needs no bias: BN's shift replaces it. ``bias`` overrides that, to rebuild a seed.
    bias = not batch_norm if bias is None else bias
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    if pool:
        # Max-pool before ReLU gives the same result (max commutes with a monotone function) on a 4x smaller map.
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.ReLU(inplace=True))
    return layers


class Dropout(nn.Dropout):
    """nn.Dropout whose CPU mask comes from random bytes instead of bernoulli_, which costs ~7 ns per element on a
    CPU: a quarter of a training step of seed 000's CNN. The drop probability is rounded to 1/256."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        dropped = round(self.p * 256)
        return x * _random_bytes_like(x).ge_(dropped).to(x.dtype) * (256 / (256 - dropped))


def _random_bytes_like(x: torch.Tensor) -> torch.Tensor:
    """Uniform random uint8 of x's shape and memory layout (x dense, as activations are). One 64-bit draw gives 7
    bytes (int64 random_ draws 0..2**63-1, so the top byte is not uniform): 2.5x cheaper than uint8 random_,
    which spends a draw per byte."""
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    n = x.numel()
    words = torch.empty(-(-n // 7), dtype=torch.int64, device=x.device).random_()
    random_bytes = words.view(torch.uint8).view(-1, 8)[:, :7].reshape(-1)[:n]
    return random_bytes.as_strided(x.shape, x.stride())


class _FlattenFunction(torch.autograd.Function):
    """flatten(1) whose gradient goes back in the input's memory format. Autograd's own flatten sends a
    channels_last feature map an NCHW gradient, and every op behind it (ReLU, dropout, max-pool backward) then
    mixes layouts and falls back to slow strided loops: ~4 ms of a ~25 ms step of seed 000's CNN here."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        ctx.channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        return x.flatten(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.reshape(ctx.shape)
        return grad.contiguous(memory_format=torch.channels_last) if ctx.channels_last else grad


class Flatten(nn.Module):
    """(B, C, H, W) -> (B, C*H*W) in NCHW order whatever the memory format, so weights do not depend on it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return _FlattenFunction.apply(x)
        return x.flatten(1)


def _dense_block(in_features: int, out_features: int, batch_norm: bool, dropout: float, bias: bool = True
                 ) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features, bias=bias and not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(nn.ReLU(inplace=True))
    if dropout:
        layers.append(Dropout(dropout))
    return layers


def _conv_size(size: int, kernel: int, stride: int = 1, padding: int = 0, pool: bool = False) -> int:
    """The side of a square map after a conv (and a 2x2 max-pool). Worked out, not run: a forward pass would
    allocate, and on the meta device its first use imports half a second of shape machinery."""
    size = (size + 2 * padding - kernel) // stride + 1
    return size // 2 if pool else size


@register("mlp")
def mlp(hidden: Sequence[int] = (512, 512, 512), batch_norm: bool = False, dropout: float = 0.0, bias: bool = True
        ) -> nn.Module:
    """Seed 003's 784-512-512-512-10 by default. bias=False: no layer has a bias, the output layer included (seed
    002's MLP: hidden=(128, 64), 784*128 + 128*64 + 64*10 = 109,184 weights)."""
    hidden = _check_widths("hidden", hidden, MAX_DENSE_WIDTH)
    batch_norm = _check_bool("batch_norm", batch_norm)
    dropout = _check_dropout("dropout", dropout)
    bias = _check_bool("bias", bias)
    layers: list[nn.Module] = [Flatten()]
    for in_f, out_f in zip((28 * 28, *hidden), hidden):
        layers += _dense_block(in_f, out_f, batch_norm, dropout, bias)
    layers.append(nn.Linear(hidden[-1], NUM_CLASSES, bias=bias))
    return nn.Sequential(*layers)


@register("cnn", choices={"pooling": CNN_POOLINGS, "padding": CNN_PADDINGS})
def cnn(
    channels: Sequence[int] = (32, 64),
    hidden: int = 128,
    batch_norm: bool = False,
    dropout: float = 0.5,
    conv_dropout: float = 0.25,
    pooling: str = "end",
    dense_batch_norm: bool = True,
    padding: str = "auto",
    first_kernel: int = 3,
) -> nn.Module:
    """3x3 convs (the first may be 5x5 or 7x7) then a dense layer.

    pooling="end" is pytorch/examples' and seed 000's layout: unpadded convs, one 2x2 max-pool after the last.
    pooling="each" pools after every conv, so later convs run on smaller maps: far less compute. Its convs are
    padded unless padding="valid": the fast preset's 5x5 then 3x3 valid convs go 28 -> 24 -> 12 -> 10 -> 5 px.
    Seed 000: channels=(8, 16), hidden=64 (fc 2304-64-10). pytorch/examples: (32, 64), 128. Seed 003: channels=(28,),
    hidden=128 (fc 4732-128-10). dense_batch_norm=False keeps BatchNorm on the convs only (seed 002's CNN).
    """
    channels = _check_widths("channels", channels, MAX_CHANNELS)
    hidden = _check_int("hidden", hidden, 1, MAX_CNN_HIDDEN)
    batch_norm = _check_bool("batch_norm", batch_norm)
    dense_batch_norm = _check_bool("dense_batch_norm", dense_batch_norm)
    dropout = _check_dropout("dropout", dropout)
    conv_dropout = _check_dropout("conv_dropout", conv_dropout)
    pooling = _check_choice("pooling", pooling, CNN_POOLINGS)
    padding = _check_choice("padding", padding, CNN_PADDINGS)
    first_kernel = _check_int("first_kernel", first_kernel, 3, 7)
    if first_kernel % 2 == 0:
        raise OptionError("first_kernel", f"first_kernel must be 3, 5 or 7 (odd, so a padded conv stays centred), "
                                          f"got {first_kernel}")
    max_convs = 4 if pooling == "each" else 6  # beyond this the 28x28 map shrinks to nothing
    if len(channels) > max_convs:
        raise OptionError("channels", f"channels allows at most {max_convs} convs with pooling={pooling!r}, got {len(channels)}")
    padded = padding == "same" or (padding == "auto" and pooling == "each")
    layers: list[nn.Module] = []
    size = 28
    for i, (in_ch, out_ch) in enumerate(zip((1, *channels), channels)):
        kernel = first_kernel if i == 0 else 3
        pad, pool = kernel // 2 if padded else 0, pooling == "each" or i == len(channels) - 1
        layers += _conv_block(in_ch, out_ch, kernel, batch_norm, padding=pad, pool=pool)
        size = _conv_size(size, kernel, padding=pad, pool=pool)
        if size < 1:
            raise OptionError("channels", f"channels has {len(channels)} convs, and with pooling={pooling} and "
                                          f"padding={padding} the 28x28 map shrinks to nothing at conv {i + 1}: use "
                                          "fewer convs or padding=same")
    if conv_dropout:
        layers.append(Dropout(conv_dropout))
    layers.append(Flatten())
    head = [*_dense_block(channels[-1] * size * size, hidden, batch_norm and dense_batch_norm, dropout),
            nn.Linear(hidden, NUM_CLASSES)]
    return nn.Sequential(*layers, *head)


@register("lenet", choices={"variant": LENET_VARIANTS})
def lenet(batch_norm: bool = False, dropout: float = 0.0, variant: str = "lenet5") -> nn.Module:
    """variant="lenet5": seed 001's LeNet-5 (conv 6 and 16 at 5x5, fc 120-84-10; the first conv is padded so 28x28
    maps to the classic 16x5x5). variant="three_conv": seed 004's LeNet-like net (conv 6 at 5x5, 16 and 120 at 2x2
    stride 2, fc 84-10)."""
    batch_norm = _check_bool("batch_norm", batch_norm)
    dropout = _check_dropout("dropout", dropout)
    variant = _check_choice("variant", variant, LENET_VARIANTS)
    if variant == "lenet5":
        layers = [
            *_conv_block(1, 6, 5, batch_norm, padding=2, pool=True),  # (B, 6, 14, 14)
            *_conv_block(6, 16, 5, batch_norm, pool=True),  # (B, 16, 5, 5)
            Flatten(),
            *_dense_block(16 * 5 * 5, 120, batch_norm, dropout),
            *_dense_block(120, 84, batch_norm, dropout),
        ]
    else:
        layers = [
            *_conv_block(1, 6, 5, batch_norm, pool=True),  # (B, 6, 12, 12)
            *_conv_block(6, 16, 2, batch_norm, stride=2, pool=True),  # (B, 16, 3, 3)
            *_conv_block(16, 120, 2, batch_norm, stride=2),  # (B, 120, 1, 1)
            Flatten(),
            *_dense_block(120, 84, batch_norm, dropout),
        ]
    return nn.Sequential(*layers, nn.Linear(84, NUM_CLASSES))
