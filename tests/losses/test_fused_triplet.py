"""FusedTripletLoss: the value and the gradient of TripletLoss on BatchAllMiner's / SemiHardMiner's triplets,
without the triplet list (float64, to 1e-10)."""

from __future__ import annotations

import pytest
import torch

from massface.losses import FusedTripletLoss, TripletLoss
from massface.mining import BatchAllMiner, SemiHardMiner

MINERS = {"all": BatchAllMiner, "semihard": SemiHardMiner}


def _reference(strategy, margin, reduction, soft, emb, labels, ref=None, ref_labels=None, distance="squared_euclidean"):
    miner = MINERS[strategy](margin=margin, distance=distance)
    triplets = miner(emb, labels, ref, ref_labels)
    loss = TripletLoss(margin=margin, reduction=reduction, soft=soft, distance=distance)
    return loss(emb, labels, triplets, ref, ref_labels), triplets


def _both(strategy, margin, reduction, soft, make, labels, ref_labels=None, distance="squared_euclidean"):
    out = []
    for fused in (False, True):
        emb, ref = make()
        if fused:
            value = FusedTripletLoss(strategy, margin, distance=distance, reduction=reduction, soft=soft)(
                emb, labels, ref_emb=ref, ref_labels=ref_labels)
        else:
            value, _ = _reference(strategy, margin, reduction, soft, emb, labels, ref, ref_labels, distance)
        leaves = [emb] + ([ref] if ref is not None and ref is not emb else [])
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
        out.append((value.detach(), [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]))
    return out


