"""Sharded offline mining (2 and 3 gloo processes, CPU): every rank's triplets and statistics equal one process's.

One spawn per world size runs every case (spawning costs seconds, the cases milliseconds); the tests then
compare each rank's saved result with the same case mined here, in this process, without a process group.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from massface.mining import (
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMaxMiner,
    BatchRandomMiner,
    DistanceWeightedMiner,
    IndexConfig,
    OfflineTripletSearch,
    SemiHardMiner,
    TripletMiner,
)
from massface.training.batch_sources import OfflineSource
from tests._gloo import free_port

TIMINGS = ("index_s", "mine_s")


def _data(n: int = 70, ids: int = 13, dim: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, ids, (n,), generator=g)
    labels[-1] = ids + 5  # a singleton identity: negative only
    return torch.randn(n, dim, generator=g, dtype=dtype), labels


def _non_finite():
    e, y = _data(n=80, seed=6)
    e[[3, 40, 41]] = float("nan")
    e[17, 2] = float("inf")
    return e, y


def _ivf_data():
    return _data(n=400, ids=40, dim=16, seed=3, dtype=torch.float32)


def _all_nan():
    return torch.full((6, 4), float("nan")), torch.tensor([0, 0, 1, 1, 2, 2])


# name -> (search factory, data factory, calls: successive mine_triplets calls on the same search)
CASES: dict[str, tuple[Callable[[], OfflineTripletSearch], Callable, int]] = {
    "hardest": (lambda: OfflineTripletSearch(BatchHardestMiner(), neighbours=5, index="flat", chunk_size=16),
                _data, 1),
    "min_max": (lambda: OfflineTripletSearch(BatchMinMaxMiner(margin=0.3), neighbours=6, index="flat",
                                             chunk_size=9), _data, 1),
    "semihard_cosine": (lambda: OfflineTripletSearch(SemiHardMiner(margin=0.4, distance="cosine"), neighbours=20,
                                                     index="flat", chunk_size=7), _data, 1),
    "all": (lambda: OfflineTripletSearch(BatchAllMiner(margin=0.4), neighbours=70, index="flat", chunk_size=11),
            _data, 1),
    "random_twice": (lambda: OfflineTripletSearch(BatchRandomMiner(margin=0.4, seed=5), neighbours=12, index="flat",
                                                  chunk_size=8), _data, 2),
    "random_positives": (lambda: OfflineTripletSearch(TripletMiner("random", "all", pick="nearest", seed=2),
                                                      neighbours=4, index="flat", chunk_size=10), _data, 2),
    "distance_weighted": (lambda: OfflineTripletSearch(DistanceWeightedMiner(seed=3), neighbours=30, index="flat",
                                                       chunk_size=13), _data, 1),
    "capped": (lambda: OfflineTripletSearch(BatchAllMiner(margin=0.5, max_triplets=50, seed=4), neighbours=70,
                                            index="flat", chunk_size=10), _data, 2),
    "non_finite_capped_random": (lambda: OfflineTripletSearch(BatchRandomMiner(margin=0.5, max_triplets=40, seed=1),
                                                              neighbours=10, index="flat", chunk_size=12),
                                 _non_finite, 1),
    "ivf": (lambda: OfflineTripletSearch(BatchHardestMiner(), neighbours=3,
                                         index=IndexConfig(kind="ivf", nlist=8, nprobe=2), chunk_size=64),
            _ivf_data, 1),
    "identity": (lambda: OfflineTripletSearch(BatchMinMaxMiner(margin=0.3), neighbours=3,
                                              index=IndexConfig(kind="identity", nprobe=3), chunk_size=50),
                 _ivf_data, 1),
    "fewer_chunks_than_ranks": (lambda: OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=8,
                                                             index="flat", chunk_size=60), _data, 1),
    "nothing_selected": (lambda: OfflineTripletSearch(SemiHardMiner(margin=0.0), neighbours=8, index="flat",
                                                      chunk_size=16), _data, 1),
    "all_nan": (lambda: OfflineTripletSearch(BatchHardestMiner()), _all_nan, 1),
}


def _mine_case(name: str) -> list[dict]:
    """Each call's triplets (a (3, T) tensor) and statistics but the timings; sharded when distributed."""
    make, data, calls = CASES[name]
    search, (e, y) = make(), data()
    out = []
    for _ in range(calls):
        t = search.mine_triplets(e, y)
        out.append({"triplets": torch.stack([t.a, t.p, t.n]),
                    "stats": {k: v for k, v in search.stats.items() if k not in TIMINGS}})
    return out


