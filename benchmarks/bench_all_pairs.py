"""Benchmark: all-to-all 1:1 verification (:func:`massface.evaluation.all_pairs.all_pairs_roc`).

Every configuration runs in a fresh process with ``torch.set_num_threads(2)``. Data: ``N`` random 512-d
embeddings, 10 images per identity, ``e = prototype(identity) + 2·noise`` (standard normal prototype and noise,
seed 0: genuine cosines ~0.2, impostor ~0 ± 0.044), float32. Timed: one ``all_pairs_roc`` call (its
normalisation and label sort included) against the lower bound measured in the same run — the same
upper-triangular ``b × b`` block tiling doing only the float32 matmul, no histogram. Peak RSS is the process's
``VmHWM`` (data included). A correctness row at small ``N`` compares the TPRs with sklearn's exact ROC of all
pairs (``massface.evaluation.roc.roc_curve``): exact TPR@FAR must lie in ``[tpr, tpr_upper]``.

    python benchmarks/bench_all_pairs.py                      # N = 100 000 and 200 000, check at N = 3000
    python benchmarks/bench_all_pairs.py --n 20000,50000
    python benchmarks/bench_all_pairs.py --n 20000 --check-n 0 # no correctness row
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
DIM = 512
PER_ID = 10


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource  # pragma: no cover - non-Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _data(n: int):
    import torch

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(-(-n // PER_ID)).repeat_interleave(PER_ID)[:n]
    proto = torch.randn(int(labels[-1]) + 1, DIM, generator=g)
    emb = torch.randn(n, DIM, generator=g).mul_(2.0)
    for s in range(0, n, 8192):  # in chunks: no (N, D) temporary
        emb[s : s + 8192] += proto[labels[s : s + 8192]]
    return emb, labels.numpy()


def worker(mode: str, n: int, block: int) -> dict:
    import torch

    torch.set_num_threads(2)
    from massface.evaluation.all_pairs import all_pairs_roc

    emb, labels = _data(n)
    out: dict = {"n": n, "mode": mode}
    if mode == "ours":
        t0 = time.perf_counter()
        res = all_pairs_roc(emb, labels, far_targets=FARS, block_size=block)
        out["seconds"] = time.perf_counter() - t0
        out["pairs"] = res.n_pairs
        out["points"] = [[p.far_target, p.tpr, p.tpr_upper, p.resolvable] for p in res.points]
    elif mode == "matmul":
        e = torch.nn.functional.normalize(emb, dim=1)
        buf = torch.empty(block * block)
        nb = -(-n // block)
        t0 = time.perf_counter()
        for i in range(nb):
            a = e[i * block : (i + 1) * block]
            for j in range(i, nb):
                c = e[j * block : (j + 1) * block]
                torch.mm(a, c.T, out=buf[: a.shape[0] * c.shape[0]].view(a.shape[0], c.shape[0]))
        out["seconds"] = time.perf_counter() - t0
    elif mode == "check":
        import numpy as np

        from massface.evaluation.roc import roc_curve

        t0 = time.perf_counter()
        res = all_pairs_roc(emb, labels, far_targets=FARS, block_size=block)
        out["seconds"] = time.perf_counter() - t0
        x = emb.double().numpy()
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        iu = np.triu_indices(n, 1)
        scores = (x @ x.T)[iu]  # float64 scores: the exact ROC sklearn is given
        same = labels[iu[0]] == labels[iu[1]]
        t1 = time.perf_counter()
        fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
        out["sklearn_seconds"] = time.perf_counter() - t1
        out["pairs"] = int(scores.size)
        rows = []
        for p in res.points:
            exact = float(tpr[fpr <= p.far_target].max()) if p.resolvable else float("nan")
            rows.append([p.far_target, p.tpr, p.tpr_upper, p.resolvable, exact])
        out["points"] = rows
    out["peak_mib"] = _peak_mib()
    return out


def run(mode: str, n: int, block: int, timeout: float) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", mode, str(n), str(block)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{mode} N={n} failed:\n{err.stderr}") from err
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tpr(p: list) -> str:
    return "unresolvable" if not p[3] else f"{p[1]:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100000,200000", help="comma-separated image counts")
    ap.add_argument("--check-n", type=int, default=3000, help="N of the sklearn correctness row (0: none)")
    ap.add_argument("--block", type=int, default=1024, help="block size b")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per configuration")
    ap.add_argument("--worker", nargs=3, metavar=("MODE", "N", "BLOCK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        mode, n, block = args.worker
        print(json.dumps(worker(mode, int(n), int(block))))
        return 0
    sizes = [int(v) for v in args.n.split(",") if v.strip()]
    fars = " | ".join(f"TPR@{f:g}" for f in FARS)
    print(f"| N | pairs | ours s | matmul-only s | ratio ours/matmul | peak MiB | {fars} |")
    print("|---|---|---|---|---|---|" + "---|" * len(FARS))
    for n in sizes:
        ours = run("ours", n, args.block, args.timeout)
        base = run("matmul", n, args.block, args.timeout)
        if ours is None:
            print(f"| {n} | — | timeout | — | — | — |" + " — |" * len(FARS), flush=True)
            continue
        mm = f"{base['seconds']:.1f}" if base else "timeout"
        ratio = f"{ours['seconds'] / base['seconds']:.2f}×" if base else "—"
        tprs = " | ".join(_tpr(p) for p in ours["points"])
        print(f"| {n} | {ours['pairs']:,} | {ours['seconds']:.1f} | {mm} | {ratio} | {ours['peak_mib']:.0f} "
              f"| {tprs} |", flush=True)
    if args.check_n:
        chk = run("check", args.check_n, args.block, args.timeout)
        print()
        print(f"Correctness at N = {args.check_n} ({chk['pairs']:,} pairs; ours {chk['seconds']:.2f} s, "
              f"sklearn roc_curve {chk['sklearn_seconds']:.2f} s; bins 2^16, width 3.05e-5):")
        print()
        print("| FAR | ours TPR (edge e_k) | ours upper (edge e_k-1) | sklearn exact TPR@FAR | within bounds |")
        print("|---|---|---|---|---|")
        for far, lo, hi, ok, exact in chk["points"]:
            if not ok:
                print(f"| {far:g} | unresolvable | — | — | — |")
                continue
            inside = "yes" if lo - 1e-12 <= exact <= hi + 1e-12 else "NO"
            print(f"| {far:g} | {lo:.6f} | {hi:.6f} | {exact:.6f} | {inside} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
