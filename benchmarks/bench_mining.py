"""Benchmark: massface miners against their closest pytorch-metric-learning miners.

Every (implementation, miner, B, K) runs in a fresh process with ``torch.set_num_threads(1)``:
embeddings ``normalize(randn(B, 512))`` (seed 0), labels ``arange(B // K).repeat_interleave(K)``, one warm-up
call then ``--repeats`` timed calls (median and min, ms). Memory: peak RSS of the process minus the peak after
imports and data creation (Δ MiB). Ratios are PML / massface for time and memory, measured in the same run.

    python benchmarks/bench_mining.py            # B ∈ {256, 840, 2048}, K ∈ {4, 8}
    python benchmarks/bench_mining.py --quick    # B = 840, K = 4 only
    python benchmarks/bench_mining.py --sizes 2048x4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

# (our miner, closest PML miner, what is compared)
PAIRS = {
    "batch_all": ("BatchAllMiner(margin=0.2)",
                  "TripletMarginMiner(margin=0.2, type_of_triplets='all', distance=LpDistance(power=2))"),
    "semihard": ("SemiHardMiner(margin=0.2)",
                 "TripletMarginMiner(margin=0.2, type_of_triplets='semihard', distance=LpDistance(power=2))"),
    "hardest": ("BatchHardestMiner()", "BatchHardMiner()"),
    "min_min": ("BatchMinMinMiner()", "BatchEasyHardMiner(pos_strategy='easy', neg_strategy='hard')"),
    "min_max": ("BatchMinMaxMiner()", "BatchEasyHardMiner(pos_strategy='hard', neg_strategy='semihard')"),
    "random": ("BatchRandomMiner(margin=0.2)",
               "TripletMarginMiner(margin=0.2, type_of_triplets='all', distance=LpDistance(power=2))"),
    "distance_matrix": ("SquaredEuclideanDistance()", "LpDistance(power=2)"),
}


def worker(impl: str, name: str, batch: int, k: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from pytorch_metric_learning.distances import LpDistance  # noqa: F401  (used by eval)
    from pytorch_metric_learning.miners import BatchEasyHardMiner, BatchHardMiner, TripletMarginMiner  # noqa: F401

    from massface.distances import SquaredEuclideanDistance  # noqa: F401
    from massface.mining import (  # noqa: F401
        BatchAllMiner,
        BatchHardestMiner,
        BatchMinMaxMiner,
        BatchMinMinMiner,
        BatchRandomMiner,
        SemiHardMiner,
    )

    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(batch, 512), dim=1)
    labels = torch.arange(batch // k).repeat_interleave(k)
    obj = eval(PAIRS[name][0 if impl == "massface" else 1])
    call = (lambda: obj(emb)) if name == "distance_matrix" else (lambda: obj(emb, labels))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = call()
    times = []
    for _ in range(repeats):
        del out  # the previous result is not kept alive while the next one is built
        t0 = time.perf_counter()
        out = call()
        times.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = int(out.numel()) if name == "distance_matrix" else int(out[0].numel())
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "delta_mib": max(peak - base, 0) / 1024.0,
        "output": size,
    }


def run(impl: str, name: str, batch: int, k: int, repeats: int, timeout: float) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", impl, name, str(batch), str(k), str(repeats)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{impl} {name} B={batch} K={k} failed:\n{err.stderr}") from err
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(r: dict | None) -> str:
    return "timeout" if r is None else f"{r['median_ms']:.1f} ({r['min_ms']:.1f}) · Δ{r['delta_mib']:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only B=840, K=4")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per configuration")
    ap.add_argument("--sizes", default="256x4,256x8,840x4,840x8,2048x4,2048x8",
                    help="comma-separated BxK configurations")
    ap.add_argument("--miners", default=",".join(PAIRS), help="comma-separated subset of " + ",".join(PAIRS))
    ap.add_argument("--worker", nargs=5, metavar=("IMPL", "MINER", "B", "K", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        impl, name, b, k, reps = args.worker
        print(json.dumps(worker(impl, name, int(b), int(k), int(reps))))
        return 0
    sizes = "840x4" if args.quick else args.sizes
    configs = [tuple(int(v) for v in item.split("x")) for item in sizes.split(",") if item.strip()]
    names = [n.strip() for n in args.miners.split(",") if n.strip()]
    print("| miner (massface vs PML) | B | K | massface ms median (min) · ΔMiB | PML ms median (min) · ΔMiB "
          "| time ratio PML/ours | extra-memory ratio ours/PML | triplets ours / PML |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, k in configs:
        for name in names:
            ours = run("massface", name, batch, k, args.repeats, args.timeout)
            theirs = run("pml", name, batch, k, args.repeats, args.timeout)
            ratio = f"{theirs['median_ms'] / ours['median_ms']:.1f}×" if ours and theirs else "—"
            mem = (f"{max(ours['delta_mib'], 1.0) / max(theirs['delta_mib'], 1.0):.2f}"
                   if ours and theirs else "—")
            counts = f"{ours['output'] if ours else '—'} / {theirs['output'] if theirs else '—'}"
            print(f"| {name}: {PAIRS[name][0].split('(')[0]} vs {PAIRS[name][1].split('(')[0]} | {batch} | {k} "
                  f"| {fmt(ours)} | {fmt(theirs)} | {ratio} | {mem} | {counts} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
