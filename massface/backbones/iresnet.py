"""Improved ResNets for faces: insightface IResNet (``iresnet*``) and TFace / face.evoLVe IR-SE (``ir_se*``).

Deng et al., "ArcFace", CVPR 2019 (network "LResNet-IR", output "E"); Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018.  Layout (reference trainers.md sections 1.8, 2.3 and 5)::

    conv3x3(3 -> 64, stride 1) + BN + PReLU                                 112x112
    4 stages, 64 / 128 / 256 / 512 channels, blocks e.g. [3, 4, 14, 3]      56, 28, 14, 7
        block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN [-> SE] , + shortcut, no activation
        the first block of each stage has stride 2 (on its second conv); its shortcut is conv1x1(2) + BN,
        or, in the IR-SE (face.evoLVe) convention, MaxPool2d(1, 2) when the channel count is unchanged
    "E" head: BN2d -> Dropout -> flatten(512*7*7) -> Linear(25088 -> D) -> BatchNorm1d

insightface's last BatchNorm1d has its gamma fixed at 1 (``head_bn='fixed_gamma'``); TFace's has no affine
parameters (``'no_affine'``, the IR-SE default).  Params at D = 512: r18 24.0 M, r34 34.1 M, r50 43.6 M,
r100 65.2 M, r200 118.8 M; MACs 2.61 / 4.46 / 6.31 / 12.09 / 23.4 G.

``gradient_checkpointing=True`` recomputes every residual block in the backward pass
(``torch.utils.checkpoint``, non-reentrant): activation memory drops from O(blocks) feature maps to O(1)
per stage plus the block inputs, at the cost of one extra forward of the body (about +30 % time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import EmbeddingNet, FlattenHead, HeadBN, SqueezeExcite, check_dropout, kaiming_init

Shortcut = Literal["conv", "pool"]

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
"""Blocks per stage for each depth (insightface: note 14, not 6, in stage 3 of r50)."""


def residual_body(layers: list[nn.Module], channels: int, se: bool) -> nn.Sequential:
    """``layers`` as one ``nn.Sequential``, ended by squeeze-and-excitation (reduction 16) when ``se``."""
    if se:
        layers.append(SqueezeExcite(channels, channels // 16, act="relu", bias=False))
    return nn.Sequential(*layers)


def residual_shortcut(in_channels: int, out_channels: int, stride: int, kind: Shortcut) -> nn.Module:
    """Identity when shapes match; ``MaxPool2d(1, stride)`` for ``kind="pool"`` when only the stride differs
    (face.evoLVe / TFace); otherwise conv1x1(stride) + BN (insightface)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "pool" and in_channels == out_channels:
        return nn.MaxPool2d(1, stride)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                         nn.BatchNorm2d(out_channels, eps=1e-5))


