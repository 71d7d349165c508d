"""TripletLoss: formula, reductions, indices from any miner, empty sets, PML interoperability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from massface.losses import TripletLoss
from massface.losses.triplet import pairs_to_triplets
from massface.mining import BatchAllMiner, BatchHardestMiner, BatchMinMaxMiner, SemiHardMiner


def batch(n_id=6, k=4, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n_id * k, dim, generator=g, dtype=torch.float64, requires_grad=True)
    return e, torch.arange(n_id).repeat_interleave(k)



def manual(e, a, p, n, margin, soft=False):
    x = F.normalize(e, dim=1)
    d_ap = (x[a] - x[p]).pow(2).sum(1)
    d_an = (x[a] - x[n]).pow(2).sum(1)
    z = d_ap - d_an + margin
    return F.softplus(z) if soft else F.relu(z)



@pytest.mark.parametrize("soft", [False, True])
def test_formula_and_reductions(soft):
    e, y = batch()
    idx = BatchHardestMiner()(e, y)
    per = manual(e, *idx, 0.3, soft)
    for reduction, expected in [
        ("mean", per.mean()),
        ("sum", per.sum()),
        ("nonzero_mean", per.sum() / (per > 0).sum()),
    ]:
        loss = TripletLoss(margin=0.3, soft=soft, reduction=reduction)(e, y, idx)
        torch.testing.assert_close(loss, expected)
    loss = TripletLoss(margin=0.3, soft=soft)(e, y, idx)
    g1 = torch.autograd.grad(loss, e)[0]
    g2 = torch.autograd.grad(per.mean(), e)[0]
    torch.testing.assert_close(g1, g2)



def test_default_mines_batch_all_and_records_parts():
    e, y = batch()
    loss_fn = TripletLoss(margin=0.2)
    loss = loss_fn(e, y)
    idx = BatchAllMiner(margin=0.2)(e, y)
    torch.testing.assert_close(loss, manual(e, *idx, 0.2).mean())
    assert loss_fn.parts["num_triplets"] == len(idx[0]) and loss_fn.parts["active_fraction"] == 1.0



def test_empty_triplets_zero_loss_that_backpropagates():
    e = torch.randn(5, 4, requires_grad=True)
    y = torch.arange(5)  # no positives anywhere
    for reduction in ("mean", "nonzero_mean", "sum"):
        loss = TripletLoss(reduction=reduction)(e, y)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(e.grad, torch.zeros_like(e))
        e.grad = None



def test_pair_tuples_join_on_anchor_like_pml():
    e, y = batch(seed=2)
    pairs = pml_miners.MultiSimilarityMiner(epsilon=0.5)(e, y)
    ours = set(zip(*(t.tolist() for t in pairs_to_triplets(*pairs))))
    theirs = set(zip(*(t.tolist() for t in lmu.convert_to_triplets(pairs, y))))
    assert ours == theirs and len(ours) > 0
    loss = TripletLoss(margin=0.2)(e, y, pairs)
    a, p, n = pairs_to_triplets(*pairs)
    torch.testing.assert_close(loss, manual(e, a, p, n, 0.2).mean())



@pytest.mark.parametrize("miner", [BatchHardestMiner(distance="euclidean"), BatchAllMiner(distance="euclidean"),
                                   SemiHardMiner(distance="euclidean"), BatchMinMaxMiner(distance="euclidean")])
def test_pml_loss_consumes_our_miners_and_equals_ours(miner):
    e, y = batch(seed=3)
    idx = miner(e, y)
    theirs = pml_losses.TripletMarginLoss(margin=0.2)(e, y, idx)  # Euclidean, AvgNonZero
    ours = TripletLoss(margin=0.2, distance="euclidean", reduction="nonzero_mean")(e, y, idx)
    torch.testing.assert_close(ours, theirs)



def test_our_loss_consumes_pml_miners():
    e, y = batch(seed=4)
    for miner in (pml_miners.BatchHardMiner(), pml_miners.TripletMarginMiner(margin=0.2)):
        idx = miner(e, y)
        ours = TripletLoss(margin=0.2, distance=pml_distances.LpDistance(), reduction="nonzero_mean")(e, y, idx)
        theirs = pml_losses.TripletMarginLoss(margin=0.2)(e, y, idx)
        torch.testing.assert_close(ours, theirs)



def test_cosine_matches_pml_convention():
    e, y = batch(seed=5)
    idx = BatchAllMiner(margin=0.1, distance="cosine")(e, y)
    ours = TripletLoss(margin=0.1, distance="cosine", reduction="nonzero_mean")(e, y, idx)
    theirs = pml_losses.TripletMarginLoss(margin=0.1, distance=pml_distances.CosineSimilarity())(e, y, idx)
    torch.testing.assert_close(ours, theirs)



def test_reference_embeddings_and_per_triplet_path():
    e, y = batch(n_id=3, k=2, seed=6)
    ref = torch.randn(400, 8, dtype=torch.float64, requires_grad=True)
    ref_y = torch.arange(400) % 3
    idx = BatchHardestMiner()(e, y, ref, ref_y)  # few triplets, large reference: per-triplet distances
    loss = TripletLoss(margin=0.2)(e, y, idx, ref, ref_y)
    x, r = F.normalize(e, dim=1), F.normalize(ref, dim=1)
    a, p, n = idx
    expected = F.relu((x[a] - r[p]).pow(2).sum(1) - (x[a] - r[n]).pow(2).sum(1) + 0.2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert ref.grad is not None and e.grad is not None



def test_duplicate_points_give_finite_gradients_with_euclidean():
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = TripletLoss(margin=2.0, distance="euclidean")(e, y, BatchHardestMiner()(e, y))
    loss.backward()
    assert torch.isfinite(e.grad).all()



def test_low_precision_autocast_no_nan():
    e, y = batch(seed=7)
    lin = torch.nn.Linear(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(e.detach().float())
        assert out.dtype == torch.bfloat16
        loss = TripletLoss()(out, y)
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(lin.weight.grad).all()



@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.randn(4, 3), torch.arange(4), (torch.tensor([0]), torch.tensor([9]), torch.tensor([1]))), "positive"),
        ((torch.randn(4, 3), torch.arange(4), (torch.tensor([0]), torch.tensor([1]))), "indices_tuple"),
        ((torch.randn(4, 3), torch.arange(4), (torch.tensor([0.0]), torch.tensor([1]), torch.tensor([2]))), "integer"),
        ((torch.randn(4, 3), torch.arange(3)), "rows"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        TripletLoss()(*args)
    with pytest.raises(ValueError, match="reduction"):
        TripletLoss(reduction="median")
