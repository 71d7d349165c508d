"""Miner comparison report: identical short training runs on SynthFaces, one per strategy (and one per mining
mode for one strategy), then one report with the verification table, training curves and the held-out
distance distributions side by side.

Every run has the same data (SynthFaces, cached in insightface's RecordIO / ``.bin`` formats), the same
initial weights and sampling order (same seed), the same P×K, optimiser, schedule and number of optimizer
steps; only ``loss.triplet.miner`` or ``mining.mode`` differs. The loss is the triplet loss alone (margin
0.25, squared Euclidean on L2-normalised embeddings), so the miner is the only thing that changes what is
learnt. The held-out ``.bin`` has identities disjoint from training and is scored by the 10-fold protocol
every ``--eval-every`` steps.

    python benchmarks/compare_miners.py                       # 6 strategies online + 3 more modes of min_max
    python benchmarks/compare_miners.py --quick               # a smoke-size run of two configurations (tests)
    python benchmarks/compare_miners.py --strategies hardest min_max --modes online xbm

Outputs in ``--out`` (default ``bench-output/compare_miners``): ``report.md``, ``results.json``,
``curves.png`` (held-out accuracy, triplet loss and active-triplet share per step), ``distances.png`` (one
panel per run, shared axes) and ``roc.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

STRATEGIES = ("all", "hardest", "min_min", "min_max", "random", "semihard")
MODES = ("online", "xbm", "semi_online", "offline")


def run_one(name: str, miner: str, mode: str, rec: Path, bin_path: Path, out: Path, args: argparse.Namespace,
            log, evaluate_untrained: bool = False) -> dict[str, Any]:
    """Train one configuration and evaluate it; returns its row of the report (with ``_untrained``, the
    evaluation of the initial weights — the same for every run — when asked)."""
    from massface.evaluation import evaluate_bin
    from massface.training.config import config_from_dict
    from massface.training.trainer import Trainer

    run_dir = out / "runs" / name.replace(" · ", "_")
    cfg = config_from_dict({
        "seed": args.seed,
        "output_dir": str(run_dir),
        "data": {"format": "rec", "path": str(rec), "p": args.p, "k": args.k, "workers": args.workers,
                 "transform": "light"},
        "model": {"backbone": "mobilefacenet", "embedding_size": args.embedding_size, "input_size": args.image_size},
        "loss": {"triplet": {"miner": miner, "margin": 0.25, "max_triplets": args.max_triplets}},
        "mining": {"mode": mode, "scale": args.scale, "memory_size": args.memory_size,
                   "refresh_every": args.refresh_every, "embed_batch_size": 128},
        "optim": {"name": "sgd", "lr": args.lr, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "cosine", "warmup_steps": max(1, args.steps // 20)},
        "train": {"steps": args.steps, "log_every": max(1, args.steps // 40), "checkpoint_every": args.steps},
        "eval": {"sets": [str(bin_path)], "every": args.eval_every, "batch_size": 128},
    })
    t0 = time.perf_counter()
    trainer = Trainer(cfg, resume=False, overwrite=True, log=lambda m: None)
    untrained = evaluate_bin(trainer.model.eval(), bin_path, batch_size=128) if evaluate_untrained else None
    fit = trainer.fit()
    seconds = time.perf_counter() - t0
    final = evaluate_bin(trainer.model.eval(), bin_path, batch_size=128)
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [(0, None)] + [(e["step"], e["eval"][bin_path.stem]) for e in evals if "eval" in e]
    history = trainer.history
    mean = lambda key: sum(h.get(key, 0.0) for h in history) / max(len(history), 1)  # noqa: E731
    log(f"{name}: {100 * final.accuracy:.2f}% ± {100 * final.std:.2f} in {seconds:.0f} s")
    return {
        "name": name, "miner": miner, "mode": mode, "steps": fit["step"], "seconds": seconds,
        "accuracy": final.accuracy, "std": final.std, "auc": final.auc, "eer": final.eer,
        "tar_at_far": {str(k): v for k, v in final.tar_at_far.items()},
        "mean_triplets": mean("miner_num_triplets"), "mean_active": mean("miner_active_fraction"),
        "curve": curve,
        "history": [{k: h[k] for k in ("step", "loss", "miner_active_fraction") if k in h} for h in history],
        "_evaluation": final,
        "_untrained": untrained,
    }


def write_report(rows: list[dict[str, Any]], before: Any, out: Path, args: argparse.Namespace) -> None:
    """``report.md`` + figures from the rows of :func:`run_one` and the untrained model's evaluation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from massface.evaluation import plot_distance_distributions, plot_roc

    fig = Figure(figsize=(15, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    acc, loss, active = fig.subplots(1, 3)
    for r in rows:
        steps = [s for s, _ in r["curve"]]
        values = [before.accuracy if a is None else a for _, a in r["curve"]]
        acc.plot(steps, [100 * v for v in values], marker="o", label=r["name"])
        loss.plot([h["step"] for h in r["history"]], [h["loss"] for h in r["history"]], label=r["name"])
        active.plot([h["step"] for h in r["history"]], [h.get("miner_active_fraction", float("nan"))
                                                         for h in r["history"]], label=r["name"])
    for ax, title in ((acc, "held-out accuracy (%)"), (loss, "triplet loss"), (active, "share of active triplets")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    acc.legend(fontsize="small")
    fig.savefig(out / "curves.png", dpi=100)
    panels = {"untrained": before, **{r["name"]: r["_evaluation"] for r in rows}}
    plot_distance_distributions(panels, out / "distances.png", columns=4,
                                title="held-out pair distances after training, per miner")
    plot_roc({f"{r['name']} (AUC {r['auc']:.3f})": (r["_evaluation"].fpr, r["_evaluation"].tpr) for r in rows},
             out / "roc.png", title="held-out ROC")
    lines = [
        "# Miner comparison on SynthFaces",
        "",
        f"MobileFaceNet ({args.embedding_size}-d), {args.steps} steps of P×K = {args.p}×{args.k} at "
        f"{args.image_size} px, triplet loss alone (margin 0.25, squared L2), SGD lr {args.lr} cosine; "
        f"{args.identities} training identities × {args.images} images; held-out: 10 folds × "
        f"{2 * args.pairs_per_fold} pairs of unseen identities. Same seed, data and initial weights for every run.",
        "",
        f"Untrained: {100 * before.accuracy:.2f}% ± {100 * before.std:.2f} (AUC {before.auc:.3f}).",
        "",
        "| run | miner | mode | accuracy (10-fold) | AUC | EER | TAR@FAR=1e-3 | triplets/step | active share | time s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tar = r["tar_at_far"].get("0.001", float("nan"))
        lines.append(f"| {r['name']} | {r['miner']} | {r['mode']} | {100 * r['accuracy']:.2f}% ± {100 * r['std']:.2f} | "
                     f"{r['auc']:.4f} | {r['eer']:.4f} | {tar:.3f} | {r['mean_triplets']:.0f} | "
                     f"{r['mean_active']:.2f} | {r['seconds']:.0f} |")
    lines += ["", "triplets/step: triplets mined per step online; for semi_online the selection of one pool and for "
              "offline that of one refresh, of which each step trains on (P·K) // 3. Active share: triplets with a "
              "positive hinge at mining time.",
              "", "![curves](curves.png)", "", "![distances](distances.png)", "", "![ROC](roc.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(
        {"before": {"accuracy": before.accuracy, "std": before.std, "auc": before.auc},
         "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-output/compare_miners")
    ap.add_argument("--cache", default=".cache/massface-demo")
    ap.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES,
                    help="modes compared for --mode-strategy (online is run for every strategy)")
    ap.add_argument("--mode-strategy", default="min_max", choices=STRATEGIES)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--identities", type=int, default=300)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--pairs-per-fold", type=int, default=60)
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--embedding-size", type=int, default=128)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--max-triplets", type=int, default=None, help="cap for the all-triplet strategies")
    ap.add_argument("--scale", type=int, default=4, help="semi-online pool = scale × P×K images")
    ap.add_argument("--memory-size", type=int, default=1024)
    ap.add_argument("--refresh-every", type=int, default=50)
    ap.add_argument("--difficulty", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke size: 2 strategies, 2 modes, a few steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.strategies, args.modes, args.mode_strategy = ["hardest"], ["online", "semi_online"], "hardest"
        args.steps, args.eval_every, args.identities, args.images = 4, 2, 24, 4
        args.pairs_per_fold, args.image_size, args.embedding_size, args.p, args.k = 10, 32, 16, 4, 2
        args.scale, args.workers = 2, 0
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    from massface.training.demo import export_synthfaces

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec, bin_path = export_synthfaces(Path(args.cache), args.identities, args.images, args.pairs_per_fold,
                                      args.difficulty, args.seed, args.image_size, log)
    plan = [(f"{s} · online", s, "online") for s in args.strategies]
    plan += [(f"{args.mode_strategy} · {m}", args.mode_strategy, m) for m in args.modes if m != "online"]
    rows = [run_one(name, miner, mode, rec, bin_path, out, args, log, evaluate_untrained=i == 0)
            for i, (name, miner, mode) in enumerate(plan)]
    write_report(rows, rows[0]["_untrained"], out, args)
    print(f"report: {out / 'report.md'}")
    for r in rows:
        print(f"{r['name']:>24}: {100 * r['accuracy']:.2f}% ± {100 * r['std']:.2f}  AUC {r['auc']:.4f}  {r['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
