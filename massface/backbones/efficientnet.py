"""EfficientNet-B0 / B1 (Tan & Le, ICML 2019) adapted to 112x112 faces as in TFace / cavaface.

MBConv unit: ``[1x1 expand + BN + PReLU] -> k x k depthwise(stride) + BN + PReLU -> SE(reduce to C_in/4,
ReLU, sigmoid) -> 1x1 linear + BN``, identity shortcut when stride 1 and C_in == C_out (the first stage has
expansion 1 and no expand conv).  Stage table ``(expansion, kernel, channels, repeats, stride)``::

    (1, 3, 16, 1, 1) (6, 3, 24, 2, 2) (6, 5, 40, 2, 2) (6, 3, 80, 3, 2) (6, 5, 112, 3, 1) (6, 5, 192, 4, 2)
    (6, 3, 320, 1, 1)

B1 multiplies the repeats by 1.1 (rounded up).  Face adaptation (TFace): PReLU instead of swish, a stride-1
stem conv3x3 -> 32 so that 112x112 ends at 7x7, then ``conv1x1 -> 512 + PReLU -> GDC -> Linear -> BN1d``
instead of pooling + classifier.  TFace torchkit's own ``EfficientNetB0`` / ``B1`` are ``efficientnet_b0`` /
``_b1`` with ``head_bn='no_affine'`` (4,057,600 / 6,567,648 params).  Cost: O(N * MACs); see
``massface.backbones.profile``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .layers import ConvBNAct, GDCNet, HeadBN, SqueezeExcite

EFFICIENTNET_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 16, 1, 1),
    (6, 3, 24, 2, 2),
    (6, 5, 40, 2, 2),
    (6, 3, 80, 3, 2),
    (6, 5, 112, 3, 1),
    (6, 5, 192, 4, 2),
    (6, 3, 320, 1, 1),
)

DEPTH_FACTORS: dict[str, float] = {"b0": 1.0, "b1": 1.1}


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation (SE reduced to C_in / 4 channels)."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        layers: list[nn.Module] = [ConvBNAct(in_ch, mid, 1)] if expansion != 1 else []
        layers += [
            ConvBNAct(mid, mid, kernel, stride, groups=mid),
            SqueezeExcite(mid, max(1, in_ch // 4), act="relu", bias=False),
            ConvBNAct(mid, out_ch, 1, act="none"),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class EfficientNet(GDCNet):
    """EfficientNet body scaled in depth by ``depth_factor`` with the GDC embedding head.

    Args: ``embedding_size`` D; ``depth_factor`` repeat multiplier (1.0 = B0, 1.1 = B1); ``dropout`` before
    the projection; ``fc_bn`` BatchNorm1d after it; ``input_size`` a multiple of 16; ``head_bn`` that
    BatchNorm1d's convention (``'affine'``, or ``'no_affine'`` as in TFace torchkit's ``GDC``).
    """

    def __init__(
        self,
        embedding_size: int = 512,
        depth_factor: float = 1.0,
        dropout: float = 0.0,
        fc_bn: bool = True,
        input_size: int = 112,
        head_bn: HeadBN = "affine",
    ) -> None:
        if depth_factor <= 0:
            raise ValueError(f"depth_factor must be > 0; got {depth_factor}")
        channels = 32
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, 1)]
        for expansion, kernel, out_ch, repeats, stride in EFFICIENTNET_STAGES:
            for i in range(math.ceil(repeats * depth_factor)):
                layers.append(MBConv(channels, out_ch, expansion, kernel, stride if i == 0 else 1))
                channels = out_ch
        super().__init__(nn.Sequential(*layers), channels, embedding_size, input_size, dropout=dropout, fc_bn=fc_bn,
                         head_bn=head_bn)


def efficientnet(version: str, embedding_size: int = 512, **kw: object) -> EfficientNet:
    """TFace ``EfficientNetB0`` / ``EfficientNetB1`` (``version`` 'b0' or 'b1')."""
    if version not in DEPTH_FACTORS:
        raise ValueError(f"EfficientNet version must be one of {sorted(DEPTH_FACTORS)}; got {version!r}")
    return EfficientNet(embedding_size, DEPTH_FACTORS[version], **kw)  # type: ignore[arg-type]
