"""Helpers shared by the backbone tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone


def build_seeded(name: str, seed: int = 0, **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    return build_backbone(name, **kw)


def random_images(batch: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(name="_build")
def build():
    """``_build(name, seed=0, **options)``: ``build_backbone`` under ``torch.manual_seed(seed)``."""
    return build_seeded


@pytest.fixture(name="_images")
def images():
    """``_images(batch, size, seed=1)``: a seeded batch of random 3-channel square images."""
    return random_images
