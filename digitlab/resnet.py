"""The small ResNet of the model registry (``create_model("resnet", ...)``), with a choice of normalisation.

norm="batch" is BatchNorm, as every ResNet trained before this option was; norm="group" normalises each image on
its own (GroupNorm), so statistics learnt on clean digits do not mislead the net on a noisy or fogged one;
norm="none" has neither, and a bias on every conv instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from digitlab.models import (
    MAX_CHANNELS,
    NUM_CLASSES,
    Dropout,
    Flatten,
    OptionError,
    _check_bool,
    _check_choice,
    _check_dropout,
    _check_int,
    _check_widths,
    _conv_size,
    register,
)

RESNET_HEADS = ("global", "flatten")
RESNET_NORMS = ("batch", "group", "none")
GROUP_NORM_GROUPS = 8  # GroupNorm's groups where the channels allow: 4 channels a group at the stem's 32


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(GROUP_NORM_GROUPS, channels), channels)
    return nn.Identity()


class BasicBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus a shortcut; a 1x1 projection (normalised when shortcut_bn) when the shape
    changes. conv_bias gives every conv a bias, as seed 000's blocks have; norm="none" gives them one too.
    The norms keep the names bn1 and bn2 whatever they are, so that runs saved before norm was an option load."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, shortcut_bn: bool = True, conv_bias: bool = False,
                 norm: str = "batch"):
        super().__init__()
        conv_bias = conv_bias or norm == "none"
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=conv_bias)
        self.bn1 = norm_layer(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=conv_bias)
        self.bn2 = norm_layer(norm, out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            normalised = shortcut_bn and norm != "none"
            # Without a norm after it the projection needs its own bias; with one, the norm's shift replaces it.
            projection = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=conv_bias or not normalised)
            self.shortcut = nn.Sequential(projection, norm_layer(norm, out_ch)) if normalised \
                else nn.Sequential(projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


@register("resnet", choices={"head": RESNET_HEADS, "norm": RESNET_NORMS})
def resnet(
    stem: int = 32,
    widths: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 1,
    downsample: bool = True,
    stem_padding: int = 1,
    head: str = "global",
    dropout: float = 0.0,
    shortcut_bn: bool = True,
    conv_bias: bool = False,
    norm: str = "batch",
) -> nn.Module:
    """A small ResNet: a 3x3 stem, a 2x2 max-pool, then one stage of basic blocks per width.

    downsample=True halves the map at the start of every stage after the first (14 -> 7 -> 4), which keeps it
    affordable on a CPU. head="global" averages each channel; head="flatten" is seed 000's: 2x2 average pool,
    then flatten into the fc layer. Seed 000's modified ResNet18: stem=8, widths=(16, 32, 64, 128),
    blocks_per_stage=2, downsample=False, stem_padding=0, head="flatten", shortcut_bn=False, conv_bias=True.
    """
    stem = _check_int("stem", stem, 1, MAX_CHANNELS)
    widths = _check_widths("widths", widths, MAX_CHANNELS, max_layers=6)
    blocks_per_stage = _check_int("blocks_per_stage", blocks_per_stage, 1, 8)
    downsample = _check_bool("downsample", downsample)
    stem_padding = _check_int("stem_padding", stem_padding, 0, 1)
    head = _check_choice("head", head, RESNET_HEADS)
    dropout = _check_dropout("dropout", dropout)
    shortcut_bn = _check_bool("shortcut_bn", shortcut_bn)
    conv_bias = _check_bool("conv_bias", conv_bias)
    norm = _check_choice("norm", norm, RESNET_NORMS)
    if downsample and len(widths) > 4:
        raise OptionError("widths", f"widths allows at most 4 stages when downsampling, got {len(widths)}")
    # The stem's layer order (conv, norm, pool, ReLU) is the one every saved ResNet's weights are named by.
    layers: list[nn.Module] = [
        nn.Conv2d(1, stem, 3, padding=stem_padding, bias=conv_bias or norm == "none"), norm_layer(norm, stem),
        nn.MaxPool2d(2), nn.ReLU(inplace=True),
    ]
    in_ch, size = stem, _conv_size(28, 3, padding=stem_padding, pool=True)
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if downsample and stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_ch, width, stride, shortcut_bn, conv_bias, norm))
            in_ch, size = width, _conv_size(size, 3, stride, padding=1)
    if head == "global":
        layers += [nn.AdaptiveAvgPool2d(1), Flatten()]
        size = 1
    else:
        layers += [nn.AvgPool2d(2), Flatten()]
        size //= 2
    if dropout:
        layers.append(Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(in_ch * size * size, NUM_CLASSES))
