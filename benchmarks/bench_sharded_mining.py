"""Benchmark: per-rank cost of global mining against the world size W, replicated versus sharded.

Simulated ranks on one machine, one thread, a fresh process per configuration: a global batch of B embeddings
``randn(B, 512)`` (seed 0, K = 4 per identity) split into W equal rank batches. *Replicated* (the trainer's
``loss.triplet.shard_mining: false``): every rank mines and scores all B anchors against the B gathered rows --
the same work on every rank. *Sharded* (``shard_mining: true``): rank 0 mines its B / W anchors against the B
gathered rows (``self_index`` marks each anchor's own row). Timed: mining + loss + backward of rank 0 (median of
``--repeats`` calls, ms); the collectives themselves (one all-gather, one all-reduce of two numbers) are not.

    python benchmarks/bench_sharded_mining.py                         # B = 2048, W in {1, 2, 4, 8}
    python benchmarks/bench_sharded_mining.py --batch 4096 --worlds 1,4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

OBJECTIVES = ("hardest", "min_max", "all", "fused_all")


def worker(objective: str, batch: int, world: int, sharded: bool, repeats: int) -> dict:
    import torch

    from massface.losses import FusedTripletLoss, TripletLoss
    from massface.mining import BatchAllMiner, BatchHardestMiner, BatchMinMaxMiner

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(batch, 512, generator=g)
    labels = torch.arange(batch // 4).repeat(4)  # every identity on every rank
    local = batch // world if sharded else batch
    miners = {"hardest": BatchHardestMiner(0.2), "min_max": BatchMinMaxMiner(0.2), "all": BatchAllMiner(0.2)}
    times = []
    for i in range(repeats + 1):
        ref = base.clone().requires_grad_()
        own = torch.arange(local)
        t0 = time.perf_counter()
        if objective == "fused_all":
            loss = FusedTripletLoss("all", 0.2)(ref[:local], labels[:local], ref_emb=ref, ref_labels=labels,
                                                self_index=own)
        else:
            triplets = miners[objective](ref[:local], labels[:local], ref, labels, self_index=own)
            loss = TripletLoss(0.2)(ref[:local], labels[:local], triplets, ref, labels)
        loss.backward()
        if i:
            times.append(1e3 * (time.perf_counter() - t0))
    return {"objective": objective, "B": batch, "W": world, "sharded": sharded, "ms": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--worlds", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        objective, batch, world, sharded = args.worker
        print(json.dumps(worker(objective, int(batch), int(world), sharded == "1", args.repeats)))
        return 0
    worlds = [int(w) for w in args.worlds.split(",")]
    rows = {}
    for objective in OBJECTIVES:
        for world in worlds:
            for sharded in ((True,) if world > 1 else (False,)):  # replicated work does not depend on W
                out = subprocess.run([sys.executable, __file__, "--worker", objective, str(args.batch), str(world),
                                      "1" if sharded else "0", "--repeats", str(args.repeats)],
                                     check=True, capture_output=True, text=True).stdout
                rows[(objective, world, sharded)] = json.loads(out.strip().splitlines()[-1])["ms"]
                print(objective, world, sharded, rows[(objective, world, sharded)], file=sys.stderr, flush=True)
    print(f"global batch B = {args.batch}, d = 512, K = 4, 1 thread; rank 0's mining + loss + backward, median "
          f"of {args.repeats} (ms); replicated = every rank does all B anchors\n")
    print("| objective | W | replicated | sharded | speed-up |")
    print("|---|---|---|---|---|")
    for objective in OBJECTIVES:
        for world in worlds:
            full = rows[(objective, 1, False)]
            if world == 1:
                print(f"| {objective} | 1 | {full:.0f} | – | – |")
            else:
                part = rows[(objective, world, True)]
                print(f"| {objective} | {world} | {full:.0f} | {part:.0f} | {full / part:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
