"""CrossBatchMemory: FIFO queue, mining against the memory without self pairs, gradients to the batch only."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss

from massface.distances import dissimilarity_matrix, resolve_distance
from massface.losses import TripletLoss
from massface.mining import (
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMinMiner,
    CrossBatchMemory,
)


# ---------------------------------------------------------------------------------------------- memory
def test_memory_queue_is_fifo_and_reports_oldest_first():
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), memory_size=10, embedding_size=2)
    rows = torch.arange(24, dtype=torch.float32).view(12, 2)
    for b in range(3):
        xbm.enqueue(rows[4 * b : 4 * b + 4], torch.arange(4 * b, 4 * b + 4))
    emb, lab = xbm.contents()
    assert lab.tolist() == list(range(2, 12)) and torch.equal(emb, rows[2:12])
    xbm.enqueue(rows[:3], torch.tensor([100, 101, 102]))
    assert xbm.contents()[1].tolist() == list(range(5, 12)) + [100, 101, 102]
    xbm.enqueue(rows, torch.arange(12))  # larger than the memory: its last 10 rows
    assert xbm.contents()[1].tolist() == list(range(2, 12))
    state = xbm.state_dict()
    other = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), memory_size=10, embedding_size=2)
    other.load_state_dict(state)
    assert torch.equal(other.contents()[0], xbm.contents()[0])
    xbm.reset()
    assert xbm.contents()[0].shape == (0, 2)



def test_memory_mining_excludes_self_pairs_and_equals_brute_force(triplet_set):
    g = torch.Generator().manual_seed(0)
    margin = 5.0  # every triplet violates it: a self-pair would be selected if it were not excluded
    xbm = CrossBatchMemory(TripletLoss(margin=margin), BatchAllMiner(margin=margin), memory_size=16,
                           embedding_size=6)
    first = torch.randn(8, 6, generator=g, dtype=torch.float64)
    y1 = torch.arange(4).repeat_interleave(2)
    (a, p, n), ref, _ = xbm.mine_with_reference(first.float(), y1)
    assert ref.shape[0] == 8 and not bool((a == p).any())
    assert triplet_set((a, p, n)) == triplet_set(BatchAllMiner(margin=margin)(first.float(), y1))
    xbm.enqueue(first.float(), y1)
    batch = torch.randn(6, 6, generator=g)
    y2 = torch.tensor([0, 0, 1, 5, 5, 6])
    (a, p, n), ref, ref_y = xbm.mine_with_reference(batch, y2)
    assert ref.shape[0] == 14 and torch.equal(ref[:6], batch) and torch.equal(ref_y[6:], y1)
    D = dissimilarity_matrix(resolve_distance("squared_euclidean"), batch, ref)
    expected = {(i, j, k) for i in range(6) for j in range(14) for k in range(14)
                if ref_y[j] == y2[i] and j != i and ref_y[k] != y2[i] and D[i, k] < D[i, j] + margin}
    assert triplet_set((a, p, n)) == expected
    assert any(j >= 6 for _, j, _ in expected), "the memory supplies positives of the batch's identities"
    a, p, _ = CrossBatchMemory(TripletLoss(), BatchMinMinMiner(), 16, 6).mine_with_reference(batch, y2)[0]
    assert len(a) and not bool((a == p).any()), "the easiest positive would be the anchor itself"



def test_memory_loss_backpropagates_to_the_batch_only_and_warms_up():
    torch.manual_seed(0)
    for loss in (TripletLoss(margin=0.2), TripletMarginLoss(margin=0.2)):
        xbm = CrossBatchMemory(loss, BatchHardestMiner(), memory_size=32, embedding_size=5, start_after=1)
        for step in range(3):
            e = torch.randn(8, 5, requires_grad=True)
            y = torch.arange(4).repeat_interleave(2)
            ref_size = xbm.reference(e, y)[0].shape[0]
            assert ref_size == (8 if step < 1 else 8 + 8 * step), "warm-up: no memory on the first call"
            value = xbm(e, y)
            value.backward()
            assert e.grad is not None and torch.isfinite(e.grad).all()
            assert not xbm.memory_embeddings.requires_grad
    with pytest.raises(TypeError, match="TripletMiner"):
        CrossBatchMemory(TripletLoss(), object(), 8, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory_size"):
        CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 0, 4)
