"""False-negative guards (negative_range, skip_nearest, same_identity_pairs, false_negative_gap) against
brute-force enumeration, in every preset, online and offline; the false-negative statistic."""

from __future__ import annotations

import itertools

import pytest
import torch

from massface.distances import dissimilarity_matrix
from massface.mining import PRESETS, BatchAllMiner, BatchHardestMiner, OfflineTripletSearch, TripletMiner
from massface.mining.strategies import same_label_pairs


def data(n=24, ids=6, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % ids
    return torch.randn(n, dim, generator=g, dtype=torch.float64), labels


GUARDS = {
    "range": dict(negative_range=(0.6, 2.4)),
    "range_cosine": dict(negative_range=(-0.5, 0.4)),
    "skip2": dict(skip_nearest=2),
    "pairs": dict(same_identity_pairs=[[0, 1], [4, 2]]),
    "gap": dict(false_negative_gap=0.1),
    "combined": dict(negative_range=(0.2, 3.5), skip_nearest=1, same_identity_pairs=[[3, 5]],
                     false_negative_gap=0.0),
}


def brute_force_excluded(D, labels, distance_inverted, guards) -> set[tuple[int, int]]:
    """(anchor, negative) entries the guards remove, by loops over the definitions."""
    n = len(D)
    listed = set()
    for x, y in guards.get("same_identity_pairs", []):
        listed |= {(x, y), (y, x)}
    out = set()
    for a in range(n):
        negatives = [j for j in range(n) if labels[j] != labels[a]]
        positives = [j for j in range(n) if labels[j] == labels[a] and j != a]
        nearest = sorted(negatives, key=lambda j: D[a][j])[: guards.get("skip_nearest", 0)]
        for j in negatives:
            d = D[a][j]
            if j in nearest:
                out.add((a, j))
            if "negative_range" in guards:
                lo, hi = guards["negative_range"]
                value = -d if distance_inverted else d  # the range is in similarity for cosine
                if not lo <= value <= hi:
                    out.add((a, j))
            if "false_negative_gap" in guards and positives:
                if d < min(D[a][p] for p in positives) - guards["false_negative_gap"]:
                    out.add((a, j))
            if (int(labels[a]), int(labels[j])) in listed:
                out.add((a, j))
    return out


def expected(name, distance, guards, x, y):
    """The unguarded preset on the distance matrix with the brute-force exclusions made padding (+inf)."""
    miner = PRESETS[name](margin=0.3, distance=distance, seed=1)
    D = dissimilarity_matrix(miner.distance, x, x).contiguous()
    for a, j in brute_force_excluded(D.tolist(), y.tolist(), miner.distance.is_inverted, guards):
        D[a, j] = float("inf")
    return miner.select(D, same_label_pairs(y, y), torch.arange(len(y)), dim=x.shape[1])


@pytest.mark.parametrize("guard", sorted(GUARDS))
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_with_every_guard_equals_brute_force(name, guard, triplet_set):
    x, y = data()
    distance = "cosine" if guard == "range_cosine" else "squared_euclidean"
    got = PRESETS[name](margin=0.3, distance=distance, seed=1, **GUARDS[guard])(x, y)
    want = expected(name, distance, GUARDS[guard], x, y)
    assert triplet_set(got) == triplet_set(want)
    unguarded = PRESETS[name](margin=0.3, distance=distance, seed=1)(x, y)
    if name in ("all", "hardest"):  # they see the closest negatives, which every guard here removes some of
        assert triplet_set(got) != triplet_set(unguarded), "the guard must change something"


def test_batch_all_with_guards_by_direct_enumeration(triplet_set):
    """BatchAll = every (a, p, n) with d_ap - d_an + m > 0, minus the excluded negatives, enumerated outright."""
    x, y = data(seed=3)
    guards = GUARDS["combined"]
    miner = BatchAllMiner(margin=0.8, **guards)
    D = dissimilarity_matrix(miner.distance, x, x).tolist()
    excluded = brute_force_excluded(D, y.tolist(), False, guards)
    want = {(a, p, n) for a, p, n in itertools.permutations(range(len(y)), 3)
            if y[a] == y[p] and y[n] != y[a] and (a, n) not in excluded and D[a][p] - D[a][n] + 0.8 > 0}
    assert triplet_set(miner(x, y)) == want and want


def test_skip_nearest_takes_the_next_nearest_negative():
    x, y = data(seed=4)
    D = dissimilarity_matrix(BatchHardestMiner().distance, x, x)
    a, p, n = BatchHardestMiner(skip_nearest=2)(x, y)
    for anchor, negative in zip(a.tolist(), n.tolist()):
        ranked = sorted((d, j) for j, d in enumerate(D[anchor].tolist()) if y[j] != y[anchor])
        assert negative == ranked[2][1]


def test_same_identity_pairs_never_pair_the_listed_labels():
    x, y = data(seed=5)
    a, p, n = BatchAllMiner(margin=4.0, same_identity_pairs=[[0, 1]])(x, y)
    pairs = {(int(y[i]), int(y[j])) for i, j in zip(a.tolist(), n.tolist())}
    assert (0, 1) not in pairs and (1, 0) not in pairs and (0, 2) in pairs


@pytest.mark.parametrize("guard", ["pairs", "combined", "skip2", "gap"])
def test_offline_mining_applies_the_same_guards(guard, triplet_set):
    """Offline candidates differ per row; with every negative a candidate it must equal online mining."""
    x, y = data(n=30, seed=6)
    online = BatchAllMiner(margin=0.5, **GUARDS[guard])(x, y)
    offline = OfflineTripletSearch(BatchAllMiner(margin=0.5, **GUARDS[guard]), neighbours=len(y), index="flat",
                                   chunk_size=7).mine_triplets(x, y)
    assert triplet_set(offline) == triplet_set(online) and len(online)


def test_guards_reach_the_cross_batch_memory(triplet_set):
    from massface.losses import TripletLoss
    from massface.mining import CrossBatchMemory

    x, y = data(seed=7)
    miner = BatchAllMiner(margin=0.5, same_identity_pairs=[[0, 1]])
    xbm = CrossBatchMemory(TripletLoss(margin=0.5), miner, memory_size=48, embedding_size=5)
    xbm.enqueue(x.float(), y)
    (a, p, n), ref, ref_labels = xbm.mine_with_reference(x.float(), y)
    assert not bool(((y[a] == 0) & (ref_labels[n] == 1)).any())


def test_false_negative_fraction_from_ground_truth():
    x, y = data(seed=8)
    truth = y.clone()
    truth[y == 1] = 0  # labels 0 and 1 are one person
    miner = BatchHardestMiner()
    a, p, n = miner(x, y, true_labels=truth)
    share = float((truth[a] == truth[n]).float().mean())
    assert miner.stats["false_negative_fraction"] == pytest.approx(share)
    guarded = BatchHardestMiner(same_identity_pairs=[[0, 1]])
    guarded(x, y, true_labels=truth)
    assert guarded.stats["false_negative_fraction"] == 0.0
    miner(x, y)
    assert "false_negative_fraction" not in miner.stats, "no ground truth, no statistic"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(negative_range=(2.0, 1.0)), "lo <= hi"),
    (dict(negative_range=(0.0, float("nan"))), "lo <= hi"),
    (dict(negative_range=3.0), "pair"),
    (dict(skip_nearest=-1), "skip_nearest"),
    (dict(skip_nearest=1.5), "skip_nearest"),
    (dict(same_identity_pairs=[[0, 1, 2]]), r"\(S, 2\)"),
    (dict(same_identity_pairs=[[0.5, 1.0]]), "integer"),
    (dict(same_identity_pairs=[[-1, 3]]), r"\[0, 2\*\*31\)"),
    (dict(false_negative_gap=-0.1), "false_negative_gap"),
    (dict(false_negative_gap=float("inf")), "false_negative_gap"),
])
def test_hostile_guard_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TripletMiner("hardest", "all", pick="nearest", **kwargs)

