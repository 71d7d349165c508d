"""The face-verification benchmark sets: insightface ``.bin`` files (lfw, cfp_fp, agedb_30, ...) and LFW's
``pairs.txt``, read, embedded and scored with the 10-fold protocol.

Reading is :mod:`massface.data.verification`, embedding :mod:`massface.evaluation.embedding`, scoring
:mod:`massface.evaluation.verification`; this module only ties them together per set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from massface.evaluation.embedding import DEFAULT_BATCH_SIZE, Variant, embed_images
from massface.evaluation.verification import PairEvaluation, ThresholdMode, evaluate_pairs

__all__ = [
    "KNOWN_SETS",
    "evaluate_images",
    "evaluate_bin",
    "evaluate_lfw_pairs",
    "evaluate_bins",
    "find_bins",
]

KNOWN_SETS: tuple[str, ...] = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")


def evaluate_images(
    model: Callable[[Any], Any],
    images: np.ndarray,
    issame: Any,
    flip: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    variant: Variant = "insightface",
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
    far_targets: Sequence[float] = (1e-3,),
    device: Any = None,
    progress: bool = False,
    source: str = "images",
    *,
    desc: str | None = None,
) -> PairEvaluation:
    """k-fold verification of ``model`` on interleaved pair images (pair ``k`` = rows ``2k``, ``2k+1``).

    Embedding by :func:`~massface.evaluation.embedding.embed_images` (``progress``: a bar labelled ``desc``),
    scoring by :func:`~massface.evaluation.verification.evaluate_pairs`.
    """
    images = np.asarray(images)
    issame = np.asarray(issame, dtype=bool)
    if images.ndim != 4 or images.shape[0] != 2 * issame.shape[0]:
        raise ValueError(
            f"{source}: {images.shape[0] if images.ndim else 0} images for {issame.shape[0]} pairs; "
            "verification data must hold exactly 2 images per pair"
        )
    emb = embed_images(
        model, images, flip=flip, batch_size=batch_size, variant=variant, device=device, progress=progress,
        desc=desc,
    )
    return evaluate_pairs(emb[0::2], emb[1::2], issame, n_folds=n_folds, thresholds=thresholds, far_targets=far_targets)


def _pixel_bound(max_pixels: int | None) -> dict[str, int]:
    """``max_pixels=`` for a reader, or nothing (the reader's default) when None."""
    return {} if max_pixels is None else {"max_pixels": max_pixels}


def evaluate_bin(
    model: Callable[[Any], Any],
    path: str | Path,
    flip: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    max_pixels: int | None = None,
    **kwargs: Any,
) -> PairEvaluation:
    """10-fold verification of ``model`` on one insightface ``.bin`` set (e.g. ``lfw.bin``).

    Images are read by ``massface.data.verification.read_bin`` (RGB, pair ``k`` = images ``2k``, ``2k+1``;
    an image whose header announces more than ``max_pixels`` pixels is refused before decoding — default
    ``massface.data.DEFAULT_MAX_PIXELS``),
    embedded by :func:`~massface.evaluation.embedding.embed_images` (``flip=None``: on for the insightface
    variant; ``progress``: a bar labelled with the set's name) and scored by
    :func:`~massface.evaluation.verification.evaluate_pairs`. ``kwargs`` are :func:`evaluate_images`'s:
    ``variant``, ``n_folds``, ``thresholds``, ``far_targets``, ``device``.
    """
    from massface.data.verification import read_bin

    path = Path(path)
    images, issame = read_bin(path, **_pixel_bound(max_pixels))
    return evaluate_images(model, images, issame, flip=flip, batch_size=batch_size, progress=progress,
                           source=str(path), desc=path.stem, **kwargs)


def evaluate_lfw_pairs(
    model: Callable[[Any], Any],
    pairs_path: str | Path,
    image_root: str | Path,
    ext: str = "jpg",
    flip: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    max_pixels: int | None = None,
    **kwargs: Any,
) -> PairEvaluation:
    """Like :func:`evaluate_bin` for LFW's ``pairs.txt`` + an aligned image tree (``root/name/name_%04d.jpg``).

    Reading is ``massface.data.verification.read_lfw_pairs`` (file order = official View-2 folds).
    """
    from massface.data.verification import read_lfw_pairs

    images, issame = read_lfw_pairs(pairs_path, image_root, ext=ext, **_pixel_bound(max_pixels))
    return evaluate_images(model, images, issame, flip=flip, batch_size=batch_size, progress=progress,
                           source=str(pairs_path), desc="lfw pairs", **kwargs)


def find_bins(directory: str | Path, sets: Sequence[str] | None = None) -> dict[str, Path]:
    """``{name: path}`` of the known ``<name>.bin`` files in ``directory`` (all found, or exactly ``sets``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"verification data directory not found: {directory}")
    found = {name: directory / f"{name}.bin" for name in KNOWN_SETS if (directory / f"{name}.bin").is_file()}
    if sets is None:
        if not found:
            raise FileNotFoundError(f"{directory}: none of {[s + '.bin' for s in KNOWN_SETS]} is present")
        return found
    out: dict[str, Path] = {}
    for name in sets:
        p = directory / (name if name.endswith(".bin") else f"{name}.bin")
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found (present: {sorted(found) or 'no known sets'})")
        out[p.stem] = p
    return out


def evaluate_bins(
    model: Callable[[Any], Any],
    directory: str | Path,
    sets: Sequence[str] | None = None,
    **kwargs: Any,
) -> dict[str, PairEvaluation]:
    """Run :func:`evaluate_bin` on every known set in ``directory`` (or the named ``sets``), in order;
    ``kwargs`` are :func:`evaluate_bin`'s."""
    return {name: evaluate_bin(model, path, **kwargs) for name, path in find_bins(directory, sets).items()}
