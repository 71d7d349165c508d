"""Helpers shared by the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


class TinyNet(torch.nn.Module):
    """Deterministic small embedding net: conv -> pool -> linear, 8-d output."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 8)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


def random_pairs(n_pairs=40, size=16, seed=0):
    rng = np.random.default_rng(seed)
    issame = np.arange(n_pairs) % 2 == 0
    imgs = np.empty((2 * n_pairs, size, size, 3), np.uint8)
    for k in range(n_pairs):
        a = rng.integers(0, 256, (size, size, 3))
        b = np.clip(a + rng.integers(-6, 7, a.shape), 0, 255) if issame[k] else rng.integers(0, 256, a.shape)
        imgs[2 * k], imgs[2 * k + 1] = a, b
    return imgs, issame


@pytest.fixture(name="TinyNet")
def tiny_net():
    """The class ``TinyNet``: a deterministic conv -> pool -> linear embedder with 8-d output."""
    return TinyNet


@pytest.fixture(name="_pairs")
def pairs():
    """``_pairs(n_pairs=40, size=16, seed=0)``: ``(images, issame)``, even pairs near-duplicates, odd ones random."""
    return random_pairs
