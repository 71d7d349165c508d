"""Benchmark: triplet mining on a noisy identity set -- how often each miner picks a false negative, how many of its
triplets carry a loss, and what the model learns.

Data: SynthFaces at 32x32 with ``--duplicates`` of its labels showing another label's person (one person filed
twice) and ``--label-noise`` of its images labelled as another identity, the ground truth kept
(``SynthFaces.true_identity``); the same set without noise as the control. Held out: SynthFaces' verification
pairs (identities disjoint from training), 10-fold accuracy.

Every run of one seed has the same data, the same initial weights (``torch.manual_seed(seed)``), the same P×K
sampling order (``PKSampler(seed=seed)``; NeighbourPKSampler's own order for the look-alike batches), the same
optimiser, schedule and steps; the loss is the triplet loss alone (margin 0.25, squared Euclidean on
L2-normalised embeddings), so the miner -- and for one run the sampler -- is the only thing that differs.
Per step the miner is given the ground truth (``true_labels=``) and reports ``false_negative_fraction``: the
share of mined triplets whose negative is the anchor's own person.

    python benchmarks/bench_noisy_mining.py                  # 3 seeds, the table of the README
    python benchmarks/bench_noisy_mining.py --seeds 0 --steps 40 --runs batch_hard min_max   # smoke size

Prints a markdown table (mean ± 95 % t-interval over the seeds) and writes ``--out`` (JSON with every run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

RUNS = ("batch_hard", "bh_negative_range", "bh_skip_nearest", "bh_same_identity_pairs", "bh_false_negative_gap",
        "semihard", "min_max", "distance_weighted", "bh_neighbour_batches")


def make_miner(run: str, duplicate_pairs: Any, seed: int):
    from massface.mining import BatchHardestMiner, BatchMinMaxMiner, DistanceWeightedMiner, SemiHardMiner

    guards = {"bh_negative_range": dict(negative_range=(0.3, 4.0)), "bh_skip_nearest": dict(skip_nearest=1),
              "bh_same_identity_pairs": dict(same_identity_pairs=duplicate_pairs),
              "bh_false_negative_gap": dict(false_negative_gap=0.1)}
    if run in ("batch_hard", "bh_neighbour_batches") or run in guards:
        return BatchHardestMiner(**guards.get(run, {}))
    if run == "semihard":
        return SemiHardMiner()
    if run == "min_max":
        return BatchMinMaxMiner()
    if run == "distance_weighted":
        return DistanceWeightedMiner(seed=seed)
    raise ValueError(f"unknown run {run!r}; one of {RUNS}")


def render(data: Any) -> Any:
    import numpy as np
    import torch

    images = np.stack([image for image, _ in data.iter_samples()])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x


def train_one(run: str, x: Any, labels: Any, truth: Any, duplicate_pairs: Any, heldout: tuple[Any, Any],
              args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from massface.backbones import build_backbone
    from massface.cleaning import class_centres
    from massface.evaluation.verification_sets import evaluate_images
    from massface.losses import TripletLoss
    from massface.sampling import NeighbourPKSampler, PKSampler, identity_neighbours

    torch.manual_seed(seed)
    model = build_backbone("mobilefacenet", args.embedding_size, input_size=args.image_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, args.steps // 10)) * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    miner = make_miner(run, duplicate_pairs, seed)
    loss_fn = TripletLoss(margin=0.25)
    if run == "bh_neighbour_batches":
        sampler: PKSampler = NeighbourPKSampler(labels, args.p, args.k, np.full((int(labels.max()) + 1, 1), -1),
                                                group=4, seed=seed)
    else:
        sampler = PKSampler(labels, args.p, args.k, seed=seed)
    y_all, t_all = torch.from_numpy(labels), torch.from_numpy(truth)
    fn, active, steps = [], [], 0
    t0 = time.perf_counter()
    while steps < args.steps:
        if isinstance(sampler, NeighbourPKSampler):  # each epoch's groups from the current model's class centres
            with torch.no_grad():
                model.eval()
                emb = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])
            classes, centres = class_centres(emb.numpy(), labels)
            sampler.set_neighbours(identity_neighbours(centres, classes, k=8))
        for batch in sampler:
            if steps >= args.steps:
                break
            index = torch.as_tensor(batch)
            model.train()
            emb = model(x[index])
            triplets = miner(emb, y_all[index], true_labels=t_all[index])
            loss = loss_fn(emb, y_all[index], triplets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            stats = miner.stats
            if stats["num_triplets"]:
                fn.append(stats["false_negative_fraction"])
                active.append(loss_fn.stats["active_fraction"])
            steps += 1
    images, issame = heldout
    model.eval()
    accuracy = evaluate_images(model, images, issame, flip=False, batch_size=256).accuracy
    return {"run": run, "seed": seed, "false_negative_share": float(np.mean(fn)) if fn else 0.0,
            "nonzero_loss_share": float(np.mean(active)) if active else 0.0, "heldout_accuracy": float(accuracy),
            "seconds": time.perf_counter() - t0}


def summarise(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """(mean, half-width of the 95 % Student-t interval) of ``key`` over the seeds (NaN half-width for one)."""
    from massface.evaluation.statistics import mean_interval

    interval = mean_interval([r[key] for r in rows])
    return interval.mean, interval.half_width


def table(results: list[dict[str, Any]], runs: list[str]) -> str:
    lines = ["| run | set | false-negative share of mined negatives | share of triplets with loss > 0 | "
             "held-out accuracy |", "|---|---|---|---|---|"]
    for noisy in (True, False):
        for run in runs:
            rows = [r for r in results if r["run"] == run and r["noisy"] == noisy]
            if not rows:
                continue
            cells = []
            for key, scale in (("false_negative_share", 100), ("nonzero_loss_share", 100), ("heldout_accuracy", 100)):
                mean, half = summarise(rows, key)
                cells.append(f"{scale * mean:.2f} ± {scale * half:.2f} %" if half == half else f"{scale * mean:.2f} %")
            lines.append(f"| {run} | {'noisy' if noisy else 'clean'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--identities", type=int, default=160)
    parser.add_argument("--images", type=int, default=8, help="images per identity")
    parser.add_argument("--duplicates", type=float, default=0.05)
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs-per-fold", type=int, default=60, help="held-out pairs per fold (10 folds)")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean control set")
    parser.add_argument("--out", default="bench-output/noisy_mining.json")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from massface.data.synthetic import SynthFaces

    torch.set_num_threads(args.threads)
    sets = [True] if args.no_clean else [True, False]
    heldout_data = SynthFaces.heldout(1, 1, seed=0, difficulty=0.5, image_size=args.image_size)
    heldout = heldout_data.verification_pairs(10, args.pairs_per_fold, seed=0)
    results = []
    for noisy in sets:
        data = SynthFaces(args.identities, args.images, seed=0, difficulty=0.5, image_size=args.image_size,
                          duplicate_identities=args.duplicates if noisy else 0.0,
                          label_noise=args.label_noise if noisy else 0.0)
        x = render(data)
        labels, truth = data.labels, data.true_identity
        print(f"# {'noisy' if noisy else 'clean'} set: {len(labels)} images, {len(data.duplicate_pairs)} duplicate "
              f"label pairs, {int((labels != np.repeat(np.arange(args.identities), args.images)).sum())} "
              "mislabelled images", file=sys.stderr)
        for seed in args.seeds:
            for run in args.runs:
                row = train_one(run, x, labels, truth, data.duplicate_pairs, heldout, args, seed)
                row["noisy"] = noisy
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(table(results, list(args.runs)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
