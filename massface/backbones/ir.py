"""TFace / face.evoLVe IR-152 and IR-200 (``ir152``, ``ir200``, ``ir_se152``, ``ir_se200``): bottleneck IR units.

Anchor: Tencent TFace ``recognition/torchkit/backbone/model_irse.py`` (``BottleneckIR`` / ``BottleneckIRSE``,
``Backbone(num_layers=152 | 200)``), after face.evoLVe; Deng et al., "ArcFace" (IR units), Hu et al., "SENet".
The shallower members of the family (``ir18/34/50/100``, ``ir_se50/100``: basic units) are
:class:`massface.backbones.iresnet.IResNet` with max-pool shortcuts; this file adds only the bottleneck unit::

    conv3x3(3 -> 64) + BN + PReLU                                              112x112
    4 stages, 256 / 512 / 1024 / 2048 channels, blocks (3, 8, 36, 3) for 152, (3, 24, 36, 3) for 200
        unit: BN -> conv1x1(c/4) -> BN -> PReLU -> conv3x3(c/4) -> BN -> PReLU -> conv1x1(c, stride) -> BN [-> SE]
              + shortcut: conv1x1(stride) + BN when the channel count changes (every stage's first unit here),
              MaxPool2d(1, stride) otherwise (identity at stride 1)
    head: BN2d -> Dropout -> flatten(2048 * 7 * 7) -> Linear -> BatchNorm1d(affine=False)

Note TFace's ``IR_200`` is not insightface's r200 (``iresnet200``: basic units, blocks (6, 26, 60, 6)).
Params at D = 512 equal those of TFace's own networks: IR_152 109.6 M, IR_200 114.1 M, IR_SE_152 116.2 M,
IR_SE_200 121.2 M.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .iresnet import ResidualNet, residual_body, residual_shortcut
from .layers import HeadBN

BLOCKS: dict[int, tuple[int, int, int, int]] = {152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
"""Bottleneck units per stage of TFace's IR_152 / IR_200."""


class IRBottleneck(nn.Module):
    """``BN -> 1x1 -> BN -> PReLU -> 3x3 -> BN -> PReLU -> 1x1(stride) -> BN [-> SE]`` + shortcut (reduction 4)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, se: bool) -> None:
        super().__init__()
        mid = out_channels // 4
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels, eps=1e-5),
            nn.Conv2d(in_channels, mid, 1, 1, 0, bias=False),
            nn.BatchNorm2d(mid, eps=1e-5),
            nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, 1, 1, bias=False),
            nn.BatchNorm2d(mid, eps=1e-5),
            nn.PReLU(mid),
            nn.Conv2d(mid, out_channels, 1, stride, 0, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5),
        ]
        self.body = residual_body(layers, out_channels, se)
        self.shortcut = residual_shortcut(in_channels, out_channels, stride, "pool")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class IRBottleneckNet(ResidualNet):
    """TFace IR-152 / IR-200 (``se=True``: IR-SE) face backbone.

    Args:
        blocks: bottleneck units per stage.
        embedding_size: D.
        se: squeeze-and-excitation (reduction 16) at the end of every unit.
        dropout: dropout in the output layer (TFace trains with 0.4; no weights depend on it).
        head_bn: convention of the final BatchNorm1d (TFace: ``'no_affine'``).
        fc_bn: ``False`` drops the final BatchNorm1d.
        gradient_checkpointing: recompute units in backward to save activation memory.
        input_size: square input side (multiple of 16).
        widths: output channels of the four stages.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        embedding_size: int = 512,
        se: bool = False,
        dropout: float = 0.0,
        head_bn: HeadBN = "no_affine",
        fc_bn: bool = True,
        gradient_checkpointing: bool = False,
        input_size: int = 112,
        widths: Sequence[int] = (256, 512, 1024, 2048),
    ) -> None:
        super().__init__(embedding_size, input_size)
        if any(w % 64 for w in widths):
            raise ValueError(f"widths must be multiples of 64 (reduction 4, then SE 16); got {tuple(widths)}")
        stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64, eps=1e-5), nn.PReLU(64))
        self._assemble(stem, 64, blocks, widths, lambda cin, cout, stride: IRBottleneck(cin, cout, stride, se),
                       embedding_size=embedding_size, input_size=input_size, dropout=dropout, head_bn=head_bn,
                       fc_bn=fc_bn, gradient_checkpointing=gradient_checkpointing)


def ir_bottleneck(depth: int, embedding_size: int = 512, **kw: object) -> IRBottleneckNet:
    """TFace ``IR_{depth}`` (``se=True``: ``IR_SE_{depth}``) for depth 152 or 200."""
    if depth not in BLOCKS:
        raise ValueError(f"bottleneck IR depth must be one of {sorted(BLOCKS)}; got {depth}")
    return IRBottleneckNet(BLOCKS[depth], embedding_size, **kw)  # type: ignore[arg-type]
