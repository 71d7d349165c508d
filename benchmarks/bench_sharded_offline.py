"""Benchmark: sharded offline mining — per-rank cost against the world size, real gloo ranks on this machine.

Data: N face-like synthetic 512-d embeddings, 20 per identity — ``bench_offline_mining.make_embeddings`` (its
docstring describes them).
Mining: :class:`massface.mining.OfflineTripletSearch` with :class:`BatchHardestMiner`, k = 8 neighbours, the
identity IVF index (``nprobe`` 16). W = 1 is one process (``shard=False``); W > 1 are W gloo processes on this
machine, each with one thread (torch and faiss), every one holding all N embeddings, as after ``embed_dataset``.
Reported per configuration, from rank 0: the index build (every rank builds it), search + selection + the
all-gathers (``mine_s``), and whether every rank's triplets equal the one-process result exactly. With 2 CPU
cores, W ≤ 2 gives every rank a core of its own; larger W would share cores and is not timed here.

    python benchmarks/bench_sharded_offline.py                      # N = 200,000, W in {1, 2}
    python benchmarks/bench_sharded_offline.py --n 50000 --worlds 1,2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile


def _data(n: int):
    """``bench_offline_mining.make_embeddings(n)`` (the same face-like set) as torch tensors."""
    import torch
    from bench_offline_mining import make_embeddings

    x, labels = make_embeddings(n)
    return torch.from_numpy(x), torch.from_numpy(labels)


def _mine(n: int, shard: bool) -> dict:
    import faiss
    import torch

    from massface.mining import BatchHardestMiner, IndexConfig, OfflineTripletSearch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    emb, labels = _data(n)
    search = OfflineTripletSearch(BatchHardestMiner(), neighbours=8, index=IndexConfig(kind="identity", nprobe=16))
    t = search.mine_triplets(emb, labels, shard=shard)
    digest = hashlib.sha256(torch.stack([t.a, t.p, t.n]).numpy().tobytes()).hexdigest()
    return {"index_s": search.stats["index_s"], "mine_s": search.stats["mine_s"], "triplets": int(t.a.numel()),
            "digest": digest}


def _rank(rank: int, world: int, port: int, n: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = _mine(n, shard=True)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--worlds", default="1,2")
    args = parser.parse_args(argv)
    rows = []
    reference = None
    for world in (int(w) for w in args.worlds.split(",")):
        if world == 1:
            out = _mine(args.n, shard=False)
            reference = out["digest"]
            ranks = [out]
        else:
            with tempfile.TemporaryDirectory() as tmp:
                mp.start_processes(_rank, args=(world, _free_port(), args.n, tmp), nprocs=world, start_method="spawn")
                ranks = []
                for r in range(world):
                    with open(os.path.join(tmp, f"rank{r}.json")) as f:
                        ranks.append(json.load(f))
        same = reference is not None and all(r["digest"] == reference for r in ranks)
        rows.append((world, ranks[0], same))
        print(json.dumps({"world": world, "ranks": ranks}), file=sys.stderr, flush=True)
    base = rows[0][1]["mine_s"]
    print(f"N = {args.n:,} embeddings (512-d, 20 per identity), BatchHardestMiner, k = 8, identity IVF (nprobe 16), "
          f"1 thread per rank; rank 0's seconds\n")
    print("| W | index build (every rank) | search + selection + exchange | speed-up | triplets | every rank = one process |")
    print("|---|---|---|---|---|---|")
    for world, r, same in rows:
        print(f"| {world} | {r['index_s']:.1f} | {r['mine_s']:.1f} | {base / r['mine_s']:.2f}× | {r['triplets']:,} | "
              f"{'yes' if same or world == 1 else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
