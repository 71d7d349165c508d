"""The one ROC module: ROC curves, AUC, EER and TPR (TAR) at target FARs, for pair verification and IJB.

Two acceptance rules, one per protocol:

* :func:`roc_curve` — similarity scores, a pair is accepted iff ``score >= threshold``: this *is*
  ``sklearn.metrics.roc_curve`` (IJB 1:1, insightface's ``eval_ijbc.py``), with input checks that name the
  problem instead of sklearn's warnings and NaN curves.
* :func:`roc_from_distances` — squared L2 distances, a pair is accepted iff ``d < threshold`` (the k-fold
  verification protocol): the same curve computed by ``sklearn.metrics.roc_curve`` on ``-d`` with every vertex
  kept, its thresholds re-expressed for the strict ``d < t`` rule.

:func:`auc` is ``sklearn.metrics.auc`` (trapezoids); :func:`eer_from_roc` and :func:`tpr_at_fpr` read points
off a curve (sklearn has neither). The k-fold ``VAL@FAR`` of insightface — a threshold chosen on training folds
and applied to the held-out fold — is part of the fold protocol and lives in
:mod:`massface.evaluation.verification` next to its grid search.

``far_targets`` names the false-accept rates a curve is read at everywhere (1:N identification reads
``fpir_targets``: false-positive *identification* rates, another quantity).

scikit-learn is imported by the functions that need it, so importing this module costs only numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from massface.evaluation._arrays import as_vector

__all__ = [
    "DEFAULT_FARS",
    "roc_curve",
    "roc_from_distances",
    "auc",
    "auc_from_roc",
    "eer_from_roc",
    "tpr_at_fpr",
    "TprRule",
]

DEFAULT_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
TprRule = Literal["nearest", "interpolate"]


def roc_curve(labels: Any, scores: Any, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of ``score >= threshold``: ``sklearn.metrics.roc_curve`` after checking the input.

    Returns ascending ``(fpr, tpr, thresholds)`` (float64) starting at ``(0, 0)`` with threshold ``+inf``;
    ``drop_intermediate`` removes vertices collinear with their neighbours (sklearn's rule).

    Raises:
        ValueError: labels not 0/1 (or bool), non-finite scores, or only one class present.

    ``O(P log P)`` time, ``O(P)`` memory.
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    y = as_vector(labels, "labels")
    s = as_vector(scores, "scores", y.shape[0])
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 (1 = genuine pair)")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} of {s.size} scores are not finite")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"ROC needs genuine and impostor pairs; got {n_pos} genuine of {y.size}")
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=drop_intermediate)
    return fpr, tpr, thr.astype(np.float64, copy=False)


def roc_from_distances(dist: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled ROC of ``d < t`` over all pairs: ``(fpr, tpr, thresholds)``, one vertex per distinct distance.

    Vertex 0 is ``(0, 0)`` (``t = min d``); vertex ``j`` accepts all pairs with ``d < thresholds[j]``, the
    last one accepts everything (``t = +inf``). The vertices are ``sklearn.metrics.roc_curve(issame, -d,
    drop_intermediate=False)``'s; the thresholds are shifted one vertex so that the strict rule holds.
    Both classes must be present (the caller checks). ``O(N log N)`` time, ``O(N)`` memory.
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, neg_thr = sk_roc_curve(issame, -np.asarray(dist, dtype=np.float64), drop_intermediate=False)
    distinct = -neg_thr[1:]  # ascending distinct distances (sklearn's vertex j >= 1 accepts d <= distinct[j-1])
    thresholds = np.r_[distinct, np.inf]  # vertex j accepts d < distinct[j]: the same sets
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a curve with monotonic ``fpr`` by trapezoids: ``sklearn.metrics.auc``."""
    from sklearn.metrics import auc as sk_auc

    return float(sk_auc(fpr, tpr))


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under an ROC with ascending ``fpr`` (alias of :func:`auc`, kept for its callers)."""
    return auc(fpr, tpr)


def eer_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Equal error rate: FPR where the piecewise-linear ROC meets ``FPR = 1 - TPR``.

    Same quantity as MassFace's ``brentq(lambda x: 1 - x - interp(fpr, tpr)(x), 0, 1)``, solved per segment.
    """
    g = 1.0 - tpr - fpr  # decreasing from 1 to -1 along the curve
    k = int(np.flatnonzero(g <= 0.0)[0])
    if g[k] == 0.0 or k == 0:
        return float(fpr[k])
    w = g[k - 1] / (g[k - 1] - g[k])
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def tpr_at_fpr(
    fpr: np.ndarray,
    tpr: np.ndarray,
    far_targets: Sequence[float] = DEFAULT_FARS,
    rule: TprRule = "nearest",
    *,
    targets: Sequence[float] | None = None,
) -> dict[float, float]:
    """TPR (TAR) at each target FAR read off an ascending ROC.

    * ``"nearest"`` (insightface): flip the curve to descending FPR, take ``argmin |fpr - x|`` (first
      index), i.e. the ROC vertex nearest to ``x`` and, among vertices of equal FPR, the largest TPR.
    * ``"interpolate"``: the piecewise-linear ROC at ``x`` (upper TPR on vertical runs).

    ``targets=`` is the deprecated name of ``far_targets`` (one release).
    """
    if targets is not None:
        from massface._deprecation import warn_renamed

        warn_renamed("tpr_at_fpr(targets=...)", "far_targets=...")
        far_targets = targets
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1 or fpr.size == 0:
        raise ValueError(f"fpr and tpr must be 1-D of equal length, got {fpr.shape} and {tpr.shape}")
    if np.any(np.diff(fpr) < 0):
        raise ValueError("fpr must be ascending (as returned by roc_curve)")
    if rule not in ("nearest", "interpolate"):
        raise ValueError(f"rule must be 'nearest' or 'interpolate', got {rule!r}")
    out: dict[float, float] = {}
    fpr_d, tpr_d = fpr[::-1], tpr[::-1]
    for x in far_targets:
        x = float(x)
        if rule == "nearest":
            out[x] = float(tpr_d[int(np.argmin(np.abs(fpr_d - x)))])
            continue
        i = int(np.searchsorted(fpr, x, side="right")) - 1  # last vertex with fpr <= x (largest tpr there)
        if i < 0:
            out[x] = 0.0
        elif fpr[i] == x or i == fpr.size - 1:
            out[x] = float(tpr[i])
        else:
            w = (x - fpr[i]) / (fpr[i + 1] - fpr[i])
            out[x] = float(tpr[i] + w * (tpr[i + 1] - tpr[i]))
    return out
