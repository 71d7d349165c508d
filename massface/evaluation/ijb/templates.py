"""IJB templates: pooling of image features into template features, and 1:1 verification of template pairs
(cosine scores; ROC and TPR@FAR from :mod:`massface.evaluation.roc`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from massface.evaluation._arrays import as_numpy, as_vector
from massface.evaluation.roc import DEFAULT_FARS, TprRule, auc, roc_curve, tpr_at_fpr

__all__ = ["pool_templates", "score_template_pairs", "verify_templates"]


def pool_templates(features: Any, template_ids: Any, media_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Template features: per template, mean over each media's images, sum over media, then L2.

    ``feat(T) = normalize( Σ_{m ∈ T} mean_{i ∈ (T, m)} f_i )`` — insightface's ``image2template_feature``.
    Image features are used as given (apply flip / norm / score flags before). Rows whose pooled sum is
    exactly zero stay zero.

    Args:
        features: ``(N, D)`` image features (numpy, memmap or torch tensor); float32 stays float32.
        template_ids, media_ids: ``(N,)`` integer ids of each image's template and media.

    Returns:
        ``(templates, feats)``: sorted unique template ids ``(T,)`` and ``(T, D)`` L2-normalised features.

    Complexity: one sparse ``(T × N)`` by dense ``(N × D)`` product — ``O(N·D + N log N)`` time,
    ``O(T·D + N)`` extra memory (the features are not copied).
    """
    import scipy.sparse as sp

    f = features if isinstance(features, np.memmap) else as_numpy(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {f.shape}")
    n = f.shape[0]
    if n == 0:
        raise ValueError("features hold no images")
    tids = as_vector(template_ids, "template_ids", n)
    mids = as_vector(media_ids, "media_ids", n)
    templates, t_idx = np.unique(tids, return_inverse=True)
    # (template, media) groups: mean over each group, i.e. weight 1/|group| per image
    m_idx = np.unique(mids, return_inverse=True)[1].astype(np.int64).ravel()
    key = t_idx.astype(np.int64).ravel() * (int(m_idx.max()) + 1) + m_idx
    _, g_idx, g_count = np.unique(key, return_inverse=True, return_counts=True)
    dtype = f.dtype if f.dtype in (np.float32, np.float64) else np.float64
    weights = (1.0 / g_count[g_idx.ravel()]).astype(dtype)
    w = sp.csr_matrix((weights, (t_idx.ravel(), np.arange(n))), shape=(templates.size, n))
    pooled = np.asarray(w @ np.asarray(f, dtype=dtype))
    bad = ~np.isfinite(pooled).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {templates.size} templates have non-finite features "
            f"(e.g. template {templates[np.flatnonzero(bad)[0]]}); check the image features for NaN / inf"
        )
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return templates, pooled / norms