@pytest.mark.parametrize("strategy", ["all", "semihard"])
@pytest.mark.parametrize("reduction", ["mean", "nonzero_mean", "sum"])
@pytest.mark.parametrize("soft", [False, True])
def test_value_and_gradient_equal_the_mined_triplet_loss(strategy, reduction, soft):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        base = torch.randn(24, 8, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 6, (24,), generator=g)
        labels[0] = 99  # a single-image identity: an anchor without positives, a negative for everyone
        (v0, g0), (v1, g1) = _both(strategy, 0.3, reduction, soft, lambda: (base.clone().requires_grad_(), None),
                                   labels)
        assert v1.item() == pytest.approx(v0.item(), abs=1e-10, rel=1e-10)
        assert torch.allclose(g1[0], g0[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("strategy", ["all", "semihard"])
def test_reference_embeddings_and_self_pair_exclusion(strategy):
    g = torch.Generator().manual_seed(7)
    base = torch.randn(10, 6, generator=g, dtype=torch.float64)
    bank = torch.randn(30, 6, generator=g, dtype=torch.float64)
    labels, bank_labels = torch.randint(0, 4, (10,), generator=g), torch.randint(0, 4, (30,), generator=g)

    def make():
        emb = base.clone().requires_grad_()
        return emb, bank.clone().requires_grad_()

    (v0, g0), (v1, g1) = _both(strategy, 0.4, "mean", False, make, labels, bank_labels)
    assert v1.item() == pytest.approx(v0.item(), abs=1e-10)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
    # the batch as its own reference: (i, i) is never a positive, exactly as the miner
    emb = base.clone().requires_grad_()
    fused = FusedTripletLoss(strategy, 0.4)(emb, labels, ref_emb=emb, ref_labels=labels)
    ref, _ = _reference(strategy, 0.4, "mean", False, base, labels)
    assert fused.item() == pytest.approx(ref.item(), abs=1e-10)


def test_ties_and_the_strict_band_edges():
    # 1-D points on a line (unnormalised squared euclidean): many distances tie exactly, some at d_ap + m
    x = torch.tensor([[0.0], [1.0], [1.0], [2.0], [3.0], [3.0], [4.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    for strategy in ("all", "semihard"):
        for margin in (0.0, 1.0, 3.0):
            emb = x.clone().requires_grad_()
            fused = FusedTripletLoss(strategy, margin, normalize=False, reduction="sum")
            v1 = fused(emb, labels)
            (g1,) = torch.autograd.grad(v1, emb)
            emb = x.clone().requires_grad_()
            miner = MINERS[strategy](margin=margin, distance="squared_euclidean")
            miner.distance = fused.distance
            trip = miner(emb, labels)
            v0 = TripletLoss(margin=margin, reduction="sum", distance=fused.distance)(emb, labels, trip)
            (g0,) = torch.autograd.grad(v0, emb)
            assert v1.item() == pytest.approx(v0.item(), abs=1e-12), (strategy, margin)
            assert torch.allclose(g1, g0, atol=1e-12), (strategy, margin)
            assert fused.stats["num_triplets"] == trip[0].numel()


def test_empty_selection_is_a_connected_zero_and_stats_match_the_miner():
    emb = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    loss = FusedTripletLoss("all", 0.2)
    value = loss(emb, torch.arange(6))  # no positives at all
    value.backward()
    assert value.item() == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))
    assert loss.stats["num_triplets"] == 0
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(32, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(8).repeat_interleave(4)
    loss = FusedTripletLoss("all", 0.25)
    loss(emb, labels)
    miner = BatchAllMiner(margin=0.25)
    a, p, n = miner(emb, labels)
    assert loss.stats["num_triplets"] == a.numel()
    assert loss.stats["mean_d_ap"] == pytest.approx(miner.stats["mean_d_ap"], abs=1e-9)
    assert loss.stats["mean_d_an"] == pytest.approx(miner.stats["mean_d_an"], abs=1e-9)
    assert loss.stats["active_fraction"] == 1.0


def test_non_finite_rows_take_part_in_no_triplet_and_get_no_nan_gradient():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(16, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(4)
    bad = base.clone()
    bad[3, 1] = float("nan")
    emb = bad.clone().requires_grad_()
    value = FusedTripletLoss("all", 0.3)(emb, labels)
    (grad,) = torch.autograd.grad(value, emb)
    ref, _ = _reference("all", 0.3, "mean", False, bad, labels)
    assert value.item() == pytest.approx(ref.item(), abs=1e-10)
    assert torch.isfinite(grad).all() and torch.equal(grad[3], torch.zeros(4, dtype=torch.float64))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        FusedTripletLoss("hardest")
    with pytest.raises(ValueError, match="reduction"):
        FusedTripletLoss("all", reduction="max")
    with pytest.raises(ValueError, match="margin"):
        FusedTripletLoss("all", margin=-1.0)
    loss = FusedTripletLoss("all")
    emb = torch.randn(4, 3)
    with pytest.raises(ValueError, match="indices_tuple"):
        loss(emb, torch.tensor([0, 0, 1, 1]), (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb must be 2-D with 3 columns"):
        loss(emb, torch.tensor([0, 0, 1, 1]), ref_emb=torch.randn(4, 5), ref_labels=torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="ref_labels given without ref_emb"):
        loss(emb, torch.tensor([0, 0, 1, 1]), ref_labels=torch.tensor([0, 0, 1, 1]))


def test_hard_fraction_and_cosine_statistics_follow_the_miner():
    g = torch.Generator().manual_seed(11)
    emb = torch.randn(24, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(6).repeat_interleave(4)
    for distance in ("squared_euclidean", "cosine"):
        loss, miner = FusedTripletLoss("all", 0.3, distance=distance), BatchAllMiner(margin=0.3, distance=distance)
        loss(emb, labels)
        miner(emb, labels)
        for key in ("num_triplets", "hard_fraction", "mean_d_ap", "mean_d_an"):
            assert loss.stats[key] == pytest.approx(miner.stats[key], abs=1e-6), (distance, key)  # miner: float32 means


@pytest.mark.parametrize("strategy", ["all", "semihard"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
def test_every_statistic_and_percentile_equals_the_miners(strategy, soft, distance):
    g = torch.Generator().manual_seed(13)
    emb = torch.randn(40, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 9, (40,), generator=g)
    loss = FusedTripletLoss(strategy, 0.4, distance=distance, soft=soft, block_elements=64)  # several blocks
    miner = MINERS[strategy](margin=0.4, distance=distance)
    loss(emb, labels)
    miner(emb, labels)
    stats, expected = loss.stats, miner.stats
    assert set(expected) <= set(stats)
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, abs=1e-6), key  # the miner's means are float32
    assert loss.stats == stats  # computed once, then kept


def test_percentiles_of_a_weighted_list_equal_torch_quantile_of_the_list():
    from massface.losses.fused_triplet import _weighted_quantiles

    g = torch.Generator().manual_seed(2)
    for size in (1, 2, 7, 50):
        values = torch.randint(0, 5, (size,), generator=g).double()  # many ties
        weights = torch.randint(1, 6, (size,), generator=g)
        levels = [0.0, 0.1, 0.5, 0.9, 1.0]
        expected = torch.quantile(values.repeat_interleave(weights), torch.tensor(levels, dtype=torch.float64))
        assert _weighted_quantiles(values, weights, levels) == pytest.approx(expected.tolist(), abs=1e-12)


def test_block_elements_is_checked_and_does_not_change_the_result():
    with pytest.raises(ValueError, match="block_elements"):
        FusedTripletLoss("all", block_elements=0)
    with pytest.raises(ValueError, match="block_elements"):
        FusedTripletLoss("all", block_elements=2.5)
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(30, 5, generator=g, dtype=torch.float64)
    labels = torch.arange(10).repeat_interleave(3)
    values = [FusedTripletLoss("all", 0.5, block_elements=b)(emb, labels).item() for b in (1, 45, 1 << 20)]
    assert values == pytest.approx([values[0]] * 3, abs=1e-12)


def test_counts_do_not_compute_the_lazy_statistics():
    g = torch.Generator().manual_seed(6)
    emb = torch.randn(20, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(5).repeat_interleave(4)
    loss = FusedTripletLoss("all", 0.5)
    loss(emb, labels)
    triplets, active = loss.counts
    assert loss._bands is not None, "the sweep is still kept: nothing lazy was computed"
    assert triplets == active == loss.stats["num_triplets"] > 0
    assert loss._bands is None
    mined = TripletLoss(0.5, reduction="nonzero_mean")
    mined(emb, labels, BatchAllMiner(margin=0.5)(emb, labels))
    assert mined.counts == (mined.stats["num_triplets"], mined.stats["num_triplets"] * mined.stats["active_fraction"])
