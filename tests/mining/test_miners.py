"""Miners against brute-force enumeration of DESIGN.md's definitions, and against PML where they agree; one default margin."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.utils.distributed import DistributedMinerWrapper

from massface.distances import dissimilarity_matrix, resolve_distance
from massface.losses import TripletLoss
from massface.mining import (
    DEFAULT_MARGIN,
    PRESETS,
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMaxMiner,
    BatchMinMinMiner,
    BatchRandomMiner,
    SemiHardMiner,
    TripletMiner,
)


# ---------------------------------------------------------------- one default margin
def test_one_default_margin_for_every_miner_and_the_triplet_loss() -> None:
    assert DEFAULT_MARGIN == 0.25
    assert TripletMiner().margin == DEFAULT_MARGIN and TripletLoss().margin == DEFAULT_MARGIN
    for cls in PRESETS.values():
        assert cls().margin == DEFAULT_MARGIN, cls.__name__
        assert inspect.signature(cls.__init__).parameters["margin"].default == DEFAULT_MARGIN



MARGIN = 0.3



def label_cases():
    g = torch.Generator().manual_seed(1)
    yield "pk", torch.arange(5).repeat_interleave(4)
    yield "random", torch.randint(0, 5, (17,), generator=g)
    yield "singletons", torch.arange(9)
    yield "one_identity", torch.zeros(8, dtype=torch.long)
    yield "mixed_sizes", torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4])
    yield "single_item", torch.tensor([3])
    yield "unsorted_blocks", torch.tensor([2, 0, 2, 1, 0, 1, 2, 0, 7, 1])



def embed(n, dim=6, seed=0, duplicates=False):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, dim, generator=g, dtype=torch.float64)
    if duplicates and n >= 4:
        e[1] = e[0]
        e[3] = e[2]
    return e



def brute_force(miner_name, D, y, ry, self_ref):
    """Triplets by the literal definitions (Python loops)."""
    n_q, n_r = D.shape
    out = []
    for a in range(n_q):
        pos = [p for p in range(n_r) if ry[p] == y[a] and not (self_ref and p == a)]
        neg = [n for n in range(n_r) if ry[n] != y[a]]
        if miner_name == "all":
            out += [(a, p, n) for p in pos for n in neg if D[a, n] < D[a, p] + MARGIN]
        elif miner_name == "semihard":
            out += [(a, p, n) for p in pos for n in neg if D[a, p] < D[a, n] < D[a, p] + MARGIN]
        elif pos and neg:
            if miner_name == "hardest":
                out.append((a, max(D[a, p] for p in pos), min(D[a, n] for n in neg)))
            elif miner_name == "minmin":
                out.append((a, min(D[a, p] for p in pos), min(D[a, n] for n in neg)))
            elif miner_name == "minmax":
                dp = max(D[a, p] for p in pos)
                beyond = [D[a, n] for n in neg if D[a, n] > dp]
                out.append((a, dp, min(beyond) if beyond else min(D[a, n] for n in neg)))
    return out



SET_MINERS = {"all": BatchAllMiner, "semihard": SemiHardMiner}



PER_ANCHOR = {"hardest": BatchHardestMiner, "minmin": BatchMinMinMiner, "minmax": BatchMinMaxMiner}



@pytest.mark.parametrize("distance", ["squared_euclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("case", list(label_cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("duplicates", [False, True])
def test_miners_equal_brute_force(distance, case, duplicates):
    _, y = case
    e = embed(len(y), duplicates=duplicates)
    D = dissimilarity_matrix(resolve_distance(distance), e)
    for name, cls in SET_MINERS.items():
        got = set(zip(*(t.tolist() for t in cls(margin=MARGIN, distance=distance)(e, y))))
        assert got == set(brute_force(name, D, y.tolist(), y.tolist(), True)), name
    for name, cls in PER_ANCHOR.items():
        a, p, n = cls(distance=distance)(e, y)
        expected = brute_force(name, D, y.tolist(), y.tolist(), True)
        assert a.tolist() == [t[0] for t in expected], name
        for ai, pi, ni, (_, dp, dn) in zip(a.tolist(), p.tolist(), n.tolist(), expected):
            assert y[pi] == y[ai] and pi != ai and y[ni] != y[ai]
            assert D[ai, pi] == dp and D[ai, ni] == dn, name



@pytest.mark.parametrize("case", list(label_cases())[:3], ids=lambda c: c[0])
def test_miners_with_separate_reference(case):
    _, y = case
    e = embed(len(y), seed=3)
    ref = embed(12, seed=4)
    ry = torch.arange(12) % 4
    D = dissimilarity_matrix(resolve_distance("squared_euclidean"), e, ref)
    for name, cls in SET_MINERS.items():
        got = set(zip(*(t.tolist() for t in cls(margin=MARGIN)(e, y, ref, ry))))
        assert got == set(brute_force(name, D, y.tolist(), ry.tolist(), False))
    a, p, n = BatchHardestMiner()(e, y, ref, ry)
    expected = brute_force("hardest", D, y.tolist(), ry.tolist(), False)
    assert a.tolist() == [t[0] for t in expected]
    assert torch.equal(D[a, p], torch.tensor([t[1] for t in expected], dtype=D.dtype))



def test_self_pairs_decided_by_memory_not_identity():
    y = torch.arange(4).repeat_interleave(2)
    e = embed(8)
    for ref in (e, e.detach(), e[:]):
        a, p, _ = BatchAllMiner(margin=5.0)(e, y, ref, y)
        assert not bool((a == p).any())
    a, p, _ = BatchAllMiner(margin=5.0)(e, y, e.clone(), y)
    assert bool((a == p).any()), "a copy is other data: its rows are legitimate positives"



def test_random_miner_one_uniform_violator_per_pair():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    e = embed(7, seed=5)
    D = dissimilarity_matrix(resolve_distance("squared_euclidean"), e)
    miner = BatchRandomMiner(margin=1.0, seed=11)
    candidates = {}
    for a, p in itertools.permutations(range(7), 2):
        if y[a] == y[p]:
            candidates[(a, p)] = [n for n in range(7) if y[n] != y[a] and D[a, n] < D[a, p] + 1.0]
    counts = {}
    for _ in range(400):
        a, p, n = miner(e, y)
        pairs = list(zip(a.tolist(), p.tolist()))
        assert sorted(pairs) == sorted(k for k, v in candidates.items() if v)
        for key, ni in zip(pairs, n.tolist()):
            assert ni in candidates[key]
            counts[(key, ni)] = counts.get((key, ni), 0) + 1
    for key, cands in candidates.items():
        for ni in cands:  # uniform: expected 400/len(cands) each
            assert abs(counts[(key, ni)] - 400 / len(cands)) < 5 * (400 / len(cands)) ** 0.5
    # same seed -> same draws; no global RNG involved
    m1, m2 = BatchRandomMiner(margin=1.0, seed=3), BatchRandomMiner(margin=1.0, seed=3)
    torch.manual_seed(0)
    r1 = m1(e, y)
    torch.manual_seed(99)
    r2 = m2(e, y)
    assert all(torch.equal(x1, x2) for x1, x2 in zip(r1, r2))



def test_max_triplets_is_uniform_subset_without_replacement():
    y = torch.arange(4).repeat_interleave(3)
    e = embed(12, seed=2)
    full = set(zip(*(t.tolist() for t in BatchAllMiner(margin=4.0)(e, y))))
    miner = BatchAllMiner(margin=4.0, max_triplets=20, seed=0)
    hits = dict.fromkeys(full, 0)
    for _ in range(300):
        got = list(zip(*(t.tolist() for t in miner(e, y))))
        assert len(got) == 20 and len(set(got)) == 20 and set(got) <= full
        for t in got:
            hits[t] += 1
    expected = 300 * 20 / len(full)
    assert all(abs(h - expected) < 6 * expected**0.5 for h in hits.values())
    small = BatchAllMiner(margin=4.0, max_triplets=10**6)(e, y)
    assert len(small[0]) == len(full)



def test_general_miner_vocabulary():
    y = torch.arange(4).repeat_interleave(3)
    e = embed(12, seed=7)
    D = dissimilarity_matrix(resolve_distance("squared_euclidean"), e)
    a, p, n = TripletMiner("all", "hard", pick="farthest")(e, y)
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        hard = [m for m in range(12) if y[m] != y[ai] and D[ai, m] < D[ai, pi]]
        assert D[ai, ni] == max(D[ai, m] for m in hard)
    a, p, n = TripletMiner("random", "all", pick="random", seed=1)(e, y)
    assert a.tolist() == list(range(12)) and bool((y[a] == y[p]).all()) and bool((y[a] != y[n]).all())
    a, p, n = TripletMiner("all", "semihard", pick="nearest", fallback="farthest")(e, y)
    assert len(a) == 24  # every positive pair gets a negative (semihard or the fallback)



def test_pml_contract_and_wrappers():
    miner = BatchHardestMiner()
    assert isinstance(miner, BaseMiner) and isinstance(miner, torch.nn.Module)
    DistributedMinerWrapper(miner)  # accepts only BaseMiner subclasses
    empty = BatchAllMiner()
    out = empty(embed(6).float(), torch.arange(6))
    assert len(out) == 3 and all(t.dtype == torch.int64 and t.numel() == 0 for t in out)
    assert miner.num_triplets == 0 and empty.num_triplets == 0  # before any call; after a call that mined nothing
    assert empty.stats["num_triplets"] == 0.0 and empty.stats["active_fraction"] == 0.0
    y = torch.arange(3).repeat_interleave(2)
    miner(embed(6), y)
    assert miner.num_triplets == 6
    stats = miner.stats
    assert set(stats) == {"num_triplets", "active_fraction", "mean_d_ap", "mean_d_an", "hard_fraction",
                          *(f"{w}_p{q}" for w in ("d_ap", "d_an") for q in (10, 50, 90))}
    assert 0.0 <= stats["active_fraction"] <= 1.0



@pytest.mark.parametrize(
    "bad, match",
    [
        ((torch.randn(4), torch.arange(4)), "2-D"),
        ((torch.randn(4, 3), torch.arange(5)), "rows"),
        ((torch.randn(4, 3), torch.tensor([0.0, 1.0, 0.0, 1.0])), "integers"),
        ((torch.randn(4, 3), torch.zeros(4, 1, dtype=torch.long)), "1-D"),
        # NaN / Inf embeddings are not an error (their rows join no triplet): tests/hostile/test_numerics.py
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        BatchAllMiner()(*bad)



def test_bad_configuration():
    with pytest.raises(ValueError, match="positives"):
        TripletMiner("most")
    with pytest.raises(ValueError, match="max_triplets"):
        TripletMiner(max_triplets=0)
    with pytest.raises(ValueError, match="distance"):
        TripletMiner(distance="manhattan")



def pml_sets(miner, e, y):
    return set(zip(*(t.tolist() for t in miner(e, y))))



@pytest.mark.parametrize("seed", range(3))
def test_equivalence_with_pml(seed):
    y = torch.arange(8).repeat_interleave(4)
    e = torch.randn(32, 16, generator=torch.Generator().manual_seed(seed))
    sq = pml_distances.LpDistance(power=2)
    # squared-distance batch all == TripletMarginMiner "all" (strict vs <= differs only on exact ties)
    assert pml_sets(BatchAllMiner(margin=0.2), e, y) == pml_sets(
        pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="all", distance=sq), e, y
    )
    assert pml_sets(SemiHardMiner(margin=0.2), e, y) == pml_sets(
        pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=sq), e, y
    )
    assert pml_sets(BatchAllMiner(margin=0.1, distance="cosine"), e, y) == pml_sets(
        pml_miners.TripletMarginMiner(margin=0.1, type_of_triplets="all", distance=pml_distances.CosineSimilarity()),
        e,
        y,
    )
    # hardest with Euclidean == PML BatchHardMiner (default LpDistance, normalised)
    ours = BatchHardestMiner(distance="euclidean")(e, y)
    theirs = pml_miners.BatchHardMiner()(e, y)
    assert all(torch.equal(x, t) for x, t in zip(ours, theirs))
    # a PML distance object is accepted as is
    ours_obj = BatchHardestMiner(distance=pml_distances.LpDistance())(e, y)
    assert all(torch.equal(x, t) for x, t in zip(ours_obj, theirs))



def test_half_precision_embeddings():
    y = torch.arange(4).repeat_interleave(4)
    e = F.normalize(torch.randn(16, 8), dim=1)
    for dtype in (torch.float16, torch.bfloat16):
        a, p, n = BatchHardestMiner()(e.to(dtype), y)
        assert len(a) == 16 and bool((y[a] == y[p]).all()) and bool((y[a] != y[n]).all())



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


def test_stats_report_hardness_and_distance_percentiles():
    import numpy as np

    from massface.distances import dissimilarity_matrix
    from massface.mining import BatchAllMiner

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 6, generator=g, dtype=torch.float64), torch.arange(20) % 5
    miner = BatchAllMiner(margin=0.5)
    a, p, n = miner(x, y)
    D = dissimilarity_matrix(miner.distance, x, x)
    d_ap, d_an = D[a, p].numpy(), D[a, n].numpy()
    stats = miner.stats
    assert stats["hard_fraction"] == pytest.approx(float((d_an < d_ap).mean()))
    for q in (10, 50, 90):
        assert stats[f"d_ap_p{q}"] == pytest.approx(float(np.percentile(d_ap, q)))
        assert stats[f"d_an_p{q}"] == pytest.approx(float(np.percentile(d_an, q)))
    empty = BatchAllMiner(margin=0.0)
    empty(x[:1], y[:1])
    assert empty.stats["hard_fraction"] == 0.0 and np.isnan(empty.stats["d_an_p50"])
