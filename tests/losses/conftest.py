"""Helpers shared by the loss tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def batch():
    """``batch(seed=0, n=16, d=8, classes=4)``: ``n`` seeded Gaussian embeddings of size ``d`` and labels
    ``arange(n) % classes``."""

    def make(seed: int = 0, n: int = 16, d: int = 8, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, d, generator=gen), torch.arange(n) % classes

    return make
