"""Benchmark: the batch-all / semi-hard triplet loss, forward + backward, fused against mined.

Every (implementation, B) runs in a fresh process with ``torch.set_num_threads(1)``: embeddings
``randn(B, 512)`` (seed 0, a leaf with gradient; each loss normalises), labels ``arange(B // K).repeat_interleave(K)``,
margin 0.2, one warm-up call then ``--repeats`` timed calls of loss + backward (median ms). Memory: peak RSS minus
the peak after imports and data creation (Δ MiB). Implementations, all measured in the same run:

- ``fused``  -- ``FusedTripletLoss(strategy, 0.2)``;
- ``mined``  -- ``TripletLoss(0.2)(emb, labels, BatchAllMiner(0.2)(emb, labels))`` (resp. ``SemiHardMiner``);
- ``pml``    -- PML's ``TripletMarginMiner(type_of_triplets='all'|'semihard')`` + ``TripletMarginLoss``, squared
  L2 (``LpDistance(power=2)``; B <= 2048 only);
- ``matrix`` -- the squared-Euclidean distance matrix of the normalised embeddings alone, summed, in plain torch
  (``2 - 2·x xᵀ``: autograd's two products in the backward pass): the reference the issue's targets are set against;
- ``massface_matrix`` -- the same matrix by massface's ``dissimilarity_matrix`` (a batch against itself: the
  symmetric backward, one product), the floor of massface's own losses.

The table also repeats the figures recorded in issue 18 before this work (mined path, another run on this machine).

    python benchmarks/bench_fused_triplet.py                       # B in {840, 2048, 4096}, batch-all
    python benchmarks/bench_fused_triplet.py --strategy semihard --sizes 840,2048
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

ISSUE_FIGURES = {840: (136, 28, 183), 2048: (1354, 151, 829), 4096: (7704, 738, 3020)}
"""Issue 18's table (batch-all, K = 4, before the fused loss): B -> (mined ms, matrix ms, mined extra RSS MiB)."""


def worker(impl: str, strategy: str, batch: int, k: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(batch, 512, generator=g)
    labels = torch.arange(batch // k).repeat_interleave(k)
    if impl == "fused":
        from massface.losses import FusedTripletLoss

        loss_fn = FusedTripletLoss(strategy, 0.2)

        def step(e):
            return loss_fn(e, labels)
    elif impl == "mined":
        from massface.losses import TripletLoss
        from massface.mining import BatchAllMiner, SemiHardMiner

        miner = (BatchAllMiner if strategy == "all" else SemiHardMiner)(margin=0.2)
        loss_fn = TripletLoss(0.2)

        def step(e):
            return loss_fn(e, labels, miner(e, labels))
    elif impl == "pml":
        from pytorch_metric_learning import distances, losses, miners

        dist = distances.LpDistance(power=2)
        miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets=strategy, distance=dist)
        loss_fn = losses.TripletMarginLoss(margin=0.2, distance=dist)

        def step(e):
            return loss_fn(e, labels, miner(e, labels))
    elif impl == "massface_matrix":
        from massface.distances import SquaredEuclideanDistance, dissimilarity_matrix

        distance = SquaredEuclideanDistance()

        def step(e):
            return dissimilarity_matrix(distance, e).sum()
    else:
        def step(e):
            x = F.normalize(e, dim=1)
            return (2 - 2 * x @ x.T).clamp_min(0).sum()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(repeats + 1):
        e = base.clone().requires_grad_()
        t0 = time.perf_counter()
        step(e).backward()
        if i:
            times.append(1e3 * (time.perf_counter() - t0))
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"impl": impl, "B": batch, "ms": statistics.median(times), "mib": extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", choices=("all", "semihard"), default="all")
    parser.add_argument("--sizes", default="840,2048,4096")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, strategy, batch = args.worker
        print(json.dumps(worker(impl, strategy, int(batch), args.k, args.repeats)))
        return 0
    rows = {}
    for batch in (int(s) for s in args.sizes.split(",")):
        for impl in ("matrix", "massface_matrix", "fused", "mined", "pml"):
            if impl == "pml" and batch > 2048:
                continue
            out = subprocess.run([sys.executable, __file__, "--worker", impl, args.strategy, str(batch),
                                  "--k", str(args.k), "--repeats", str(args.repeats)],
                                 check=True, capture_output=True, text=True).stdout
            rows[(batch, impl)] = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(rows[(batch, impl)]), file=sys.stderr, flush=True)
    print(f"strategy {args.strategy}, K = {args.k}, d = 512, 1 thread, forward + backward, median of "
          f"{args.repeats} (ms) · extra peak RSS (MiB); ratios against the plain-torch matrix\n")
    print("| B | issue 18: mined · matrix (ratio) | matrix (torch) | matrix (massface) | fused | fused / matrix | "
          "mined (TripletLoss + miner) | mined / matrix | PML | PML / fused |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for batch in sorted({b for b, _ in rows}):
        m, mm = rows[(batch, "matrix")], rows[(batch, "massface_matrix")]
        f, t = rows[(batch, "fused")], rows[(batch, "mined")]
        p = rows.get((batch, "pml"))
        pml = f"{p['ms']:.0f} · {p['mib']:.0f} | {p['ms'] / f['ms']:.1f}×" if p else "– | –"
        issue = ISSUE_FIGURES.get(batch) if args.strategy == "all" and args.k == 4 else None
        old = f"{issue[0]} · {issue[1]} ({issue[0] / issue[1]:.1f}×) · {issue[2]} MiB" if issue else "–"
        print(f"| {batch} | {old} | {m['ms']:.0f} · {m['mib']:.0f} | {mm['ms']:.0f} · {mm['mib']:.0f} | "
              f"{f['ms']:.0f} · {f['mib']:.0f} | {f['ms'] / m['ms']:.2f}× | {t['ms']:.0f} · {t['mib']:.0f} | "
              f"{t['ms'] / m['ms']:.1f}× | {pml} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