def _rows_of(templates: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    """Row of each id in the sorted ``templates``; error naming the missing ids.

    Integer ids use a dense lookup table over ``[min, max]`` when that range is at most 64× the number of
    templates (``O(P)``, as insightface); otherwise binary search (``O(P log T)``).
    """
    ids = np.asarray(ids)
    if templates.size == 0:
        raise ValueError(f"{name}: there are no pooled templates")
    if templates.dtype.kind in "iu" and ids.dtype.kind in "iu" and ids.size:
        lo, hi = int(templates[0]), int(templates[-1])
        span = hi - lo + 1
        if span <= 64 * templates.size + 1024:
            lut = np.full(span, -1, dtype=np.int64)
            lut[templates.astype(np.int64) - lo] = np.arange(templates.size)
            inside = (ids >= lo) & (ids <= hi)
            rows = np.full(ids.shape, -1, dtype=np.int64)
            rows[inside] = lut[ids[inside].astype(np.int64) - lo]
            missing = rows < 0
            if missing.any():
                _raise_missing(ids[missing], name)
            return rows
    rows = np.searchsorted(templates, ids)
    rows_c = np.minimum(rows, templates.size - 1)
    missing = templates[rows_c] != ids
    if missing.any():
        _raise_missing(ids[missing], name)
    return rows_c


def _raise_missing(missing: np.ndarray, name: str) -> None:
    miss = np.unique(missing)
    raise ValueError(f"{name}: {miss.size} template ids have no images (no pooled feature), e.g. {miss[:5].tolist()}")


def score_template_pairs(
    templates: np.ndarray,
    feats: np.ndarray,
    t1: Any,
    t2: Any,
    block_rows: int = 2048,
) -> np.ndarray:
    """Cosine score ``<feat(t1_k), feat(t2_k)>`` of every template pair, float32 ``(P,)``.

    Pairs are grouped (radix sort) by the block of ``block_rows`` templates holding ``t1``; one matrix
    product of the block against the templates its pairs touch gives all scores of that block. Time
    ``O(P + Σ_blocks rows·cols·D)`` (at most ``T²·D``, at BLAS speed), memory ``O(P + block_rows·T)``.
    """
    templates = np.asarray(templates)
    feats = np.asarray(feats)
    a = as_vector(t1, "t1")
    b = as_vector(t2, "t2", a.shape[0])
    if feats.ndim != 2 or feats.shape[0] != templates.shape[0]:
        raise ValueError(f"feats must be ({templates.shape[0]}, D), got {feats.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.float32)
    r1 = _rows_of(templates, a, "t1")
    r2 = _rows_of(templates, b, "t2")
    f32 = np.ascontiguousarray(feats, dtype=np.float32)
    n_blocks = -(-templates.size // block_rows)
    block = r1 // block_rows
    # stable radix sort on a small key groups the pairs by block in O(P)
    order = np.argsort(block.astype(np.uint16 if n_blocks < 2**16 else np.int64), kind="stable")
    bounds = np.searchsorted(block[order], np.arange(n_blocks + 1))
    scores = np.empty(a.size, dtype=np.float32)
    col_pos = np.empty(templates.size, dtype=np.int64)
    buf = np.empty(0, dtype=np.float32)  # similarity block, grown on demand and reused
    for k in range(n_blocks):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if lo == hi:
            continue
        sel = order[lo:hi]
        row0 = k * block_rows
        rows = f32[row0 : min(row0 + block_rows, templates.size)]
        c = r2[sel]
        if 8 * c.size < templates.size:  # few pairs: sort them, O(P_k log P_k)
            cols = np.unique(c)
        else:  # many pairs: presence mask, O(P_k + T)
            present = np.zeros(templates.size, dtype=bool)
            present[c] = True
            cols = np.flatnonzero(present)
        col_pos[cols] = np.arange(cols.size)
        need = rows.shape[0] * cols.size
        if buf.size < need:
            buf = np.empty(need, dtype=np.float32)
        sim = buf[:need].reshape(rows.shape[0], cols.size)
        np.matmul(rows, f32[cols].T if cols.size < templates.size else f32.T, out=sim)
        scores[sel] = sim[r1[sel] - row0, col_pos[c]]
    return scores


def verify_templates(
    templates: np.ndarray,
    feats: np.ndarray,
    t1: Any,
    t2: Any,
    labels: Any,
    far_targets: Sequence[float] = DEFAULT_FARS,
    rule: TprRule = "nearest",
    return_curve: bool = False,
) -> dict[float, float] | tuple[dict[float, float], dict[str, Any]]:
    """IJB 1:1 verification: TPR at each FAR for the template pairs ``(t1, t2, labels)``.

    Scores with :func:`score_template_pairs`, builds the ROC with :func:`roc_curve` and reads TPRs with
    :func:`tpr_at_fpr` (insightface's nearest-vertex rule by default). With ``return_curve`` also returns
    ``{"fpr", "tpr", "thresholds", "auc", "scores"}``. Time ``O(P log P + T²·D)`` worst case, memory
    ``O(P)`` plus one similarity block.
    """
    y = as_vector(labels, "labels")
    a = as_vector(t1, "t1", y.shape[0])
    b = as_vector(t2, "t2", y.shape[0])
    scores = score_template_pairs(templates, feats, a, b)
    fpr, tpr, thr = roc_curve(y, scores)
    result = tpr_at_fpr(fpr, tpr, far_targets, rule=rule)
    if not return_curve:
        return result
    return result, {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auc": auc(fpr, tpr), "scores": scores}
