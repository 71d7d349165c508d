"""Benchmark: PKSampler at face-dataset scale against pytorch-metric-learning's MPerClassSampler.

Labels: N images over C identities (uniformly random identity per image, seed 1). For each sampler, in a fresh
process with one thread: construction time, the time to produce one whole epoch of batches, batches per
epoch and identity coverage of that epoch (share of identities seen). PML's sampler has no notion of an epoch
over identities; it is given ``length_before_new_iter = N`` (one pass over the images' worth of samples).

    python benchmarks/bench_sampler.py                 # 5M images / 100K identities, P×K = 64×4
    python benchmarks/bench_sampler.py --images 500000 --identities 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def worker(impl: str, images: int, identities: int, p: int, k: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    labels = np.random.default_rng(1).integers(0, identities, size=images)
    t0 = time.perf_counter()
    if impl == "massface":
        from massface.sampling import PKSampler

        sampler = PKSampler(labels, p, k, seed=0)
        build = time.perf_counter() - t0
        t1 = time.perf_counter()
        batches = list(sampler)
    else:
        from pytorch_metric_learning.samplers import MPerClassSampler

        sampler = MPerClassSampler(labels, m=k, batch_size=p * k, length_before_new_iter=images)
        build = time.perf_counter() - t0
        t1 = time.perf_counter()
        flat = list(sampler)
        batches = [flat[i : i + p * k] for i in range(0, len(flat), p * k)]
    epoch = time.perf_counter() - t1
    seen = np.unique(labels[np.concatenate([np.asarray(b) for b in batches])]).size
    return {"build_s": build, "epoch_s": epoch, "batches": len(batches), "coverage": seen / np.unique(labels).size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5_000_000)
    ap.add_argument("--identities", type=int, default=100_000)
    ap.add_argument("--p", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.images, args.identities, args.p, args.k)))
        return 0
    print(f"{args.images:,} images, {args.identities:,} identities, P×K = {args.p}×{args.k}, 1 thread")
    print("| sampler | build s | one epoch s | batches/epoch | identities covered |")
    print("|---|---|---|---|---|")
    rows = {}
    for impl in ("massface", "pml"):
        cmd = [sys.executable, __file__, "--worker", impl, "--images", str(args.images), "--identities",
               str(args.identities), "--p", str(args.p), "--k", str(args.k)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = rows[impl] = json.loads(out)
        name = "massface PKSampler" if impl == "massface" else "PML MPerClassSampler"
        print(f"| {name} | {r['build_s']:.2f} | {r['epoch_s']:.2f} | {r['batches']} | {100 * r['coverage']:.1f}% |",
              flush=True)
    ours, theirs = rows["massface"], rows["pml"]
    print(f"\nbuild + epoch: massface {ours['build_s'] + ours['epoch_s']:.2f} s, PML "
          f"{theirs['build_s'] + theirs['epoch_s']:.2f} s "
          f"(ratio PML/massface {(theirs['build_s'] + theirs['epoch_s']) / (ours['build_s'] + ours['epoch_s']):.1f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
