"""Helpers shared by the mining tests."""

from __future__ import annotations

import pytest
from torch import nn


class ToyNet(nn.Module):
    """A linear embedder with BatchNorm, to see which BN statistics a pool pass uses."""

    def __init__(self, dim=12):
        super().__init__()
        self.bn = nn.BatchNorm1d(3 * 4 * 4)
        self.fc = nn.Linear(3 * 4 * 4, dim)

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


def as_triplet_set(t) -> set[tuple[int, int, int]]:
    a, p, n = (t.a, t.p, t.n) if hasattr(t, "a") else t
    return set(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.fixture(name="_ToyNet")
def toy_net():
    """The class ``ToyNet`` (3x4x4 inputs, BatchNorm then a linear layer)."""
    return ToyNet


@pytest.fixture
def triplet_set():
    """``triplet_set(t)``: a mined triplet set (a ``Triplets`` or an ``(a, p, n)`` tuple) as a set of index triples."""
    return as_triplet_set
