"""Forward + backward time and peak memory of the classification heads, against PML's ArcFaceLoss / CosFaceLoss.

Each (head, #classes) runs in a fresh process with one thread: build the head, run ``warmup`` + ``repeats``
steps of ``loss(embeddings, labels).backward()`` on random data, report the median step time — process CPU time,
which with one thread is robust to other jobs sharing the machine (wall time is printed too) — and the peak-RSS
growth over the process baseline (weights + gradients + activations). PartialFC (sample_rate 0.1, single
process) is compared with the full FC of the same head. Ratios are ours / reference, measured in the same run.

    python benchmarks/bench_heads.py               # every head at 10.5K (CASIA), main heads at 100K; b 512, d 512
    python benchmarks/bench_heads.py --all-large   # every head at 100K too (~15 min on a busy 2-core machine)
    python benchmarks/bench_heads.py --quick       # 10.5K classes, batch 256, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# configuration -> the configuration its time is divided by in the ratio column ('' = a reference)
CONFIGS: dict[str, str] = {
    "pml.ArcFaceLoss": "",
    "pml.CosFaceLoss": "",
    "pml.SubCenterArcFaceLoss(k=3)": "",
    "Softmax": "pml.ArcFaceLoss",
    "NormFace": "pml.ArcFaceLoss",
    "SphereFace": "pml.ArcFaceLoss",
    "CosFace": "pml.CosFaceLoss",
    "ArcFace": "pml.ArcFaceLoss",
    "ArcFace(straight-through)": "pml.ArcFaceLoss",
    "CombinedMargin": "pml.ArcFaceLoss",
    "CurricularFace": "pml.ArcFaceLoss",
    "AdaFace": "pml.ArcFaceLoss",
    "SubCenterArcFace(k=3)": "pml.SubCenterArcFaceLoss(k=3)",
    "MagFace": "pml.ArcFaceLoss",
    "PartialFC(ArcFace, 0.1)": "ArcFace",
}


# at >= 50K classes a default run times only these (every head: --all-large)
LARGE_DEFAULT = ["pml.ArcFaceLoss", "pml.CosFaceLoss", "Softmax", "NormFace", "CosFace", "ArcFace",
                 "PartialFC(ArcFace, 0.1)"]


def build(name: str, dim: int, classes: int) -> Callable[..., object]:
    """Return ``loss_fn(embeddings, labels) -> scalar`` for a configuration (imports happen here, in the worker)."""
    import math as _math

    from pytorch_metric_learning import losses as pml

    import massface.losses as L

    if name == "pml.ArcFaceLoss":
        return pml.ArcFaceLoss(classes, dim, margin=_math.degrees(0.5), scale=64)
    if name == "pml.CosFaceLoss":
        return pml.CosFaceLoss(classes, dim, margin=0.35, scale=64)
    if name == "pml.SubCenterArcFaceLoss(k=3)":
        return pml.SubCenterArcFaceLoss(num_classes=classes, embedding_size=dim, margin=_math.degrees(0.5),
                                        scale=64, sub_centers=3)
    heads = {
        "Softmax": lambda: L.Softmax(dim, classes),
        "NormFace": lambda: L.NormFace(dim, classes),
        "SphereFace": lambda: L.SphereFace(dim, classes),
        "CosFace": lambda: L.CosFace(dim, classes),
        "ArcFace": lambda: L.ArcFace(dim, classes),
        "ArcFace(straight-through)": lambda: L.ArcFace(dim, classes, straight_through=True, fallback="none"),
        "CombinedMargin": lambda: L.CombinedMargin(dim, classes),
        "CurricularFace": lambda: L.CurricularFace(dim, classes),
        "AdaFace": lambda: L.AdaFace(dim, classes),
        "SubCenterArcFace(k=3)": lambda: L.SubCenterArcFace(dim, classes, k=3),
        "MagFace": lambda: L.MagFace(dim, classes),
        "PartialFC(ArcFace, 0.1)": lambda: L.PartialFC(L.ArcFace(dim, classes), sample_rate=0.1),
    }
    return heads[name]().loss


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(name: str, classes: int, batch: int, dim: int, warmup: int, repeats: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, dim, generator=gen) * 10
    y = torch.randint(0, classes, (batch,), generator=gen)
    base = peak_rss_mb()
    loss_fn = build(name, dim, classes)
    cpu, wall = [], []
    for step in range(warmup + repeats):
        xs = x.clone().requires_grad_()
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        loss = loss_fn(xs, y)
        loss.backward()  # type: ignore[union-attr]
        if step >= warmup:
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start_wall)
        assert math.isfinite(loss.item()), name  # type: ignore[union-attr]
    return {"ms": 1000 * statistics.median(cpu), "wall_ms": 1000 * statistics.median(wall),
            "rss_mb": peak_rss_mb() - base}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10.5K classes only, batch 256, 1 warmup + 2 repeats")
    parser.add_argument("--classes", type=int, nargs="+", default=None, help="class counts (default 10575 100000)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", nargs="+", default=None, help="subset of configurations")
    parser.add_argument("--all-large", action="store_true",
                        help="time every configuration at >= 50K classes too (default: the main heads only)")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "CLASSES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch = args.batch or (256 if args.quick else 512)
    repeats = args.repeats or (2 if args.quick else 3)
    warmup = 1
    if args.worker:
        name, classes = args.worker[0], int(args.worker[1])
        print(json.dumps(worker(name, classes, batch, args.dim, warmup, repeats)))
        return 0
    class_counts = args.classes or ([10575] if args.quick else [10575, 100_000])
    chosen = args.only or list(CONFIGS)
    unknown = [n for n in chosen if n not in CONFIGS]
    if unknown:
        parser.error(f"--only: unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    print(f"batch {batch}, dim {args.dim}, 1 thread, median of {repeats} (after {warmup} warm-up), "
          "fresh process per row; cpu ms = process CPU time of one fwd+bwd step, rss = peak-RSS growth")
    print(f"{'head':28s} {'classes':>8s} {'cpu ms':>9s} {'wall ms':>9s} {'rss MB':>7s}  {'ref':30s} {'ratio':>6s}")
    for classes in class_counts:
        results: dict[str, dict[str, float]] = {}
        large = classes >= 50_000 and not args.all_large and not args.only
        names = [n for n in chosen if n in LARGE_DEFAULT] if large else chosen
        for name in names:
            cmd = [sys.executable, __file__, "--worker", name, str(classes), "--batch", str(batch),
                   "--dim", str(args.dim), "--repeats", str(repeats)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{name:28s} {classes:8d} FAILED: {done.stderr.strip().splitlines()[-1:]}")
                continue
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            ref = CONFIGS[name]
            ratio = (f"{results[name]['ms'] / results[ref]['ms']:6.2f}" if ref in results else "     -")
            print(f"{name:28s} {classes:8d} {results[name]['ms']:9.1f} {results[name]['wall_ms']:9.1f} "
                  f"{results[name]['rss_mb']:7.0f}  "
                  f"{ref or '(reference)':30s} {ratio}", flush=True)
        full, partial = results.get("ArcFace"), results.get("PartialFC(ArcFace, 0.1)")
        if full and partial:
            print(f"  PartialFC 0.1 vs full FC at {classes} classes: cpu time x{partial['ms'] / full['ms']:.2f}, "
                  f"peak RSS x{partial['rss_mb'] / max(full['rss_mb'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
