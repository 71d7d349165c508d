"""Finding the noise of a real identity set from a model's embeddings: identities filed twice and images filed
under the wrong identity. ``massface clean`` writes what it finds as files the trainer reads.

From L2-normalised embeddings x_i with labels y_i, the class centres are c_y = normalise(mean of the class's
x_i). Then:

* **suspected duplicate identities** -- label pairs whose centres are closer than a threshold,
  cos(c_a, c_b) >= ``duplicate_similarity`` (nearest centres found with faiss, exact inner-product search over
  the C centres, ``neighbours`` per centre). They feed ``loss.triplet.same_identity_pairs`` (never each other's
  negatives), or a merge.
* **suspected mislabelled images** -- the drop rule of sub-center ArcFace (Deng et al., ECCV 2020): an image
  more than ``mislabel_angle`` degrees from its own centre, arccos cos(x_i, c_{y_i}) > angle (75° there), that
  is also nearer another centre than its own. They are left out of ``keep`` (the filtered index,
  ``data.keep_indices``).

Cost: O(N·D) for the centres, O(C²·D / parallelism) for the exact centre search (faiss), O(N·C·D) worst case for
the images' nearest other centres (faiss, exact); memory O((N + C)·D).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from massface._checks import check_int, check_real

__all__ = ["CleaningReport", "class_centres", "find_label_noise", "write_cleaning_report", "main"]


@dataclass(frozen=True)
class CleaningReport:
    """What :func:`find_label_noise` found; label values are the labels given to it."""

    duplicate_pairs: np.ndarray  # (S, 2) int64 label pairs (a < b)
    duplicate_similarity: np.ndarray  # (S,) cos(c_a, c_b)
    mislabelled: np.ndarray  # (R,) int64 sample indices
    own_similarity: np.ndarray  # (R,) cos(x, own centre)
    nearest_label: np.ndarray  # (R,) the other label whose centre is nearest
    nearest_similarity: np.ndarray  # (R,) cos(x, that centre)
    keep: np.ndarray  # int64 sample indices not suspected of a wrong label


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def class_centres(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(classes (C,), centres (C, D))``: each label's normalised mean of normalised embeddings. O(N·D)."""
    x = _normalise(np.asarray(embeddings, dtype=np.float32))
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    sums = np.zeros((classes.size, x.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, x)
    return classes, _normalise(sums)


def find_label_noise(embeddings: object, labels: object, *, duplicate_similarity: float = 0.7,
                     mislabel_angle: float = 75.0, neighbours: int = 10) -> CleaningReport:
    """Suspected duplicate identities and mislabelled images of a labelled embedding set (module docstring).

    Raises:
        ValueError: embeddings not a finite (N, D) array, labels not N integers, or an option out of range.
    """
    import faiss

    x = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
        raise ValueError(f"find_label_noise: embeddings must be a finite, non-empty (N, D) array; got shape {x.shape}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"find_label_noise: labels must be {x.shape[0]} integers; got shape {y.shape}, dtype {y.dtype}")
    duplicate_similarity = check_real("duplicate_similarity", duplicate_similarity, "find_label_noise", low=-1.0,
                                      high=1.0, note="a cosine similarity")
    mislabel_angle = check_real("mislabel_angle", mislabel_angle, "find_label_noise", low=0.0, high=180.0,
                                note="degrees")
    neighbours = check_int("neighbours", neighbours, "find_label_noise")
    classes, centres = class_centres(x, y)
    xn = _normalise(x)
    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(centres)

    # duplicate identities: each centre's nearest other centres
    k = min(neighbours + 1, classes.size)
    sims, ids = index.search(centres, k)
    rows = np.repeat(np.arange(classes.size), k)
    cols, vals = ids.ravel(), sims.ravel()
    hit = (cols >= 0) & (cols != rows) & (vals >= duplicate_similarity)
    a, b = np.minimum(rows[hit], cols[hit]), np.maximum(rows[hit], cols[hit])
    pairs, first = np.unique(np.stack([a, b], axis=1).reshape(-1, 2), axis=0, return_index=True)
    pair_sims = vals[hit][first]
    order = np.argsort(-pair_sims, kind="stable")
    pairs, pair_sims = pairs[order], pair_sims[order]

    # mislabelled images: far from the own centre and nearer another one
    own_index = np.searchsorted(classes, y)
    own = np.einsum("nd,nd->n", xn, centres[own_index])
    k2 = min(2, classes.size)
    near_sims, near_ids = index.search(xn, k2)
    other_is_first = near_ids[:, 0] != own_index
    nearest = np.where(other_is_first, near_ids[:, 0], near_ids[:, -1])
    nearest_sim = np.where(other_is_first, near_sims[:, 0], near_sims[:, -1])
    far = own < math.cos(math.radians(mislabel_angle))
    suspect = np.flatnonzero(far & (nearest_sim > own) & (nearest != own_index) & (classes.size > 1))
    keep = np.setdiff1d(np.arange(x.shape[0]), suspect)
    return CleaningReport(
        duplicate_pairs=classes[pairs].astype(np.int64).reshape(-1, 2),
        duplicate_similarity=pair_sims.astype(np.float64),
        mislabelled=suspect.astype(np.int64), own_similarity=own[suspect].astype(np.float64),
        nearest_label=classes[nearest[suspect]].astype(np.int64),
        nearest_similarity=nearest_sim[suspect].astype(np.float64), keep=keep.astype(np.int64))


def write_cleaning_report(report: CleaningReport, out: str | os.PathLike[str], *, note: str = "") -> dict[str, Path]:
    """Write ``duplicate_pairs.txt`` (``loss.triplet.same_identity_pairs``), ``keep_indices.txt``
    (``data.keep_indices``), ``mislabelled.tsv`` (index, label → nearest label, both similarities) and
    ``summary.json`` into ``out``; returns their paths."""
    from massface.data.label_lists import write_indices, write_label_pairs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"duplicate_pairs": out / "duplicate_pairs.txt", "keep_indices": out / "keep_indices.txt",
             "mislabelled": out / "mislabelled.tsv", "summary": out / "summary.json"}
    write_label_pairs(paths["duplicate_pairs"], report.duplicate_pairs,
                      header=f"massface clean: suspected duplicate identities (label pairs). {note}".strip())
    write_indices(paths["keep_indices"], report.keep, header="massface clean: sample indices kept")
    lines = ["index\tnearest_label\town_similarity\tnearest_similarity"]
    lines += [f"{i}\t{n}\t{o:.4f}\t{s:.4f}" for i, n, o, s in zip(report.mislabelled.tolist(),
                                                                   report.nearest_label.tolist(),
                                                                   report.own_similarity.tolist(),
                                                                   report.nearest_similarity.tolist())]
    paths["mislabelled"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"duplicate_pairs": int(len(report.duplicate_pairs)), "mislabelled": int(report.mislabelled.size),
               "kept": int(report.keep.size), "note": note}
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------- massface clean
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="massface clean",
        description="Embed a training set with a model and list suspected duplicate identities and mislabelled "
                    "images (files for loss.triplet.same_identity_pairs and data.keep_indices).")
    p.add_argument("--model", required=True, help="checkpoint of a known family (massface, arcface_torch, ...)")
    from massface.backbones.sources import SOURCES

    p.add_argument("--source", default="auto", choices=("auto", *SOURCES), help="checkpoint family of --model")
    p.add_argument("--backbone", help="build this zoo entry instead of the detected one")
    p.add_argument("--data", required=True, help="the training set (train.rec, a folder, a TFRecord index, ...)")
    p.add_argument("--format", default="auto", help="its format (default: detected)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--duplicate-similarity", type=float, default=0.7,
                   help="label pairs whose centres have at least this cosine (default: %(default)s)")
    p.add_argument("--mislabel-angle", type=float, default=75.0,
                   help="images farther than this many degrees from their centre and nearer another (default: 75, "
                        "sub-center ArcFace)")
    p.add_argument("--neighbours", type=int, default=10, help="nearest centres searched per centre")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: 40,000,000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from massface.backbones import load_pretrained
    from massface.data import open_dataset
    from massface.data._errors import DataFormatError
    from massface.data._guard import DEFAULT_MAX_PIXELS
    from massface.mining import embed_dataset
    from massface.serialization import CheckpointError
    from massface.training.builders import LabelledDataset

    try:
        model = load_pretrained(args.model, source=args.source, name=args.backbone)
        base = open_dataset(args.data, args.format, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
        from massface.data.transforms import build_eval_transform

        dataset = LabelledDataset(base, build_eval_transform(image_size=model.input_size))
        embeddings, labels = embed_dataset(model, dataset, batch_size=args.batch_size, progress=not args.quiet)
        report = find_label_noise(embeddings.numpy(), labels.numpy(), duplicate_similarity=args.duplicate_similarity,
                                  mislabel_angle=args.mislabel_angle, neighbours=args.neighbours)
    except (CheckpointError, DataFormatError, ValueError, FileNotFoundError) as err:
        print(f"massface clean: {err}", file=sys.stderr)
        return 2
    note = f"model {args.model}, data {args.data}"
    paths = write_cleaning_report(report, args.out, note=note)
    print(json.dumps({"duplicate_pairs": len(report.duplicate_pairs), "mislabelled": int(report.mislabelled.size),
                      "kept": int(report.keep.size), "files": {k: str(v) for k, v in paths.items()}}))
    return 0
