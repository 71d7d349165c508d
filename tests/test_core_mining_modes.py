"""Mining modes beyond one batch: offline (faiss) against brute force, semi-online pools, cross-batch memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import nn

from massface.distances import dissimilarity_matrix, resolve_distance
from massface.losses import TripletLoss
from massface.mining import (
    PRESETS,
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMinMiner,
    CrossBatchMemory,
    IndexConfig,
    OfflineTripletSearch,
    TripletBatchDataset,
    TripletPoolBuilder,
    embed_dataset,
    pack_triplets,
)

DETERMINISTIC = ("all", "hardest", "min_min", "min_max", "semihard")


def triplet_set(t) -> set[tuple[int, int, int]]:
    a, p, n = (t.a, t.p, t.n) if hasattr(t, "a") else t
    return set(zip(a.tolist(), p.tolist(), n.tolist()))


def data(n=70, ids=13, dim=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, ids, (n,), generator=g)
    labels[-1] = ids + 5  # a singleton identity: negative only
    return torch.randn(n, dim, generator=g, dtype=dtype), labels


# ---------------------------------------------------------------------------------------------- offline
@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_offline_exact_index_equals_brute_force(name, distance):
    e, y = data()
    online = PRESETS[name](margin=0.3, distance=distance)(e, y)
    offline = OfflineTripletSearch(PRESETS[name](margin=0.3, distance=distance), neighbours=len(y), index="flat",
                           chunk_size=9).mine_triplets(e, y)
    assert triplet_set(offline) == triplet_set(online)
    assert len(offline) and not bool((offline.a == offline.p).any()), "an anchor is never its own positive"


@pytest.mark.parametrize("k", [1, 3])
def test_offline_hardest_negative_needs_only_the_nearest_neighbours(k):
    e, y = data(n=120, ids=20, seed=1)
    for cls in (BatchHardestMiner, BatchMinMinMiner):
        online = cls()(e, y)
        offline = OfflineTripletSearch(cls(), neighbours=k, index="flat", chunk_size=16).mine_triplets(e, y)
        assert triplet_set(offline) == triplet_set(online), cls.__name__


def test_offline_small_k_restricts_negatives_to_the_neighbours():
    e, y = data(n=90, ids=15, seed=2)
    k = 4
    miner = OfflineTripletSearch(BatchAllMiner(margin=0.5), neighbours=k, index="flat")
    near = miner.nearest_negatives(e, y)
    got = miner.mine_triplets(e, y)
    D = dissimilarity_matrix(resolve_distance("squared_euclidean"), e)
    for a, p, n in zip(got.a.tolist(), got.p.tolist(), got.n.tolist()):
        assert y[a] == y[p] and a != p and y[n] != y[a]
        assert n in near[a].tolist()
        assert D[a, n] < D[a, p] + 0.5
    # the k neighbours are the k nearest of other identities, nearest first
    for a in range(len(y)):
        others = [j for j in range(len(y)) if y[j] != y[a]]
        expected = sorted(others, key=lambda j: float(D[a, j]))[:k]
        assert near[a].tolist() == expected


def test_offline_ivf_with_all_lists_probed_equals_flat_and_hnsw_is_valid():
    e, y = data(n=400, ids=40, dim=16, seed=3, dtype=torch.float32)
    flat = OfflineTripletSearch(BatchHardestMiner(), neighbours=2, index="flat").mine_triplets(e, y)
    ivf = OfflineTripletSearch(BatchHardestMiner(), neighbours=2,
                       index=IndexConfig(kind="ivf", nlist=8, nprobe=8)).mine_triplets(e, y)
    assert triplet_set(ivf) == triplet_set(flat)
    hnsw = OfflineTripletSearch(BatchHardestMiner(), neighbours=2, index="hnsw").mine_triplets(e, y)
    assert len(hnsw) == len(flat)
    assert bool((y[hnsw.a] == y[hnsw.p]).all() and (y[hnsw.a] != y[hnsw.n]).all())
    agree = len(triplet_set(hnsw) & triplet_set(flat)) / len(flat)
    assert agree > 0.9


def test_offline_identity_index_probes_the_nearest_identities():
    e, y = data(n=300, ids=30, dim=16, seed=5, dtype=torch.float32)
    flat = OfflineTripletSearch(BatchHardestMiner(), neighbours=3, index="flat").mine_triplets(e, y)
    every = OfflineTripletSearch(BatchHardestMiner(), neighbours=3, index=IndexConfig(kind="identity", nprobe=1000))
    assert triplet_set(every.mine_triplets(e, y)) == triplet_set(flat), "probing every identity is exact"
    few = OfflineTripletSearch(BatchHardestMiner(), neighbours=3, index=IndexConfig(kind="identity", nprobe=2))
    near = few.nearest_negatives(e, y)
    x = torch.nn.functional.normalize(e, dim=1)
    ids = torch.unique(y)
    centroids = torch.nn.functional.normalize(torch.stack([x[y == c].sum(0) for c in ids]), dim=1)
    for a in range(0, 300, 17):
        own = int((ids == y[a]).nonzero())
        sims = centroids @ centroids[own]
        sims[own] = -2.0
        allowed = {int(ids[i]) for i in sims.topk(2).indices}
        found = [j for j in near[a].tolist() if j >= 0]
        assert found and {int(y[j]) for j in found} <= allowed, "only the 2 nearest other identities are probed"
        candidates = [j for j in range(300) if int(y[j]) in allowed]
        best = max(candidates, key=lambda j: float(x[a] @ x[j]))
        assert found[0] == best


def test_offline_max_triplets_is_a_uniform_cap_over_the_whole_set():
    e, y = data(n=80, seed=4)
    full = triplet_set(OfflineTripletSearch(BatchAllMiner(margin=0.4), neighbours=80, chunk_size=10).mine_triplets(e, y))
    capped = OfflineTripletSearch(BatchAllMiner(margin=0.4, max_triplets=100), neighbours=80, chunk_size=10)
    got = capped.mine_triplets(e, y)
    assert len(got) == 100 and triplet_set(got) <= full
    assert capped.stats["num_triplets"] == 100 and 0 < capped.stats["active_fraction"] <= 1


def test_offline_errors_and_index_config():
    with pytest.raises(TypeError, match="TripletMiner"):
        OfflineTripletSearch(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="neighbours"):
        OfflineTripletSearch(BatchHardestMiner(), neighbours=0)
    with pytest.raises(ValueError, match="kind"):
        IndexConfig(kind="lsh")  # type: ignore[arg-type]
    # NaN rows join no triplet (as online); all-NaN input gives the empty selection, not an error
    assert len(OfflineTripletSearch(BatchHardestMiner()).mine_triplets(torch.full((4, 3), float("nan")), torch.tensor([0, 0, 1, 1]))) == 0
    cfg = IndexConfig()
    assert cfg.resolved_kind(1000) == "flat" and cfg.resolved_kind(2_000_000) == "identity"
    assert cfg.resolved_nlist(1_000_000) == 4096


# ---------------------------------------------------------------------------------------------- batches
@pytest.mark.parametrize("batch_size", [3, 7, 10, 205])
def test_pack_triplets_keeps_every_triplet_whole_once(batch_size):
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randint(0, 50, (301,), generator=g) for _ in range(3))
    batches = pack_triplets(a, p, n, batch_size // 3, generator=g)
    seen = []
    for b in batches:
        assert b.num_triplets <= batch_size // 3 and b.indices.numel() <= batch_size
        assert torch.equal(b.indices, torch.unique(b.indices))
        seen += list(zip(*(t.tolist() for t in b.triplets())))
    assert sorted(seen) == sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    assert len(pack_triplets(a, p, n, 100, generator=g, drop_last=True)) == 3
    with pytest.raises(ValueError, match="Generator"):
        pack_triplets(a, p, n, 5)


class _ToyNet(nn.Module):
    """A linear embedder with BatchNorm, to see which BN statistics a pool pass uses."""

    def __init__(self, dim=12):
        super().__init__()
        self.bn = nn.BatchNorm1d(3 * 4 * 4)
        self.fc = nn.Linear(3 * 4 * 4, dim)

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


def test_semi_online_batches_hold_exactly_the_selected_triplets():
    torch.manual_seed(0)
    model = _ToyNet().train()
    images = torch.randn(60, 3, 4, 4)
    labels = torch.arange(15).repeat_interleave(4)
    semi = TripletPoolBuilder(BatchAllMiner(margin=0.5), batch_size=20, seed=1)
    running = model.bn.running_mean.clone()
    pool = semi.mine_pool(model, images, labels)
    assert model.training and torch.equal(model.bn.running_mean, running), "bn='eval' leaves BN statistics alone"
    model.eval()
    with torch.no_grad():
        expected = triplet_set(BatchAllMiner(margin=0.5)(model(images), labels))
    assert triplet_set(pool.triplets) == expected and len(expected) > 20
    got = []
    for (x, y, (a, p, n)), b in zip(pool, pool.batches):
        assert x.shape[0] <= 20 and a.numel() <= 6
        assert torch.equal(x, images[b.indices]) and torch.equal(y, labels[b.indices])
        got += list(zip(*(t.tolist() for t in b.triplets())))
    assert sorted(got) == sorted(expected), "every selected triplet in exactly one batch"


def test_semi_online_bn_train_mode_updates_running_statistics():
    model = _ToyNet().eval()
    before = model.bn.running_mean.clone()
    TripletPoolBuilder(BatchHardestMiner(), batch_size=8, bn="train").mine_pool(
        model, torch.randn(24, 3, 4, 4) + 3.0, torch.arange(6).repeat_interleave(4))
    assert not model.training and not torch.equal(model.bn.running_mean, before)


def test_triplet_batch_dataset_loads_batches_from_a_dataset():
    images = torch.randn(30, 3, 4, 4)
    labels = torch.arange(10).repeat_interleave(3)
    source = list(zip(images, labels.tolist()))
    a, p, n = BatchAllMiner(margin=2.0)(images.flatten(1), labels)
    ds = TripletBatchDataset(source, pack_triplets(a, p, n, 4, generator=torch.Generator().manual_seed(0)))
    for (x, y, (ta, tp, tn)), b in zip(ds, ds.batches):
        assert torch.equal(x, images[b.indices]) and torch.equal(y, labels[b.indices])
        assert bool((y[ta] == y[tp]).all() and (y[ta] != y[tn]).all())


def test_embed_dataset_matches_direct_forward():
    model = _ToyNet().train()
    images = torch.randn(23, 3, 4, 4)
    source = list(zip(images, range(23)))
    emb, lab = embed_dataset(model, source, indices=[5, 1, 7, 22], batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(emb, model(images[[5, 1, 7, 22]]))
    assert lab.tolist() == [5, 1, 7, 22]


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


def test_memory_mining_excludes_self_pairs_and_equals_brute_force():
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


def test_miner_self_index_argument_is_checked():
    e = torch.randn(4, 3)
    y = torch.tensor([0, 0, 1, 1])
    miner = BatchHardestMiner()
    ref = torch.cat([e, e])
    a, p, _ = miner(e, y, ref, torch.cat([y, y]), self_index=torch.arange(4))
    assert not bool((a == p).any())
    with pytest.raises(ValueError, match="self_index"):
        miner(e, y, ref, torch.cat([y, y]), self_index=torch.arange(3))
    assert np.isfinite(miner.stats["mean_d_ap"])
