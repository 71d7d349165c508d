"""Benchmark the evaluation layer against insightface's algorithms, re-implemented here in numpy.

Part 1 — 10-fold verification of 6,000 pairs (LFW size): the insightface loop (``calculate_roc``:
400 grid thresholds × 10 folds, plus ``calculate_val``: 4,000 thresholds × 10 folds, with old SciPy's
slinear rule) against ``evaluate_pairs`` in grid and exact mode. Each configuration runs in a fresh
process, single-threaded; median of ``--repeats``.

Part 2 — IJB-C size from features: synthetic image features of the real sizes (469,375 images,
23,124 templates, 3,531 subjects, 15,658,437 template pairs of which 19,557 genuine), then
``pool_templates`` + ``verify_templates`` (pair scoring + ROC + TPR at FAR). Reports time per stage and
peak resident memory of the process (``ru_maxrss``), features included. ``--quick`` shrinks it 10×.

    python benchmarks/bench_eval.py            # both parts
    python benchmarks/bench_eval.py --quick    # a short run
    python benchmarks/bench_eval.py --part pairs|ijb
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# the insightface loop (FaceNet lfw.py lineage), plain numpy, as reference


def _if_accuracy(threshold, dist, actual):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, actual))
    fp = np.sum(np.logical_and(predict, np.logical_not(actual)))
    tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(actual)))
    fn = np.sum(np.logical_and(np.logical_not(predict), actual))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    return tpr, fpr, float(tp + tn) / dist.size


def _if_val_far(threshold, dist, actual):
    predict = np.less(dist, threshold)
    ta = np.sum(np.logical_and(predict, actual))
    fa = np.sum(np.logical_and(predict, np.logical_not(actual)))
    return float(ta) / float(np.sum(actual)), float(fa) / float(np.sum(np.logical_not(actual)))


def _if_folds(n, k=10):
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    start, out = 0, []
    for s in sizes:
        test = np.arange(start, start + s)
        out.append((np.setdiff1d(np.arange(n), test), test))
        start += s
    return out


def insightface_evaluate(e1, e2, issame, with_val=True):
    """insightface verification.evaluate: calculate_roc (+ calculate_val at FAR 1e-3)."""
    from scipy.interpolate import BSpline

    def norm(x):
        n = np.sqrt(np.einsum("ij,ij->i", x, x))
        n[n == 0] = 1
        return x / n[:, None]

    dist = np.sum(np.square(np.subtract(norm(e1), norm(e2))), 1)
    thresholds = np.arange(0, 4, 0.01)
    folds = _if_folds(len(issame))
    accuracy = np.zeros(len(folds))
    tprs = np.zeros((len(folds), len(thresholds)))
    fprs = np.zeros((len(folds), len(thresholds)))
    for f, (train, test) in enumerate(folds):
        acc_train = np.zeros(len(thresholds))
        for j, t in enumerate(thresholds):
            _, _, acc_train[j] = _if_accuracy(t, dist[train], issame[train])
        best = np.argmax(acc_train)
        for j, t in enumerate(thresholds):
            tprs[f, j], fprs[f, j], _ = _if_accuracy(t, dist[test], issame[test])
        _, _, accuracy[f] = _if_accuracy(thresholds[best], dist[test], issame[test])
    val_mean = None
    if with_val:
        vthr = np.arange(0, 4, 0.001)
        vals = np.zeros(len(folds))
        for f, (train, test) in enumerate(folds):
            far_train = np.array([_if_val_far(t, dist[train], issame[train])[1] for t in vthr])
            if np.max(far_train) >= 1e-3:
                # old scipy interp1d(kind="slinear") == degree-1 B-spline on knots [x0, x..., x_last]
                t = float(BSpline(np.r_[far_train[0], far_train, far_train[-1]], vthr, 1)(1e-3))
            else:
                t = 0.0
            vals[f], _ = _if_val_far(t, dist[test], issame[test])
        val_mean = float(np.mean(vals))
    return float(np.mean(accuracy)), float(np.std(accuracy)), val_mean


def lfw_like(seed=0, n=6000, d=512):
    """6,000 pairs in LFW's layout (10 blocks of 300 same + 300 different), ~99% separable."""
    rng = np.random.default_rng(seed)
    issame = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], n // 600)
    e1 = rng.normal(size=(n, d)).astype(np.float32)
    noise = rng.uniform(0.3, 6.0, (n, 1)) * rng.normal(size=(n, d))  # per-pair difficulty
    e2 = np.where(issame[:, None], e1 + noise, rng.normal(size=(n, d))).astype(np.float32)
    return e1, e2, issame


