"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020) for 112x112 faces.

A Ghost module makes ``ceil(C_out / 2)`` "intrinsic" maps with a 1x1 conv and the rest with a cheap 3x3
depthwise conv on them; a Ghost bottleneck is ``ghost(expand, ReLU) -> [depthwise k x k stride 2 + BN] ->
[SE, hard-sigmoid gate] -> ghost(project, linear)`` plus a shortcut (identity, or depthwise + 1x1 conv when the
shape changes).  The ImageNet stage table is kept and every channel count is multiplied by ``width`` (1.3,
TFace's ``GhostNet_x1.3``) and rounded to a multiple of 4.

Face adaptation (as for IResNet and GhostFaceNets): the stem conv has stride 1 so that the four stride-2
stages bring 112x112 to 7x7; the ImageNet ``1x1 -> 960*width`` conv, pooling and classifier are replaced by the
shared mobile tail ``conv1x1 -> 512 + PReLU -> GDC -> Linear(512 -> D) -> BN1d``.
Cost: O(N * MACs); see ``massface.backbones.profile``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import ConvBNAct, GDCNet, SqueezeExcite

# (kernel, expansion, out channels, SE ratio, stride) -- the GhostNet paper's table 7, ImageNet widths.
GHOSTNET_STAGES: tuple[tuple[int, int, int, float, int], ...] = (
    (3, 16, 16, 0.0, 1),
    (3, 48, 24, 0.0, 2),
    (3, 72, 24, 0.0, 1),
    (5, 72, 40, 0.25, 2),
    (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0.0, 2),
    (3, 200, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 480, 112, 0.25, 1),
    (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
)


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without losing more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class GhostModule(nn.Module):
    """``cat(primary(x), cheap(primary(x)))[:, :C_out]``: 1x1 conv to ceil(C_out/2), then depthwise 3x3."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.out_channels = out_channels
        init = math.ceil(out_channels / 2)
        act = "relu" if relu else "none"
        self.primary = ConvBNAct(in_channels, init, 1, act=act)
        self.cheap = ConvBNAct(init, init, 3, groups=init, act=act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck: ghost expand -> [depthwise stride] -> [SE] -> ghost project, + shortcut."""

    def __init__(self, in_ch: int, mid: int, out_ch: int, kernel: int, stride: int, se_ratio: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [GhostModule(in_ch, mid, relu=True)]
        if stride > 1:
            layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act="none"))
        if se_ratio > 0:
            layers.append(SqueezeExcite(mid, make_divisible(mid * se_ratio), act="relu", gate="hard_sigmoid"))
        layers.append(GhostModule(mid, out_ch, relu=False))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module
        if stride == 1 and in_ch == out_ch:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch, act="none"),
                ConvBNAct(in_ch, out_ch, 1, act="none"),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class GhostNet(GDCNet):
    """GhostNet body (width multiplier ``width``) with the GDC embedding head.

    Args: ``embedding_size`` D; ``width`` channel multiplier (1.3 for ``ghostnet``); ``dropout`` before the
    projection; ``fc_bn`` BatchNorm1d after it; ``input_size`` a multiple of 16.
    """

    def __init__(
        self,
        embedding_size: int = 512,
        width: float = 1.3,
        dropout: float = 0.0,
        fc_bn: bool = True,
        input_size: int = 112,
    ) -> None:
        if width <= 0:
            raise ValueError(f"width must be > 0; got {width}")
        channels = make_divisible(16 * width)
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, 1, act="relu")]
        for kernel, expansion, out, se_ratio, stride in GHOSTNET_STAGES:
            out_ch = make_divisible(out * width)
            mid = make_divisible(expansion * width)
            layers.append(GhostBottleneck(channels, mid, out_ch, kernel, stride, se_ratio))
            channels = out_ch
        super().__init__(nn.Sequential(*layers), channels, embedding_size, input_size, dropout=dropout, fc_bn=fc_bn)


def ghostnet(embedding_size: int = 512, **kw: object) -> GhostNet:
    """TFace ``GhostNet_x1.3`` adapted to 112x112 faces (width 1.3)."""
    return GhostNet(embedding_size, **kw)  # type: ignore[arg-type]
