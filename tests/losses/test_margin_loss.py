"""MarginLoss (Wu et al. 2017) against PML's MarginLoss, and distance-weighted sampling against its formula."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from massface.losses import MarginLoss
from massface.mining import BatchAllMiner, DistanceWeightedMiner


def batch(n=16, ids=4, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.arange(n) % ids


@pytest.mark.parametrize(("learn_beta", "nu", "num_classes"), [(False, 0.0, None), (True, 0.1, None),
                                                              (True, 0.05, 4), (False, 0.0, 4)])
def test_margin_loss_equals_pml_on_the_same_triplets(learn_beta, nu, num_classes):
    x, y = batch()
    triplets = BatchAllMiner(margin=10.0)(x, y)  # every triplet
    ours = MarginLoss(margin=0.2, beta=1.1, learn_beta=learn_beta, nu=nu, num_classes=num_classes).double()
    theirs = pml_losses.MarginLoss(margin=0.2, beta=1.1, learn_beta=learn_beta, nu=nu, num_classes=num_classes)
    if learn_beta:
        theirs.beta = torch.nn.Parameter(theirs.beta.double().detach())
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a = ours(xa, y, triplets)
    b = theirs(xb, y, triplets)
    torch.testing.assert_close(a, b.to(a.dtype))
    a.backward()
    b.backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    if learn_beta:
        torch.testing.assert_close(ours.beta.grad, theirs.beta.grad)


def test_margin_loss_defaults_to_distance_weighted_sampling_and_refuses_similarities():
    x, y = batch(seed=1)
    loss = MarginLoss()
    assert isinstance(loss.miner, DistanceWeightedMiner)
    value = loss(x.float().requires_grad_(), y)
    assert torch.isfinite(value) and loss.stats["num_triplets"] == 16 * 3  # one negative per (a, p) pair
    with pytest.raises(ValueError, match="β is a distance"):
        MarginLoss(distance="cosine")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        MarginLoss(num_classes=3)(x, y, BatchAllMiner(margin=10.0)(x, y))


def test_distance_weighted_sampling_follows_inverse_sphere_density():
    """P(n | a, p) ∝ 1/q(max(d, cutoff)) for d < nonzero_loss_cutoff, q(d) = d^(D-2) (1 - d²/4)^((D-3)/2)."""
    dim = 8
    x, y = batch(n=12, ids=3, dim=dim, seed=2)
    xn = torch.nn.functional.normalize(x, dim=1)
    d = torch.cdist(xn, xn)
    anchor = 0
    weights = {}
    for j in range(12):
        if y[j] != y[anchor] and d[anchor, j] < 1.4:
            r = max(float(d[anchor, j]), 0.5)
            weights[j] = 1.0 / (r ** (dim - 2) * (1 - r * r / 4) ** ((dim - 3) / 2))
    total = sum(weights.values())
    miner = DistanceWeightedMiner(distance="euclidean", seed=0)
    counts = dict.fromkeys(weights, 0)
    draws = 0
    for _ in range(3000):
        a, p, n = miner(x, y)
        for n_j in n[a == anchor].tolist():
            assert n_j in weights, "only negatives below nonzero_loss_cutoff are drawn"
            counts[n_j] += 1
            draws += 1
    for j, w in weights.items():
        assert abs(counts[j] / draws - w / total) < 0.02, (j, counts[j] / draws, w / total)
    assert len(weights) >= 3 and math.isclose(sum(counts.values()), draws)


def test_distance_weighted_miner_is_seeded_and_works_with_squared_and_cosine():
    x, y = batch(seed=3)
    first = DistanceWeightedMiner(seed=5)(x, y)
    again = DistanceWeightedMiner(seed=5)(x, y)
    assert all(torch.equal(u, v) for u, v in zip(first, again))
    for distance in ("squared_euclidean", "cosine", "euclidean"):
        a, p, n = DistanceWeightedMiner(distance=distance, seed=5)(x, y)
        assert a.numel() == 16 * 3 and bool((y[a] == y[p]).all()) and bool((y[a] != y[n]).all())
    with pytest.raises(ValueError, match="normalised"):
        DistanceWeightedMiner(normalize=False)
    with pytest.raises(ValueError, match="nonzero_loss_cutoff"):
        DistanceWeightedMiner(nonzero_loss_cutoff=0.0)