def _worker_pairs(config: str, repeats: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from massface.evaluation.verification import evaluate_distances, evaluate_pairs, pair_distances

    e1, e2, issame = lfw_like()
    dist = pair_distances(e1, e2)
    times, out = [], None
    if config.startswith("massface"):  # one untimed warm-up call (first-touch page faults, lazy imports)
        evaluate_pairs(e1, e2, issame)
    for _ in range(repeats):
        t0 = time.perf_counter()
        if config == "insightface_roc":
            out = insightface_evaluate(e1, e2, issame, with_val=False)
        elif config == "insightface_roc+val":
            out = insightface_evaluate(e1, e2, issame, with_val=True)
        else:
            mode = config.split("_")[1]
            if config.endswith("(distances)"):
                r = evaluate_distances(dist, issame, thresholds=mode.split(" ")[0], far_targets=(1e-3,))
            else:
                r = evaluate_pairs(e1, e2, issame, thresholds=mode, far_targets=(1e-3,))
            out = (r.accuracy, r.std, r.tar_at_far[1e-3])
        times.append(time.perf_counter() - t0)
    return {"config": config, "median_s": float(np.median(times)), "result": out}


# --------------------------------------------------------------------------------------------------
# IJB-C size


def _maxrss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _worker_ijb(scale: float) -> dict:
    from massface.evaluation.ijb import pool_templates, verify_templates

    rng = np.random.default_rng(0)
    n_img, n_tpl, n_subj = int(469_375 * scale), int(23_124 * scale), int(3_531 * scale)
    n_gen, n_imp = int(19_557 * scale), int(15_638_880 * scale)
    dim = 512
    subj_of_tpl = rng.integers(0, n_subj, n_tpl)
    tpl_of_img = np.sort(rng.integers(0, n_tpl, n_img))
    media_of_img = tpl_of_img * 16 + rng.integers(0, 6, n_img)  # ~5 media per template
    centres = rng.standard_normal((n_subj, dim), dtype=np.float32)
    feats = np.empty((n_img, dim), dtype=np.float32)
    for s in range(0, n_img, 65536):  # subject centre + noise, flip-sum-like raw norms
        e = slice(s, min(s + 65536, n_img))
        feats[e] = centres[subj_of_tpl[tpl_of_img[e]]] + 1.5 * rng.standard_normal((e.stop - e.start, dim), dtype=np.float32)
        feats[e] *= rng.uniform(0.5, 1.0, (e.stop - e.start, 1)).astype(np.float32)
    # genuine pairs: two templates of one subject; impostors: uniform random template pairs
    by_subj = np.argsort(subj_of_tpl, kind="stable")
    a = rng.integers(0, n_tpl, n_gen)
    first = np.searchsorted(subj_of_tpl[by_subj], subj_of_tpl[a])
    count = np.bincount(subj_of_tpl, minlength=n_subj)[subj_of_tpl[a]]
    b = by_subj[first + rng.integers(0, count)]
    t1 = np.concatenate([a, rng.integers(0, n_tpl, n_imp)])
    t2 = np.concatenate([b, rng.integers(0, n_tpl, n_imp)])
    labels = np.zeros(t1.size, dtype=np.int8)
    labels[:n_gen] = 1
    tpl_ids = tpl_of_img + 1  # ids as in the files (1-based)
    rss_inputs = _maxrss_gb()

    t0, c0 = time.perf_counter(), time.process_time()
    templates, tfeats = pool_templates(feats, tpl_ids, media_of_img)
    t_pool, c_pool = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    tpr, curve = verify_templates(templates, tfeats, t1 + 1, t2 + 1, labels, return_curve=True)
    t_verify, c_verify = time.perf_counter() - t0, time.process_time() - c0
    return {
        "images": n_img, "templates": int(templates.size), "pairs": int(t1.size), "genuine": n_gen,
        "pool_s": t_pool, "verify_s": t_verify, "total_s": t_pool + t_verify,
        "pool_cpu_s": c_pool, "verify_cpu_s": c_verify,
        "peak_rss_gb": _maxrss_gb(), "inputs_rss_gb": rss_inputs,
        "tpr_at_far": {f"{k:g}": v for k, v in tpr.items()}, "auc": curve["auc"],
    }


# --------------------------------------------------------------------------------------------------


def _spawn(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("pairs", "ijb", "all"), default="all")
    p.add_argument("--quick", action="store_true", help="fewer repeats, IJB part at 1/10 size")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for the IJB part (default 1)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--scale", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "ijb":
        print(json.dumps(_worker_ijb(args.scale)))
        return
    if args.worker:
        print(json.dumps(_worker_pairs(args.worker, args.repeats)))
        return

    if args.part in ("pairs", "all"):
        reps = args.repeats or (3 if args.quick else 7)
        rows = {}
        configs = ("insightface_roc", "insightface_roc+val", "massface_grid", "massface_exact",
                   "massface_grid (distances)", "massface_exact (distances)")
        for cfg in configs:
            r = _spawn(["--worker", cfg, "--repeats", str(reps if cfg.startswith("massface") else max(1, reps // 3))], 1)
            rows[cfg] = r
        ref_full = rows["insightface_roc+val"]["median_s"]
        ref_roc = rows["insightface_roc"]["median_s"]
        print("\n10-fold verification, 6,000 pairs x 512-d (LFW layout), 1 thread, fresh process each, median;")
        print("'(distances)' rows start from precomputed pair distances (the protocol alone)")
        print(f"{'configuration':<34}{'time (ms)':>12}{'vs roc loop':>14}{'vs roc+val loop':>17}   accuracy / std / VAL@1e-3")
        for cfg, r in rows.items():
            acc, std, val = r["result"]
            val_s = "—" if val is None else f"{100 * val:.2f}"
            print(f"{cfg:<34}{1000 * r['median_s']:>12.1f}{ref_roc / r['median_s']:>13.1f}x"
                  f"{ref_full / r['median_s']:>16.1f}x   {100 * acc:.3f} / {100 * std:.3f} / {val_s}")
        same = rows["massface_grid"]["result"][:2] == rows["insightface_roc"]["result"][:2]
        val_same = abs(rows["massface_grid"]["result"][2] - rows["insightface_roc+val"]["result"][2]) < 1e-12
        print(f"grid accuracy/std identical to the insightface loop: {same}; VAL@1e-3 identical: {val_same}")

    if args.part in ("ijb", "all"):
        scale = 0.1 if args.quick else 1.0
        r = _spawn(["--worker", "ijb", "--scale", str(scale)], args.threads)
        print(f"\nIJB-C-size 1:1 from features ({args.threads} BLAS thread(s), scale {scale:g}): "
              f"{r['images']:,} images, {r['templates']:,} templates, {r['pairs']:,} pairs ({r['genuine']:,} genuine)")
        print(f"{'stage':<36}{'wall (s)':>10}{'CPU (s)':>10}")
        print(f"{'pool_templates':<36}{r['pool_s']:>10.2f}{r['pool_cpu_s']:>10.2f}")
        print(f"{'verify_templates (score+ROC+TPR)':<36}{r['verify_s']:>10.2f}{r['verify_cpu_s']:>10.2f}")
        print(f"{'total':<36}{r['total_s']:>10.2f}{r['pool_cpu_s'] + r['verify_cpu_s']:>10.2f}   target < 60 s")
        print(f"peak RSS {r['peak_rss_gb']:.2f} GB (inputs alone {r['inputs_rss_gb']:.2f} GB)   target < 8 GB")
        print("TPR@FAR: " + ", ".join(f"{k}: {100 * v:.2f}" for k, v in r["tpr_at_far"].items())
              + f"; AUC {100 * r['auc']:.2f}")


if __name__ == "__main__":
    main()
