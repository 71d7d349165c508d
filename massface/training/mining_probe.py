"""The mining probe: what the run's miner picks, measured the same way for every mining mode.

A fixed probe batch -- P identities × K images of the training set, drawn once from ``seed`` and seen without
augmentation -- is embedded by the current model (eval mode, no gradient) every ``train.probe_every`` steps and
mined by a private copy of the run's miner (its guards included; the training miner's statistics and random
state are left alone). ``metrics.jsonl`` gets one ``{"step": s, "probe": {...}}`` record per probe:

- the miner's statistics on the probe batch (``num_triplets``, ``active_fraction``, ``hard_fraction``,
  ``d_ap_p10`` ... ``d_an_p90``; ``false_negative_fraction`` when the training set knows its true identities,
  e.g. SynthFaces' ``label_noise`` / ``duplicate_identities``);
- ``slack_hist``: the hardness histogram, shares of mined triplets by slack δ = d_an − d_ap (for a
  similarity s_ap − s_an) over :data:`SLACK_EDGES` × the margin (δ < 0: hard, 0 ≤ δ < m: semi-hard, else easy);
- collapse indicators: ``spread`` = 1 − ‖mean of the L2-normalised embeddings‖² (0 when every image maps to
  one point, about 1 when they cover the sphere) and ``effective_rank`` = exp of the entropy of the normalised
  singular values² of the centred embeddings (Roy & Vetterli 2007; 1 when they lie on a line: dimensional
  collapse).

At the steps listed in ``train.triplet_grid_steps`` the probe also writes ``triplets/step_<N>.png``
(:func:`massface.evaluation.plot_triplet_grid`: the hardest mined triplets, a random sample and any false
negatives, with their distances) and ``triplets/step_<N>.json`` (every mined triplet as probe-batch
positions, dataset indices and distances).

Cost per probe: one forward pass of P·K images and one mining call, O((P·K)²·D); rank 0 only.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from massface.training.callbacks import Callback

if TYPE_CHECKING:
    from massface.training.trainer import Trainer

__all__ = ["SLACK_EDGES", "ProbeBatch", "MiningProbe", "draw_probe_batch", "probe_mining", "embedding_spread",
           "effective_rank", "triplet_groups", "redraw_triplet_grid"]

SLACK_EDGES: tuple[float, ...] = (-math.inf, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, math.inf)
"""Bin edges of the hardness histogram, in units of the margin (of 0.1 when the margin is 0)."""

GRID_TRIPLETS = 8
"""Triplets per group (hardest, random, false negatives) of a triplet grid."""


@dataclass(frozen=True)
class ProbeBatch:
    """The probe: ``images`` (B, C, H, W) as the model sees them, ``thumbnails`` the raw uint8 RGB images,
    ``labels`` the training labels, ``truth`` the true identities (None when unknown), ``indices`` the dataset
    positions."""

    images: torch.Tensor
    thumbnails: list[np.ndarray]
    labels: torch.Tensor
    truth: torch.Tensor | None
    indices: np.ndarray


def draw_probe_batch(dataset: Any, identities: int, images_per_identity: int, seed: int) -> ProbeBatch:
    """The fixed probe batch of a :class:`~massface.training.builders.LabelledDataset`: ``identities`` labels
    with at least ``images_per_identity`` images (fewer when the set has fewer), that many images each, drawn
    with ``seed``; seen through the evaluation transform. Raises ValueError when no identity has two images."""
    from massface.training.builders import build_embedding_dataset

    labels = np.asarray(dataset.labels, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    k = min(images_per_identity, int(counts.max()) if counts.size else 0)
    if k < 2:
        raise ValueError("train.probe_every: the probe needs an identity with at least 2 images")
    rng = np.random.default_rng(seed)
    eligible = classes[counts >= k]
    chosen = np.sort(rng.choice(eligible, size=min(identities, eligible.size), replace=False))
    indices = np.concatenate([np.sort(rng.choice(np.flatnonzero(labels == c), size=k, replace=False))
                              for c in chosen])
    plain = build_embedding_dataset(dataset)
    images = torch.stack([plain[int(i)][0] for i in indices])
    base = getattr(dataset, "base", None)
    keep = getattr(dataset, "indices", None)
    base_index = indices if keep is None else np.asarray(keep)[indices]
    thumbnails = [np.asarray(base[int(i)][0]) for i in base_index] if base is not None else []
    truth = getattr(base, "true_identity", None)
    truth_t = torch.as_tensor(np.asarray(truth)[base_index], dtype=torch.long) if truth is not None else None
    return ProbeBatch(images, thumbnails, torch.as_tensor(labels[indices]), truth_t, indices)


def embedding_spread(embeddings: torch.Tensor) -> float:
    """1 − ‖mean of the L2-normalised rows‖²: the mean squared distance of the rows to their centroid on the
    unit sphere; 0 for a collapsed embedding. O(B·D)."""
    x = nn.functional.normalize(embeddings.double(), dim=1)
    return float(1.0 - x.mean(dim=0).square().sum())


def effective_rank(embeddings: torch.Tensor) -> float:
    """exp(H(p)) with p_i = σ_i² / Σσ² the singular values of the centred L2-normalised rows (Roy & Vetterli
    2007): between 1 (all on a line) and min(B, D). O(B·D·min(B, D))."""
    x = nn.functional.normalize(embeddings.double(), dim=1)
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    power = s.square()
    if float(power.sum()) <= 0.0:
        return 1.0
    p = power / power.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def probe_mining(model: nn.Module, miner: nn.Module, batch: ProbeBatch, device: torch.device
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Embed ``batch`` with ``model`` (eval mode, no gradient; the mode is restored) and mine it with ``miner``.

    Returns ``(record, triplets)``: the probe record (see the module docstring) and the mined triplets as
    numpy arrays ``a, p, n`` (probe positions), ``d_ap, d_an`` (distances; similarities for cosine) and
    ``false_negative`` (bool, when the truth is known)."""
    from massface.distances import dissimilarity_matrix

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            emb = model(batch.images.to(device)).float()
    finally:
        model.train(was_training)
    labels = batch.labels.to(device)
    truth = batch.truth.to(device) if batch.truth is not None else None
    a, p, n = miner(emb, labels, true_labels=truth) if truth is not None else miner(emb, labels)
    record: dict[str, Any] = dict(miner.stats)
    with torch.no_grad():
        D = dissimilarity_matrix(miner.distance, emb, emb)
    inverted = bool(miner.distance.is_inverted)
    sign = -1.0 if inverted else 1.0
    d_ap, d_an = D[a, p].cpu().double().numpy(), D[a, n].cpu().double().numpy()
    slack = d_an - d_ap  # in dissimilarity units for both kinds (for cosine: s_ap - s_an)
    unit = float(miner.margin) if float(miner.margin) > 0 else 0.1
    counts, _ = np.histogram(slack / unit, bins=np.asarray(SLACK_EDGES))
    record["slack_hist"] = (counts / max(slack.size, 1)).tolist()
    record["slack_unit"] = unit
    record["spread"] = embedding_spread(emb)
    record["effective_rank"] = effective_rank(emb)
    triplets: dict[str, Any] = {"a": a.cpu().numpy(), "p": p.cpu().numpy(), "n": n.cpu().numpy(),
                                "d_ap": sign * d_ap, "d_an": sign * d_an, "slack": slack}
    if truth is not None:
        tc = truth.cpu().numpy()
        triplets["false_negative"] = tc[triplets["a"]] == tc[triplets["n"]]
    return {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}, triplets


