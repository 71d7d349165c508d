"""mining.strategies: the selection helpers (uniform subsets)."""

from __future__ import annotations

import torch

from massface.mining.strategies import uniform_subset


def test_uniform_subset_distinct_sorted():
    g = torch.Generator().manual_seed(0)
    for total, size in [(10, 3), (10, 9), (10**9, 1000), (5, 5)]:
        s = uniform_subset(total, size, g, torch.device("cpu"))
        assert s.numel() == min(size, total) and torch.equal(s, s.unique())
        assert int(s.min()) >= 0 and int(s.max()) < total
