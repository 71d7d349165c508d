"""Suite-wide settings: one intra-op thread (the suite runs on 2 shared cores, where OpenMP spinning
between two busy threads costs more than it gains) and a headless matplotlib backend."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture
def nan_on_call():
    """``nan_on_call(trainer, k)``: the ``k``-th forward of ``trainer.net`` (1-based) returns a NaN loss; returns
    the list that records every call, so a test can count forwards."""

    def poison(trainer, k: int) -> list:
        forward, calls = trainer.net.forward, []

        def forward_with_nan(*args, **kwargs):
            calls.append(1)
            loss = forward(*args, **kwargs)
            return loss * float("nan") if len(calls) == k else loss

        trainer.net.forward = forward_with_nan
        return calls

    return poison


@pytest.fixture
def batch():
    """``batch(n=12, d=6, classes=3, seed=0)``: ``n`` seeded Gaussian embeddings of size ``d`` and labels
    ``arange(n) % classes`` (the convention tests' batch; tests/losses/conftest.py has its own)."""

    def make(n: int = 12, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, d, generator=g), torch.arange(n) % classes

    return make
