"""Benchmark: training throughput on this CPU against a FLOP-bound estimate, and the data loader's throughput.

For each backbone (fresh process, ``--threads`` intra-op threads): images/s of forward + backward + SGD step at
``--batch`` and ``--size`` px, beside the bound MACs·3 / (matmul GFLOP/s measured in the same process) —
forward ≈ 1 MAC-pass, backward ≈ 2 — and the loader's images/s from an insightface ``.rec`` of SynthFaces (JPEG
decode + train transform, ``--workers`` processes). Training is loader-bound when the loader is slower.

    python benchmarks/bench_train.py                      # mobilefacenet and iresnet50 at 112 px
    python benchmarks/bench_train.py --backbones mobilefacenet --size 48 --batch 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def train_worker(backbone: str, size: int, batch: int, threads: int, iters: int) -> dict:
    import torch

    from massface.backbones import build_backbone, profile

    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    a @ a
    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    gflops = 5 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9
    options = {} if size == 112 else {"input_size": size}
    model = build_backbone(backbone, 512, **options)
    macs = profile(model, input_size=size)["macs"]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    times = []
    for i in range(iters + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    rate = batch / statistics.median(times)
    bound = gflops * 1e9 / (3 * 2 * macs)
    return {"img_s": rate, "bound_img_s": bound, "gflops": gflops, "gmacs": macs / 1e9}


def loader_worker(size: int, batch: int, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from massface.data import RecordDataset, SynthFaces, build_train_transform, write_records

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_records(tmp, SynthFaces(64, 16, image_size=size).iter_samples())
        ds = RecordDataset(f"{tmp}/train.rec", transform=build_train_transform("default", seed=0))
        loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
        n, t0 = 0, time.perf_counter()
        for _ in range(2):
            for x, _ in loader:
                n += x.shape[0]
        return {"img_s": n / (time.perf_counter() - t0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=["mobilefacenet", "iresnet50"])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        out = (train_worker(rest[0], args.size, args.batch, args.threads, args.iters) if kind == "train"
               else loader_worker(args.size, args.batch, args.workers))
        print(json.dumps(out))
        return 0
    common = ["--size", str(args.size), "--batch", str(args.batch), "--threads", str(args.threads),
              "--iters", str(args.iters), "--workers", str(args.workers)]

    def run(*worker: str) -> dict:
        cmd = [sys.executable, __file__, *common, "--worker", *worker]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])

    loader = run("loader")
    print(f"{args.size}×{args.size} px, batch {args.batch}, {args.threads} thread(s); loader: {args.workers} worker(s)")
    print("| backbone | GMACs/img | matmul GFLOP/s | train img/s | FLOP-bound img/s | efficiency | loader img/s | bound by |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.backbones:
        r = run("train", name)
        bound_by = "loader" if loader["img_s"] < r["img_s"] else "compute"
        print(f"| {name} | {r['gmacs']:.3f} | {r['gflops']:.1f} | {r['img_s']:.1f} | {r['bound_img_s']:.1f} | "
              f"{100 * r['img_s'] / r['bound_img_s']:.0f}% | {loader['img_s']:.0f} | {bound_by} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
