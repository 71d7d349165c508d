"""Per-image IJB features: the flip / normalise / faceness flags, and extraction from the aligned crops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from massface.evaluation.embedding import DEFAULT_BATCH_SIZE
from massface.evaluation.ijb.alignment import aligned_crops
from massface.evaluation.ijb.release import IJBMeta

__all__ = ["FeatureFlags", "FEATURE_PRESETS", "combine_features", "extract_ijb_features"]


@dataclass(frozen=True)
class FeatureFlags:
    """How per-image features are formed before pooling.

    Attributes:
        flip: add the embedding of the horizontally flipped crop (``F`` in insightface's naming).
        normalize: L2-normalise each image feature (insightface's ``use_norm_score=False``; note that
            insightface's flag is inverted: ``use_norm_score=True`` keeps the raw norm).
        detector_score: multiply each image feature by its detector (faceness) score.
    """

    flip: bool = True
    normalize: bool = False
    detector_score: bool = True


FEATURE_PRESETS: dict[str, FeatureFlags] = {
    # eval_ijbc.py defaults: use_flip_test=True, use_norm_score=True (keep norm), use_detector_score=True
    "insightface": FeatureFlags(flip=True, normalize=False, detector_score=True),
    # TFace IJB_Evaluation.py defaults: original view only, per-image L2, no score weighting
    "tface": FeatureFlags(flip=False, normalize=True, detector_score=False),
}


def combine_features(
    emb: np.ndarray,
    emb_flip: np.ndarray | None,
    scores: np.ndarray | None,
    flags: FeatureFlags = FEATURE_PRESETS["insightface"],
) -> np.ndarray:
    """Per-image features from raw embeddings: ``f = e (+ e_flip)``, then ``/||f||`` and/or ``× score``.

    ``O(N·D)`` time, one ``(N, D)`` float32 output.
    """
    f = np.asarray(emb, dtype=np.float32)
    if flags.flip:
        if emb_flip is None:
            raise ValueError("FeatureFlags.flip is set but no flipped embeddings were given")
        ef = np.asarray(emb_flip, dtype=np.float32)
        if ef.shape != f.shape:
            raise ValueError(f"flipped embeddings have shape {ef.shape}, originals {f.shape}")
        f = f + ef
    else:
        f = f.copy()
    if flags.normalize:
        n = np.linalg.norm(f, axis=1, keepdims=True)
        n[n == 0] = 1.0
        f /= n
    if flags.detector_score:
        if scores is None:
            raise ValueError("FeatureFlags.detector_score is set but no detector scores were given")
        s = np.asarray(scores, dtype=np.float32).reshape(-1, 1)
        if s.shape[0] != f.shape[0]:
            raise ValueError(f"{s.shape[0]} detector scores for {f.shape[0]} features")
        f *= s
    return f


def extract_ijb_features(
    model: Callable[[Any], Any],
    meta: IJBMeta,
    flags: FeatureFlags = FEATURE_PRESETS["insightface"],
    batch_size: int = DEFAULT_BATCH_SIZE,
    out_path: str | Path | None = None,
    image_size: int | Sequence[int] = (112, 112),
    device: Any = None,
    progress: bool = False,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Per-image IJB features ``(N, D)`` float32: 5-point alignment, embedding (+ flip), flags. Streams to ``out_path``.

    Images are read from ``loose_crop/`` with OpenCV, aligned by ``massface.data.align.align_face`` with
    the detector's landmarks to ``image_size`` = ``(H, W)`` (an int: a square), normalised
    ``(x/255 - 0.5)/0.5`` and embedded batch by batch by :func:`~massface.evaluation.embedding.embed_batch`
    (the embedding contract: same defaults, float32 host arrays); with ``out_path`` the features go to a
    ``.npy`` memmap (bounded memory at IJB-C size). Images of more than ``max_pixels`` pixels (default
    :data:`massface.data._guard.DEFAULT_MAX_PIXELS`) are refused from their header; an unreadable image raises
    :class:`~massface.data.DataFormatError`. ``progress``: a progress bar on stderr.
    Time ``O(N)`` forward passes, memory ``O(batch · image)`` plus the output.
    """
    from massface._progress import progress_bar
    from massface.data._guard import DEFAULT_MAX_PIXELS, check_max_pixels, image_hw
    from massface.evaluation.embedding import embed_batch

    size = image_hw(image_size)
    limit = check_max_pixels(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    n = meta.num_images
    out: np.ndarray | None = None
    with progress_bar(total=n, desc=meta.name, unit="img", enabled=progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            imgs = np.stack(list(aligned_crops(meta, start, stop, size, limit)))
            e, ef = embed_batch(model, imgs, flip=flags.flip, device=device)
            f = combine_features(e, ef, meta.scores[start:stop], flags)
            if out is None:
                shape = (n, f.shape[1])
                if out_path is not None:
                    out = np.lib.format.open_memmap(str(out_path), mode="w+", dtype=np.float32, shape=shape)
                else:
                    out = np.empty(shape, dtype=np.float32)
            out[start:stop] = f
            bar.update(stop - start)
    if out is None:
        raise ValueError(f"{meta.name}: the release lists no images")
    if isinstance(out, np.memmap):
        out.flush()
    return out