def triplet_groups(triplets: dict[str, Any], count: int = GRID_TRIPLETS, seed: int = 0) -> dict[str, np.ndarray]:
    """Positions into the mined triplets of a grid's groups: ``hardest`` (smallest slack first), ``random`` (a
    uniform sample, drawn with ``seed``) and ``false negatives`` (hardest first; only when some were mined)."""
    slack = np.asarray(triplets["slack"])
    order = np.argsort(slack, kind="stable")
    groups = {"hardest": order[:count]}
    if slack.size:
        rng = np.random.default_rng(seed)
        groups["random"] = np.sort(rng.choice(slack.size, size=min(count, slack.size), replace=False))
    fn = triplets.get("false_negative")
    if fn is not None and bool(np.any(fn)):
        groups["false negatives"] = order[np.asarray(fn)[order]][:count]
    return groups


class MiningProbe(Callback):
    """The trainer's probe callback (``train.probe_every``, ``train.triplet_grid_steps``); rank 0 only."""

    def __init__(self, trainer: Trainer, every: int, grid_steps: list[int], identities: int, images: int,
                 seed: int) -> None:
        self.every, self.grid_steps = every, set(grid_steps)
        self.batch = draw_probe_batch(trainer.dataset, identities, images, seed) if trainer.env.is_main else None
        self.miner = copy.deepcopy(trainer.miner)
        self.seed = seed

    def wants(self, step: int) -> bool:
        """Whether ``step`` is probed."""
        return (self.every > 0 and step % self.every == 0) or step in self.grid_steps

    def on_step_end(self, trainer: Trainer) -> None:
        step = trainer.step
        if self.batch is None or not self.wants(step):
            return
        record, triplets = probe_mining(trainer.model, self.miner, self.batch, trainer.device)
        trainer.metrics.append({"step": step, "probe": record})
        if step in self.grid_steps:
            self.write_grid(trainer.out / "triplets", step, triplets, type(trainer.miner).__name__)

    def write_grid(self, directory: Path, step: int, triplets: dict[str, Any], miner_name: str) -> Path:
        """``directory/step_<step>.png`` and ``.json``; returns the PNG's path."""
        from massface.evaluation.plots import plot_triplet_grid

        directory.mkdir(parents=True, exist_ok=True)
        groups = triplet_groups(triplets, seed=self.seed + step)
        path = directory / f"step_{step}.png"
        fig = plot_triplet_grid(self.batch.thumbnails, triplets, groups, path,
                                title=f"{miner_name} at step {step} (probe batch)")
        del fig
        rows = [{"a": int(triplets["a"][i]), "p": int(triplets["p"][i]), "n": int(triplets["n"][i]),
                 "d_ap": float(triplets["d_ap"][i]), "d_an": float(triplets["d_an"][i]),
                 **({"false_negative": bool(triplets["false_negative"][i])} if "false_negative" in triplets else {})}
                for i in range(len(triplets["a"]))]
        payload = {"step": step, "miner": miner_name, "dataset_indices": self.batch.indices.tolist(),
                   "labels": self.batch.labels.tolist(), "triplets": rows,
                   "groups": {k: v.tolist() for k, v in groups.items()}}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload) + "\n")
        tmp.replace(path.with_suffix(".json"))
        return path


