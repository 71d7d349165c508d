"""PKSampler: coverage, K distinct images, small-identity policies, determinism, resume, distributed shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from massface.sampling import PKSampler


def uneven_labels(n_ids=40, seed=0, lo=1, hi=12):
    rng = np.random.default_rng(seed)
    counts = rng.integers(lo, hi, size=n_ids)
    labels = np.repeat(np.arange(n_ids) * 3 + 5, counts)  # sparse, non-contiguous label values
    rng.shuffle(labels)
    return labels



def test_epoch_covers_every_eligible_identity_once_with_k_distinct_images():
    labels = uneven_labels(lo=4)
    sampler = PKSampler(labels, p=5, k=4, min_images=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40 // 5
    seen = Counter()
    for b in batches:
        assert len(b) == 20 and len(set(b)) == 20  # K distinct images each
        ids = labels[b]
        groups = Counter(ids.tolist())
        assert len(groups) == 5 and set(groups.values()) == {4}
        assert all(ids[i] == ids[i - i % 4] for i in range(20))  # contiguous identity blocks
        seen.update(groups.keys())
    assert set(seen.values()) == {1} and len(seen) == 40



def test_oversample_repeats_small_identities_evenly():
    labels = np.repeat(np.arange(10), [1, 2, 3, 8, 8, 8, 8, 8, 8, 8])
    sampler = PKSampler(labels, p=3, k=5, small="oversample", min_images=2)
    for batch in sampler:
        for ident in set(labels[batch].tolist()):
            imgs = [i for i in batch if labels[i] == ident]
            assert len(imgs) == 5
            c = Counter(imgs)
            n_avail = int((labels == ident).sum())
            assert len(c) == min(5, n_avail)
            assert max(c.values()) - min(c.values()) <= 1
    assert sampler.num_identities == 9  # the single-image identity is never sampled



def test_take_all_fills_with_more_identities():
    labels = np.repeat(np.arange(30), [2, 3] * 10 + [10] * 10)
    sampler = PKSampler(labels, p=4, k=5, small="take_all", min_images=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for b in batches:
        assert len(b) == 20 and len(set(b)) == 20
        counts = Counter(labels[b].tolist())
        assert len(counts) >= 4 and max(counts.values()) <= 5
    assert any(len(Counter(labels[b].tolist())) > 4 for b in batches)



def test_deterministic_and_epochs_differ():
    labels = uneven_labels(seed=1, lo=3)
    a = list(PKSampler(labels, 4, 3, seed=7))
    b = list(PKSampler(labels, 4, 3, seed=7))
    assert a == b
    s = PKSampler(labels, 4, 3, seed=7)
    s.set_epoch(1)
    epoch1 = list(s)
    assert epoch1 != a
    auto = PKSampler(labels, 4, 3, seed=7)
    first, second = list(auto), list(auto)  # an exhausted epoch advances by itself
    assert first == a and second == epoch1
    assert list(PKSampler(labels, 4, 3, seed=8)) != a



@pytest.mark.parametrize("small", ["oversample", "take_all"])
def test_resume_mid_epoch_exactly(small):
    labels = uneven_labels(seed=2, lo=2)
    ref = PKSampler(labels, 4, 4, small=small, seed=3)
    ref.set_epoch(2)
    full = list(ref)
    s = PKSampler(labels, 4, 4, small=small, seed=3)
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(3)]
    state = s.state_dict()
    resumed = PKSampler(labels, 4, 4, small=small, seed=3)
    resumed.load_state_dict(state)
    assert head + list(resumed) == full
    # with a prefetching loader: state after the batches actually trained
    s2 = PKSampler(labels, 4, 4, small=small, seed=3)
    s2.set_epoch(2)
    it2 = iter(s2)
    for _ in range(5):
        next(it2)
    r2 = PKSampler(labels, 4, 4, small=small, seed=3)
    r2.load_state_dict(s2.state_dict(batches_done=2))
    assert full[:2] + list(r2) == full



@pytest.mark.parametrize("small", ["oversample", "take_all"])
@pytest.mark.parametrize("world", [2, 3])
def test_distributed_ranks_disjoint_each_step_and_equal_lengths(small, world):
    labels = uneven_labels(n_ids=60, seed=4, lo=2)
    per_rank = [list(PKSampler(labels, 3, 4, small=small, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(x) for x in per_rank}) == 1 and len(per_rank[0]) > 0
    assert len(per_rank[0]) == len(PKSampler(labels, 3, 4, small=small, num_replicas=world, rank=0))
    for step in zip(*per_rank):
        id_sets = [set(labels[b].tolist()) for b in step]
        assert sum(len(s) for s in id_sets) == len(set().union(*id_sets)), "an identity on two ranks"
    if small == "oversample":  # the union over ranks covers each identity at most once per epoch
        all_ids = [i for rank in per_rank for b in rank for i in set(labels[b].tolist())]
        assert len(all_ids) == len(set(all_ids))



def test_resume_with_another_world_size_continues_the_stream():
    labels = uneven_labels(n_ids=60, seed=5, lo=2)
    single = PKSampler(labels, 3, 2, num_replicas=1, rank=0)
    it = iter(single)
    done = [next(it) for _ in range(4)]
    state = single.state_dict()
    rest = []
    for r in range(2):
        s = PKSampler(labels, 3, 2, num_replicas=2, rank=r)
        s.load_state_dict(state)
        rest += [set(labels[b].tolist()) for b in s]
    used = set().union(*(set(labels[b].tolist()) for b in done))
    later = set().union(*rest)
    assert not used & later and len(used | later) >= 60 - 6



def test_drop_last_false_completes_the_last_step():
    labels = np.repeat(np.arange(11), 3)
    s = PKSampler(labels, 4, 2, drop_last=False)
    batches = list(s)
    assert len(batches) == len(s) == 3
    assert {i for b in batches for i in set(labels[b].tolist())} == set(range(11))
    assert all(len(set(labels[b].tolist())) == 4 for b in batches)



def test_dataloader_batch_sampler_and_tensor_labels():
    labels = torch.arange(8).repeat_interleave(3)
    ds = TensorDataset(torch.arange(24), labels)
    loader = DataLoader(ds, batch_sampler=PKSampler(labels, 2, 3))
    batches = list(loader)
    assert len(batches) == 4
    assert all(x.shape == (6,) and torch.equal(labels[x], y) for x, y in batches)



@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=[0, 1, -1, 1], p=1, k=2), r"labels\[2\] = -1"),
        (dict(labels=[0.0, 1.0, 1.0], p=1, k=2), "integers"),
        (dict(labels=[[0, 1]], p=1, k=2), "1-D"),
        (dict(labels=[], p=1, k=2), "empty"),
        (dict(labels=[0, 0, 1, 1], p=3, k=2), "needs 3 identities"),
        (dict(labels=[0, 0, 1, 1], p=1, k=0), "k must be"),
        (dict(labels=[0, 0, 1, 1], p=1.5, k=2), "p must be"),
        (dict(labels=[0, 0, 1, 1], p=1, k=2, small="drop"), "small"),
        (dict(labels=[0, 0, 1, 1], p=1, k=2, num_replicas=2, rank=2), "rank"),
        (dict(labels=[0, 0, 1, 1], p=2, k=2, num_replicas=2, rank=0), "needs 4 identities"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PKSampler(**kwargs)



def test_state_from_another_configuration_is_rejected():
    labels = np.repeat(np.arange(10), 4)
    state = PKSampler(labels, 2, 2).state_dict()
    with pytest.raises(ValueError, match="k=2"):
        PKSampler(labels, 2, 3).load_state_dict(state)


# ------------------------------------------------------------------------------ NeighbourPKSampler
def clustered(n_clusters: int = 8, size: int = 4, images: int = 3):
    """Labels of n_clusters × size identities; the graph lists each identity's cluster mates, nearest first."""
    ids = n_clusters * size
    labels = np.repeat(np.arange(ids), images)
    graph = np.full((ids, size + 1), -1, dtype=np.int64)
    for i in range(ids):
        c = i // size
        graph[i, : size - 1] = [j for j in range(c * size, (c + 1) * size) if j != i]
    return labels, graph


