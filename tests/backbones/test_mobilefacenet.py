"""MobileFaceNet: the paper's 128-d model and the massface 1024-d variant."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone, profile


def test_mobilefacenet_128d_matches_the_paper() -> None:
    # MobileFaceNets paper: about 0.99 M params and 221 M MAdds with a 128-d embedding.
    with torch.device("meta"):
        prof = profile(build_backbone("mobilefacenet", embedding_size=128))
    assert prof["params"] / 1e6 == pytest.approx(1.0, rel=0.02)
    assert prof["macs"] / 1e6 == pytest.approx(221, rel=0.02)



def test_massface_variant_has_1024d_bottleneck_with_bn() -> None:
    with torch.device("meta"):
        model = build_backbone("mobilefacenet_massface")
        plain = build_backbone("mobilefacenet_massface", fc_bn=False)
    assert model.embedding_size == 1024
    assert isinstance(model.head.bn, nn.BatchNorm1d) and model.head.bn.num_features == 1024
    assert isinstance(plain.head.bn, nn.Identity)
    assert profile(model)["params"] - profile(plain)["params"] == 2 * 1024
