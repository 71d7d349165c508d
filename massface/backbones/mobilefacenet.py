"""MobileFaceNet (Chen et al., "MobileFaceNets", CCBR 2018, arXiv:1804.07573) and its field variants.

Body (the paper's table, rows ``(expansion width, out channels, repeats, first stride)``)::

    conv3x3/2 -> C            56x56      stem
    3x3 depthwise -> C        56x56      (grouped conv, or depthwise + linear 1x1 in MassFace)
    (2C, C,   5, 2)           28x28      inverted residual bottlenecks:
    (4C, 2C,  1, 2)           14x14        1x1 expand + BN + PReLU -> 3x3 depthwise(stride) + BN + PReLU
    (4C, 2C,  6, 1)           14x14        -> 1x1 linear + BN; identity shortcut when stride 1 and C_in == C_out
    (8C, 2C,  1, 2)            7x7
    (4C, 2C,  2, 1)            7x7
    conv1x1 -> 512 + GDC head (7x7 depthwise linear -> Linear(512 -> D) -> BN1d)

with C = 64 (``width``).  Presets:

* ``mobilefacenet`` -- TFace / cavaface layout (stem depthwise is a grouped 3x3 ConvBlock): 1.20 M params,
  0.221 GMACs at D = 512 (about 1.0 M at D = 128, the paper's 0.99 M / 221 M MAdds). TFace torchkit's own
  ``MobileFaceNet`` is ``mobilefacenet`` with ``head_bn='no_affine'`` (its BatchNorm1d has no gamma / beta:
  1,199,488 params).
* ``mobilefacenet_x2`` -- insightface arcface_torch ``mbf`` (scale 2, blocks (1, 4, 6, 2)): channels doubled,
  expansion widths kept at 128 / 256 / 512 / 256, stem grouped conv with 64 groups: 2.06 M / 0.44 G.
* ``mobilefacenet_massface`` -- MassFace's TF-slim net (reference massface.md section 5): the stem depthwise is
  followed by a linear 1x1 conv, the GDC is followed by a linear 1x1 conv to 512, and the 1024-d bottleneck
  is followed by BatchNorm (``fc_bn``).  TF's asymmetric 'SAME' padding is replaced by symmetric padding
  (same shapes, params and MACs).

Cost: O(N * MACs) time; activation memory O(N * 56*56*max(expansion)) floats for the widest stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .layers import ConvBNAct, GDCNet, HeadBN

Row = tuple[int, int, int, int]
"""One stage of bottlenecks: (expansion width, output channels, repeats, stride of the first unit)."""


def paper_rows(width: int = 64, expansion_scale: int = 1, blocks: Sequence[int] = (4, 6, 2)) -> list[Row]:
    """The MobileFaceNet rows for channel ``width`` and residual ``blocks`` (units after each downsample).

    Expansion widths are ``expansion_scale * (128, 256, 256, 512, 256)`` -- insightface keeps them fixed
    (``expansion_scale=1``) when it doubles the channels, the paper scales them with the channels.
    """
    e = expansion_scale
    if len(blocks) != 3 or any(b < 0 for b in blocks):
        raise ValueError(f"blocks must be three non-negative residual-unit counts; got {tuple(blocks)}")
    return [
        (128 * e, width, 1 + blocks[0], 2),
        (256 * e, 2 * width, 1, 2),
        (256 * e, 2 * width, blocks[1], 1),
        (512 * e, 2 * width, 1, 2),
        (256 * e, 2 * width, blocks[2], 1),
    ]


class Bottleneck(nn.Module):
    """Inverted residual unit: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear, + identity if shapes allow."""

    def __init__(self, in_channels: int, expansion: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and in_channels == out_channels
        self.body = nn.Sequential(
            ConvBNAct(in_channels, expansion, 1),
            ConvBNAct(expansion, expansion, 3, stride, groups=expansion),
            ConvBNAct(expansion, out_channels, 1, act="none"),
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileFaceNet(GDCNet):
    """MobileFaceNet with a GDC embedding head; see the module docstring for the presets.

    Args:
        embedding_size: D, the embedding width.
        width: stem / first-stage channels C (64 in the paper, 128 in insightface ``mbf``).
        rows: bottleneck stages ``(expansion, out, repeats, stride)``; default :func:`paper_rows` (width).
        stem_groups: groups of the second 3x3 conv (C = depthwise; insightface uses 64 at every width).
        separable_stem: MassFace's second layer -- depthwise 3x3 + PReLU then a linear 1x1 conv.
        head_hidden: MassFace's extra linear 1x1 conv (512 -> 512) after the GDC.
        dropout: dropout before the embedding projection.
        fc_bn: BatchNorm1d after the projection (MassFace ``--fc_bn``; TFace / insightface always have it);
            ``False`` drops it whatever ``head_bn`` says.
        input_size: square input side, a multiple of 16 (the GDC kernel is input_size / 16).
        head_bn: convention of that BatchNorm1d: ``'affine'`` (default; insightface mbf, MassFace) or
            ``'no_affine'`` (TFace torchkit's ``MobileFaceNet``, whose ``GDC`` ends in ``BatchNorm1d(affine=False)``).
    """

    def __init__(
        self,
        embedding_size: int = 512,
        width: int = 64,
        rows: Sequence[Row] | None = None,
        stem_groups: int | None = None,
        separable_stem: bool = False,
        head_hidden: bool = False,
        dropout: float = 0.0,
        fc_bn: bool = True,
        input_size: int = 112,
        head_bn: HeadBN = "affine",
    ) -> None:
        rows = list(paper_rows(width) if rows is None else rows)
        groups = width if stem_groups is None else stem_groups
        if width % groups:
            raise ValueError(f"stem_groups={groups} must divide width={width}")
        stem: list[nn.Module] = [ConvBNAct(3, width, 3, 2)]
        if separable_stem:
            stem += [ConvBNAct(width, width, 3, groups=width), ConvBNAct(width, width, 1, act="none")]
        else:
            stem.append(ConvBNAct(width, width, 3, groups=groups))
        layers: list[nn.Module] = list(stem)
        channels = width
        for expansion, out_channels, repeats, stride in rows:
            for i in range(repeats):
                layers.append(Bottleneck(channels, expansion, out_channels, stride if i == 0 else 1))
                channels = out_channels
        super().__init__(
            nn.Sequential(*layers),
            channels,
            embedding_size,
            input_size,
            dropout=dropout,
            fc_bn=fc_bn,
            head_hidden=head_hidden,
            head_bn=head_bn,
        )


def mobilefacenet(embedding_size: int = 512, **kw: object) -> MobileFaceNet:
    """Original 64-channel MobileFaceNet, TFace / cavaface layout (1.20 M params, 0.221 GMACs at D=512)."""
    return MobileFaceNet(embedding_size, **kw)  # type: ignore[arg-type]


def mobilefacenet_x2(embedding_size: int = 512, **kw: object) -> MobileFaceNet:
    """insightface arcface_torch ``mbf``: scale 2, blocks (1, 4, 6, 2) (2.06 M params, 0.44 GMACs)."""
    kw.setdefault("width", 128)
    kw.setdefault("stem_groups", 64)
    return MobileFaceNet(embedding_size, **kw)  # type: ignore[arg-type]


def mobilefacenet_massface(embedding_size: int = 1024, **kw: object) -> MobileFaceNet:
    """MassFace's MobileFaceNet: separable stem, extra 1x1 after the GDC, 1024-d bottleneck + BN (fc_bn)."""
    kw.setdefault("separable_stem", True)
    kw.setdefault("head_hidden", True)
    kw.setdefault("fc_bn", True)
    return MobileFaceNet(embedding_size, **kw)  # type: ignore[arg-type]