def _identities(batch, labels):
    return sorted(set(labels[batch].tolist()))


def test_neighbour_batches_are_whole_look_alike_groups():
    from massface.sampling import NeighbourPKSampler

    labels, graph = clustered()
    sampler = NeighbourPKSampler(labels, p=8, k=2, neighbours=graph, group=4, seed=3)
    seen = []
    for batch in sampler:
        assert len(batch) == 16
        ids = _identities(batch, labels)
        assert len({i // 4 for i in ids}) == 2, "two whole clusters of four"
        seen += ids
    assert sorted(seen) == list(range(32)), "every identity exactly once per epoch"


def test_hard_fraction_zero_is_plain_pk_order_and_half_mixes():
    from massface.sampling import NeighbourPKSampler

    labels, graph = clustered()
    plain = [b for b in PKSampler(labels, p=8, k=2, seed=5)]
    same = [b for b in NeighbourPKSampler(labels, p=8, k=2, neighbours=graph, hard_fraction=0.0, seed=5)]
    assert plain == same
    half = NeighbourPKSampler(labels, p=8, k=2, neighbours=graph, group=4, hard_fraction=0.5, seed=5)

    def whole_clusters(batches):
        return sum(max(Counter(i // 4 for i in _identities(b, labels)).values()) == 4 for b in batches)

    assert whole_clusters(list(half)) > whole_clusters(plain), "one group per batch, the other half random"


@pytest.mark.parametrize("world", [2, 3])
def test_neighbour_sampler_keeps_pk_guarantees_under_ddp_and_resume(world):
    from massface.sampling import NeighbourPKSampler

    labels, graph = clustered(12, 4)
    ranks = [NeighbourPKSampler(labels, p=4, k=2, neighbours=graph, group=2, seed=1, num_replicas=world, rank=r)
             for r in range(world)]
    epochs = [list(s) for s in ranks]
    assert len({len(e) for e in epochs}) == 1, "equal lengths"
    for step in zip(*epochs):
        sets = [set(labels[b].tolist()) for b in step]
        assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:]), "ranks disjoint"
    straight = list(NeighbourPKSampler(labels, p=4, k=2, neighbours=graph, group=2, seed=1))
    first = NeighbourPKSampler(labels, p=4, k=2, neighbours=graph, group=2, seed=1)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = first.state_dict()
    assert torch.equal(state["neighbours"], torch.from_numpy(graph))
    resumed = NeighbourPKSampler(labels, p=4, k=2, neighbours=np.full_like(graph, -1), group=2, seed=1)
    resumed.load_state_dict(state)  # the saved graph wins over the one built with
    assert head + list(resumed) == straight


def test_set_neighbours_changes_later_epochs_only():
    from massface.sampling import NeighbourPKSampler

    labels, graph = clustered()
    sampler = NeighbourPKSampler(labels, p=8, k=2, neighbours=graph, group=4, seed=0)
    epoch0 = list(sampler)
    shifted = np.roll(np.arange(32), 1)[graph.clip(0)] * (graph >= 0) - (graph < 0)  # other "look-alikes"
    sampler.set_neighbours(shifted)
    sampler.set_epoch(0)
    assert list(sampler) != epoch0
    again = NeighbourPKSampler(labels, p=8, k=2, neighbours=graph, group=4, seed=0)
    assert list(again) == epoch0, "deterministic in (seed, epoch, graph)"


def test_identity_neighbours_from_centres():
    from massface.sampling import identity_neighbours

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 8))
    centres[4] = centres[1] + 0.01  # identity 4 looks like identity 1
    graph = identity_neighbours(centres, labels=[10, 11, 12, 13, 14, 15], k=3)
    assert graph.shape == (16, 3) and (graph[:10] == -1).all()
    assert graph[11, 0] == 14 and graph[14, 0] == 11 and 11 not in graph[11]
    assert identity_neighbours(torch.tensor(centres), k=10).shape == (6, 10)  # padded with -1 beyond C - 1
    assert (identity_neighbours(centres, k=10)[:, 5:] == -1).all()
    with pytest.raises(ValueError, match="finite"):
        identity_neighbours(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="distinct labels"):
        identity_neighbours(centres, labels=[0, 0, 1, 2, 3, 4])


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(group=1), "group"), (dict(group=9), "group"), (dict(hard_fraction=1.5), "hard_fraction"),
    (dict(neighbours=np.zeros((4, 2), dtype=np.int64)), "rows but the labels go up to"),
    (dict(neighbours=np.zeros(32, dtype=np.int64)), r"\(L, n\) integer array"),
    (dict(neighbours=np.zeros((32, 2))), r"\(L, n\) integer array"),
])
def test_neighbour_sampler_bad_arguments(kwargs, match):
    from massface.sampling import NeighbourPKSampler

    labels, graph = clustered()
    options = dict(neighbours=graph, group=4, hard_fraction=1.0) | kwargs
    with pytest.raises(ValueError, match=match):
        NeighbourPKSampler(labels, 8, 2, **options)
