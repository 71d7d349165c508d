"""Retrieval metrics with faiss: Recall@K, MAP@R and R-precision, optionally per subgroup.

Leave-one-out over a labelled set: every sample queries all others. With ``R_q`` the number of other
samples sharing the query's label and ``rel_q(i)`` whether the ``i``-th neighbour does:

* Recall@K = mean over queries of ``1[any rel_q(i), i <= K]`` (the metric-learning "Recall@K");
* R-precision = mean of ``(1/R_q) Σ_{i<=R_q} rel_q(i)``;
* MAP@R = mean of ``(1/R_q) Σ_{i<=R_q} P_q(i) · rel_q(i)`` with ``P_q(i)`` the precision at ``i``
  (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).

Queries without any same-label sample (``R_q = 0``) are excluded, as in pytorch-metric-learning.
Search is exact (``faiss.IndexFlatIP`` on L2-normalised embeddings, i.e. cosine).
Complexity: ``O(N² · D)`` time for the search, ``O(N · k)`` memory with ``k = max(K, max R_q) + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from massface.evaluation._arrays import as_numpy

__all__ = ["retrieval_metrics", "knn_labels"]


def knn_labels(embeddings: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Labels of the ``k`` nearest other samples of each sample (cosine, self excluded), ``(N, k)``.

    ``k`` is capped at ``N - 1``. Self-matches are removed by index (not by distance), so duplicates of
    a sample still count as neighbours.
    """
    import faiss

    n = embeddings.shape[0]
    k = min(k, n - 1)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, idx = index.search(x, k + 1)
    is_self = idx == np.arange(n)[:, None]
    # drop the self column where found, otherwise the last (k+1-th) neighbour
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    nn = idx[keep].reshape(n, k)
    return labels[nn]


def _metrics(emb: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r = counts[inv.ravel()] - 1  # same-label others per query
    valid = r > 0
    n_valid = int(valid.sum())
    out: dict[str, float] = {"num_queries": float(n_valid)}
    if n_valid == 0 or emb.shape[0] < 2:
        for k in ks:
            out[f"recall@{k}"] = float("nan")
        out["r_precision"] = out["map@r"] = float("nan")
        return out
    k_max = max(max(ks), int(r.max()))
    nn = knn_labels(emb, labels, k_max)
    rel = nn == labels[:, None]  # (N, k)
    k_eff = rel.shape[1]
    for k in ks:
        out[f"recall@{k}"] = float(rel[valid, : min(k, k_eff)].any(axis=1).mean())
    pos = np.arange(1, k_eff + 1)
    within_r = pos[None, :] <= r[:, None]
    rel_r = rel & within_r
    hits = np.cumsum(rel_r, axis=1)
    r_safe = np.maximum(r, 1)
    out["r_precision"] = float((hits[:, -1] / r_safe)[valid].mean())
    ap = (np.where(rel_r, hits / pos[None, :], 0.0).sum(axis=1)) / r_safe
    out["map@r"] = float(ap[valid].mean())
    return out


def retrieval_metrics(
    embeddings: Any,
    labels: Any,
    ks: Sequence[int] = (1, 5, 10),
    subgroups: Any = None,
    normalize: bool = True,
) -> dict[str, Any]:
    """Recall@K, R-precision and MAP@R of a labelled embedding set (leave-one-out, cosine, faiss).

    Args:
        embeddings: ``(N, D)`` numpy array or torch tensor.
        labels: ``(N,)`` identity labels.
        ks: the K of Recall@K.
        subgroups: optional ``(N,)`` group of each sample (e.g. RFW race); each group is then also
            evaluated on its own (queries and database restricted to the group), reported under
            ``result["subgroups"][group]``.
        normalize: L2-normalise rows first (cosine similarity); rows must be non-zero.

    Returns:
        ``{"recall@1": ..., "r_precision": ..., "map@r": ..., "num_queries": ..., ["subgroups": {...}]}``.
    """
    emb = as_numpy(embeddings, "embeddings").astype(np.float32, copy=False)
    lab = as_numpy(labels, "labels")
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {emb.shape}")
    if lab.ndim != 1 or lab.shape[0] != emb.shape[0]:
        raise ValueError(f"labels must be 1-D with {emb.shape[0]} entries, got shape {lab.shape}")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        raise ValueError(f"embeddings have {int(bad.sum())} of {emb.shape[0]} rows with NaN or inf values")
    if normalize:
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(f"{int((norms == 0).sum())} embeddings are all-zero and cannot be normalised")
        emb = emb / norms
    result: dict[str, Any] = _metrics(emb, lab, ks)
    if subgroups is not None:
        grp = as_numpy(subgroups, "subgroups")
        if grp.shape != lab.shape:
            raise ValueError(f"subgroups must have shape {lab.shape}, got {grp.shape}")
        result["subgroups"] = {
            (g.item() if hasattr(g, "item") else g): _metrics(emb[grp == g], lab[grp == g], ks) for g in np.unique(grp)
        }
    return result
