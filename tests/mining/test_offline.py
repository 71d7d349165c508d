"""OfflineTripletSearch: exact and approximate indexes against brute force, the uniform cap, embed_dataset."""

from __future__ import annotations

import pytest
import torch

from massface.distances import dissimilarity_matrix, resolve_distance
from massface.mining import (
    PRESETS,
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMinMiner,
    IndexConfig,
    OfflineTripletSearch,
    embed_dataset,
)

DETERMINISTIC = ("all", "hardest", "min_min", "min_max", "semihard")



def data(n=70, ids=13, dim=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, ids, (n,), generator=g)
    labels[-1] = ids + 5  # a singleton identity: negative only
    return torch.randn(n, dim, generator=g, dtype=dtype), labels



# ---------------------------------------------------------------------------------------------- offline
@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_offline_exact_index_equals_brute_force(name, distance, triplet_set):
    e, y = data()
    online = PRESETS[name](margin=0.3, distance=distance)(e, y)
    offline = OfflineTripletSearch(PRESETS[name](margin=0.3, distance=distance), neighbours=len(y), index="flat",
                           chunk_size=9).mine_triplets(e, y)
    assert triplet_set(offline) == triplet_set(online)
    assert len(offline) and not bool((offline.a == offline.p).any()), "an anchor is never its own positive"



@pytest.mark.parametrize("k", [1, 3])
def test_offline_hardest_negative_needs_only_the_nearest_neighbours(k, triplet_set):
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



def test_offline_ivf_with_all_lists_probed_equals_flat_and_hnsw_is_valid(triplet_set):
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



def test_offline_identity_index_probes_the_nearest_identities(triplet_set):
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



def test_offline_max_triplets_is_a_uniform_cap_over_the_whole_set(triplet_set):
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



def test_embed_dataset_matches_direct_forward(_ToyNet):
    model = _ToyNet().train()
    images = torch.randn(23, 3, 4, 4)
    source = list(zip(images, range(23)))
    emb, lab = embed_dataset(model, source, indices=[5, 1, 7, 22], batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(emb, model(images[[5, 1, 7, 22]]))
    assert lab.tolist() == [5, 1, 7, 22]