def redraw_triplet_grid(run_dir: str | Path, step: int, path: str | Path) -> Path:
    """Draw again the triplet grid a run saved at ``step`` (``run_dir/triplets/step_<step>.json``) into
    ``path``: the thumbnails come from the run's training set, rebuilt from its ``config.yaml``.

    Raises:
        ValueError: naming the file -- no such grid, a grid whose positions do not fit its probe batch, or a
            dataset that no longer holds the saved indices."""
    from massface.evaluation.plots import plot_triplet_grid
    from massface.training.builders import build_dataset
    from massface.training.config import ConfigError, load_config

    run_dir = Path(run_dir)
    source = run_dir / "triplets" / f"step_{step}.json"
    try:
        payload = json.loads(source.read_text())
        indices = [int(i) for i in payload["dataset_indices"]]
        rows = payload["triplets"]
        triplets = {k: np.asarray([r[k] for r in rows]) for k in ("a", "p", "n", "d_ap", "d_an")}
        if rows and "false_negative" in rows[0]:
            triplets["false_negative"] = np.asarray([bool(r["false_negative"]) for r in rows])
        groups = {str(k): [int(i) for i in v] for k, v in payload["groups"].items()}
        miner = str(payload["miner"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{source}: not a triplet grid of this run ({type(err).__name__}: {err})") from None
    try:
        dataset = build_dataset(load_config(run_dir / "config.yaml", [f"output_dir={json.dumps(str(run_dir))}"]))
    except ConfigError as err:
        raise ValueError(f"{run_dir / 'config.yaml'}: {err}") from None
    base, keep = dataset.base, getattr(dataset, "indices", None)
    if any(not 0 <= i < len(dataset) for i in indices):
        raise ValueError(f"{source}: dataset index out of range for the run's training set ({len(dataset)} images)")
    thumbnails = [np.asarray(base[int(i if keep is None else keep[i])][0]) for i in indices]
    plot_triplet_grid(thumbnails, triplets, groups, path, title=f"{miner} at step {step} (probe batch)")
    return Path(path)