class IRBlock(nn.Module):
    """Pre-activation IR block: ``BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN [-> SE] + shortcut``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, se: bool, shortcut: Shortcut) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels, eps=1e-5),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5),
        ]
        self.body = residual_body(layers, out_channels, se)
        self.shortcut = residual_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class IResNetBody(nn.Sequential):
    """Stem + residual blocks; runs each block under gradient checkpointing when asked and training."""

    def __init__(self, blocks: Sequence[IRBlock], stem: nn.Module, gradient_checkpointing: bool) -> None:
        super().__init__(stem, *blocks)
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, module in enumerate(self):
            if use_ckpt and i > 0:
                x = checkpoint(module, x, use_reentrant=False)
            else:
                x = module(x)
        return x


class ResidualNet(EmbeddingNet):
    """What every IR-family network shares: a stem, residual units stage by stage (the first unit of each
    stage strides 2), the flatten-linear head, Kaiming init and optional gradient checkpointing. Subclasses
    say how one unit is built (:meth:`_assemble`'s ``make_unit(in_channels, out_channels, stride)``)."""

    def _assemble(self, stem: nn.Module, in_channels: int, blocks: Sequence[int], widths: Sequence[int],
                  make_unit: Callable[[int, int, int], nn.Module], *, embedding_size: int, input_size: int,
                  dropout: float, head_bn: HeadBN, fc_bn: bool, gradient_checkpointing: bool) -> None:
        if len(blocks) != len(widths) or any(b < 1 for b in blocks):
            raise ValueError(f"blocks must give >= 1 unit for each of the {len(widths)} stages; got {tuple(blocks)}")
        units: list[nn.Module] = []
        channels = in_channels
        for n, width in zip(blocks, widths):
            for i in range(n):
                units.append(make_unit(channels, width, 2 if i == 0 else 1))
                channels = width
        self.features = IResNetBody(units, stem, gradient_checkpointing)  # type: ignore[arg-type]
        self.head = FlattenHead(
            channels, input_size // 16, embedding_size, check_dropout(dropout), head_bn if fc_bn else "none"
        )
        kaiming_init(self)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether residual units are recomputed in the backward pass (settable)."""
        return self.features.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.features.gradient_checkpointing = bool(value)


class IResNet(ResidualNet):
    """IResNet / IR-SE face backbone with the "E" output layer.

    Args:
        blocks: residual blocks per stage (four stages, 64/128/256/512 channels by default).
        embedding_size: D.
        se: append a squeeze-and-excitation module (reduction 16) to every block (IR-SE).
        shortcut: ``'conv'`` (insightface: conv1x1 + BN on every downsampling block) or ``'pool'``
            (face.evoLVe / TFace: MaxPool2d(1, stride) when the channel count is unchanged).
        dropout: dropout in the output layer (insightface 0, TFace 0.4).
        head_bn: convention of the final BatchNorm1d (``'fixed_gamma'``, ``'no_affine'``, ``'affine'``,
            ``'none'``).
        fc_bn: ``False`` drops the final BatchNorm1d whatever ``head_bn`` says (the option every family
            shares; ``True`` keeps ``head_bn``).
        gradient_checkpointing: recompute blocks in backward to save activation memory.
        input_size: square input side (multiple of 16); the head flattens ``512 * (input_size/16)^2``.
        widths: channels of the four stages.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        embedding_size: int = 512,
        se: bool = False,
        shortcut: Shortcut = "conv",
        dropout: float = 0.0,
        head_bn: HeadBN = "fixed_gamma",
        fc_bn: bool = True,
        gradient_checkpointing: bool = False,
        input_size: int = 112,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__(embedding_size, input_size)
        if shortcut not in ("conv", "pool"):
            raise ValueError(f"shortcut must be 'conv' or 'pool'; got {shortcut!r}")
        stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0], eps=1e-5),
            nn.PReLU(widths[0]),
        )
        self._assemble(stem, widths[0], blocks, widths,
                       lambda cin, cout, stride: IRBlock(cin, cout, stride, se, shortcut),
                       embedding_size=embedding_size, input_size=input_size, dropout=dropout, head_bn=head_bn,
                       fc_bn=fc_bn, gradient_checkpointing=gradient_checkpointing)


def _depth_blocks(depth: int) -> tuple[int, int, int, int]:
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"IResNet depth must be one of {sorted(STAGE_BLOCKS)}; got {depth}")
    return STAGE_BLOCKS[depth]


def iresnet(depth: int, embedding_size: int = 512, **kw: object) -> IResNet:
    """insightface ``r{depth}``: conv shortcuts, BN1d with gamma fixed at 1, dropout 0 by default."""
    return IResNet(_depth_blocks(depth), embedding_size, **kw)  # type: ignore[arg-type]


def ir_se(depth: int, embedding_size: int = 512, **kw: object) -> IResNet:
    """TFace / face.evoLVe ``IR_SE_{depth}``: SE blocks, max-pool shortcuts, BN1d without affine."""
    kw.setdefault("se", True)
    kw.setdefault("shortcut", "pool")
    kw.setdefault("head_bn", "no_affine")
    return IResNet(_depth_blocks(depth), embedding_size, **kw)  # type: ignore[arg-type]
