"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020) for 112x112 faces.

A Ghost module makes ``ceil(C_out / 2)`` "intrinsic" maps with a 1x1 conv and the rest with a cheap 3x3
depthwise conv on them; a Ghost bottleneck is ``ghost(expand, ReLU) -> [depthwise k x k stride 2 + BN] ->
[SE, hard-sigmoid gate] -> ghost(project, linear)`` plus a shortcut (identity, or depthwise + 1x1 conv when the
shape changes).  The ImageNet stage table is kept and every channel count is multiplied by ``width`` (1.3,
TFace's ``GhostNet_x1.3``) and rounded to a multiple of 4.

Face adaptation (as for IResNet and GhostFaceNets): the stem conv has stride 1 so that the four stride-2
stages bring 112x112 to 7x7; the ImageNet ``1x1 -> 960*width`` conv, pooling and classifier are replaced by the
shared mobile tail ``conv1x1 -> 512 + PReLU -> GDC -> Linear(512 -> D) -> BN1d``.

``ghostnet`` (the zoo entry, 4.61 M params at D = 512) is this massface design. TFace torchkit's
``GhostNet`` (``model_ghostnet.py``, after cavaface; 4.06 M params) differs from it in four ways, each an option
here, collected in :data:`TFACE_GHOSTNET` (``GhostNet(D, **TFACE_GHOSTNET)`` is TFace's network exactly):

* PReLU instead of ReLU in the stem and in the expanding Ghost modules (``act='prelu'``; the SE keeps ReLU and
  its hard-sigmoid gate);
* the last unit expands to ``512 * width`` instead of ``960 * width`` (``rows=TFACE_GHOSTNET_ROWS``);
* the tail's 1x1 conv widens to ``make_divisible(512 * width) = 664`` channels and the GDC runs over those 664
  (``head_channels=664``; massface's shared tail uses 512);
* the final BatchNorm1d has no affine parameters (``head_bn='no_affine'``).

Cost: O(N * MACs); see ``massface.backbones.profile``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor, nn

from .layers import Activation, ConvBNAct, GDCNet, HeadBN, SqueezeExcite

GhostRow = tuple[int, int, int, float, int]
"""One Ghost bottleneck: (kernel, expansion, out channels, SE ratio, stride), ImageNet widths (before ``width``)."""

# (kernel, expansion, out channels, SE ratio, stride) -- the GhostNet paper's table 7, ImageNet widths.
GHOSTNET_STAGES: tuple[GhostRow, ...] = (
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


TFACE_GHOSTNET_ROWS: tuple[GhostRow, ...] = (*GHOSTNET_STAGES[:-1], (5, 512, 160, 0.25, 1))
"""TFace torchkit's table: the ImageNet one but for the last unit, which expands to 512 (not 960)."""

TFACE_GHOSTNET: Mapping[str, object] = MappingProxyType({
    "act": "prelu", "rows": TFACE_GHOSTNET_ROWS, "head_channels": make_divisible(512 * 1.3), "head_bn": "no_affine"})
"""The options that make :class:`GhostNet` (at its default ``width=1.3``) TFace torchkit's ``GhostNet``."""


class GhostModule(nn.Module):
    """``cat(primary(x), cheap(primary(x)))[:, :C_out]``: 1x1 conv to ceil(C_out/2), then depthwise 3x3; both
    followed by ``act`` when ``relu`` (the expanding module), by nothing otherwise (the projecting one)."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool, act: Activation = "relu") -> None:
        super().__init__()
        self.out_channels = out_channels
        init = math.ceil(out_channels / 2)
        act = act if relu else "none"
        self.primary = ConvBNAct(in_channels, init, 1, act=act)
        self.cheap = ConvBNAct(init, init, 3, groups=init, act=act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck: ghost expand -> [depthwise stride] -> [SE] -> ghost project, + shortcut."""

    def __init__(self, in_ch: int, mid: int, out_ch: int, kernel: int, stride: int, se_ratio: float,
                 act: Activation = "relu") -> None:
        super().__init__()
        layers: list[nn.Module] = [GhostModule(in_ch, mid, relu=True, act=act)]
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

    Args:
        embedding_size: D.
        width: channel multiplier (1.3 for ``ghostnet``).
        dropout: dropout before the projection.
        fc_bn: BatchNorm1d after it (``False`` drops it whatever ``head_bn`` says).
        input_size: a multiple of 16.
        act: activation of the stem and of the expanding Ghost modules (``'relu'``; TFace: ``'prelu'``).
        rows: the bottleneck table (default :data:`GHOSTNET_STAGES`; TFace: :data:`TFACE_GHOSTNET_ROWS`).
        head_channels: channels of the tail's 1x1 conv and of the GDC (512; TFace: 664).
        head_bn: the final BatchNorm1d's convention (``'affine'``; TFace: ``'no_affine'``).

    See :data:`TFACE_GHOSTNET` for TFace torchkit's network.
    """

    def __init__(
        self,
        embedding_size: int = 512,
        width: float = 1.3,
        dropout: float = 0.0,
        fc_bn: bool = True,
        input_size: int = 112,
        act: Activation = "relu",
        rows: Sequence[GhostRow] | None = None,
        head_channels: int = 512,
        head_bn: HeadBN = "affine",
    ) -> None:
        if width <= 0:
            raise ValueError(f"width must be > 0; got {width}")
        table = GHOSTNET_STAGES if rows is None else tuple(rows)
        if not table:
            raise ValueError("rows must hold at least one Ghost bottleneck")
        channels = make_divisible(16 * width)
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, 1, act=act)]
        for kernel, expansion, out, se_ratio, stride in table:
            out_ch = make_divisible(out * width)
            mid = make_divisible(expansion * width)
            layers.append(GhostBottleneck(channels, mid, out_ch, kernel, stride, se_ratio, act=act))
            channels = out_ch
        super().__init__(nn.Sequential(*layers), channels, embedding_size, input_size, dropout=dropout, fc_bn=fc_bn,
                         head_channels=head_channels, head_bn=head_bn)


def ghostnet(embedding_size: int = 512, **kw: object) -> GhostNet:
    """GhostNet x1.3 for 112x112 faces: the ImageNet table and massface's shared tail (TFace torchkit's own
    ``GhostNet`` layout is ``ghostnet(D, **TFACE_GHOSTNET)``; see the module docstring)."""
    return GhostNet(embedding_size, **kw)  # type: ignore[arg-type]