def _source(rank: int, world: int) -> OfflineSource:
    """A 30-image offline source (linear embedder, embedded one image at a time so that the embeddings are the
    same bits whichever rank computes them)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 8))
    g = torch.Generator().manual_seed(1)
    dataset = [(torch.randn(3, 4, 4, generator=g), i % 6) for i in range(30)]
    search = OfflineTripletSearch(BatchRandomMiner(margin=0.6, seed=7), neighbours=6, index="flat", chunk_size=7)
    return OfflineSource(search, model, dataset, dataset, device=torch.device("cpu"), triplets_per_batch=4,
                         embed_batch_size=1, seed=2, rank=rank, world_size=world)


def _batches(source: OfflineSource) -> list[tuple[torch.Tensor, ...]]:
    return [(b.indices, b.a, b.p, b.n) for b in source.refresh()]




def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        result: dict = {"cases": {name: _mine_case(name) for name in CASES}}
        e, y = _data()
        if rank == 1:
            e = e.clone()
            e[5, 0] += 1e-9
        try:
            OfflineTripletSearch(BatchHardestMiner()).mine_triplets(e, y)
        except ValueError as err:
            result["mismatch"] = str(err)
        if rank == world - 1:  # one rank alone, no collective: must not wait for the others
            search = OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=12, chunk_size=8)
            t = search.mine_triplets(*_data(), shard=False)
            result["alone"] = torch.stack([t.a, t.p, t.n])
        dist.barrier()
        source = _source(rank, world)
        result["source"] = [_batches(source), _batches(source)]  # two refreshes
        result["source_stats"] = {k: v for k, v in source.stats().items() if k not in (*TIMINGS, "embed_s")}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"world{w}")
def sharded(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """(world, every rank's results) of one spawn of ``world`` gloo processes running every case."""
    world = request.param
    out = tmp_path_factory.mktemp(f"sharded{world}")
    mp.start_processes(_worker, args=(world, free_port(), str(out)), nprocs=world, start_method="spawn")
    return world, [torch.load(out / f"rank{r}.pt") for r in range(world)]


def _assert_same_stats(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert (math.isnan(got[key]) and math.isnan(value)) or got[key] == value, key


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_rank_mines_exactly_what_one_process_mines(sharded, name):
    world, ranks = sharded
    want = _mine_case(name)  # no process group here: one process mines every anchor
    for rank, result in enumerate(ranks):
        got = result["cases"][name]
        assert len(got) == len(want)
        for call, (g, w) in enumerate(zip(got, want)):
            assert torch.equal(g["triplets"], w["triplets"]), f"rank {rank} of {world}, call {call}"
            _assert_same_stats(g["stats"], w["stats"])
    if name in ("random_twice", "capped"):
        assert not torch.equal(want[0]["triplets"], want[1]["triplets"]), "each call draws afresh"
    if name != "all_nan" and name != "nothing_selected":
        assert want[0]["triplets"].shape[1] > 0
    if name == "nothing_selected":
        assert want[0]["triplets"].shape[1] == 0 and want[0]["stats"]["num_triplets"] == 0


@pytest.mark.distributed
@pytest.mark.slow
def test_sharded_mining_refuses_different_inputs_on_every_rank_and_shard_false_mines_alone(sharded):
    world, ranks = sharded
    for result in ranks:
        assert "ranks [1] differ from rank 0" in result["mismatch"]
    search = OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=12, chunk_size=8)
    t = search.mine_triplets(*_data())
    assert torch.equal(ranks[-1]["alone"], torch.stack([t.a, t.p, t.n]))
    assert all("alone" not in result for result in ranks[:-1])


@pytest.mark.distributed
@pytest.mark.slow
def test_offline_source_deals_every_rank_the_batches_of_rank_zero_mining(sharded):
    world, ranks = sharded
    for rank, result in enumerate(ranks):
        source = _source(rank, world)  # no process group: this process embeds and mines everything itself
        want = [_batches(source), _batches(source)]
        assert len(result["source"]) == len(want) == 2
        for got_refresh, want_refresh in zip(result["source"], want):
            assert len(got_refresh) == len(want_refresh) > 0
            for got, expected in zip(got_refresh, want_refresh):
                assert all(torch.equal(x, z) for x, z in zip(got, expected)), f"rank {rank} of {world}"
        _assert_same_stats(result["source_stats"],
                           {k: v for k, v in source.stats().items() if k not in (*TIMINGS, "embed_s")})
    dealt = [tuple(b[0].tolist()) for result in ranks for b in result["source"][0]]
    assert len(set(dealt)) == len(dealt), "the ranks train on different batches"


@pytest.mark.parametrize("shard", ["yes", 1, 0.0, [True]])
def test_shard_must_be_a_bool_or_none(shard):
    e, y = _data()
    with pytest.raises(ValueError, match="shard must be True, False or None"):
        OfflineTripletSearch(BatchHardestMiner()).mine_triplets(e, y, shard=shard)


def test_shard_true_needs_a_process_group_and_false_or_none_mine_alone():
    e, y = _data()
    search = OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=12, chunk_size=8)
    with pytest.raises(ValueError, match="shard=True .* needs an initialised torch.distributed process group"):
        search.mine_triplets(e, y, shard=True)
    auto = OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=12, chunk_size=8).mine_triplets(e, y)
    alone = OfflineTripletSearch(BatchRandomMiner(margin=0.4), neighbours=12, chunk_size=8).mine_triplets(
        e, y, shard=False)
    assert torch.equal(torch.stack([auto.a, auto.p, auto.n]), torch.stack([alone.a, alone.p, alone.n]))


def test_each_call_takes_one_draw_from_the_miners_generator():
    """Chunk i's draws come from its own generator: mining the same chunk grid twice from one seed gives the
    same triplets, and the miner's generator advances by one draw per call (so the next call differs)."""
    e, y = _data()
    one, two = (OfflineTripletSearch(BatchRandomMiner(margin=0.4, seed=9), neighbours=12, chunk_size=8)
                for _ in range(2))
    first = one.mine_triplets(e, y)
    assert torch.equal(first.n, two.mine_triplets(e, y).n)
    state = one.miner.generator.get_state()
    second = one.mine_triplets(e, y)
    reference = torch.Generator().set_state(state)
    torch.randint(0, 2**63 - 1, (1,), generator=reference)
    assert torch.equal(one.miner.generator.get_state(), reference.get_state()), "one draw per call"
    assert not torch.equal(first.n, second.n)
