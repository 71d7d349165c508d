"""Pair verification: the 10-fold protocol of LFW / CFP / AgeDB / CALFW / CPLFW, ROC, AUC, EER, VAL@FAR.

``evaluate_pairs`` follows insightface's ``verification.evaluate`` (itself FaceNet's ``lfw.py``):

* distance ``d_k = ||e1_k - e2_k||²`` of L2-normalised embeddings (float64, in [0, 4]);
* a pair is predicted "same" iff ``d_k < t`` (strict);
* folds are contiguous blocks in stored order, ``sklearn.model_selection.KFold(n, shuffle=False)``
  (the first ``N mod n`` folds get one extra pair);
* per fold, the threshold maximising accuracy on the other folds is applied to the held-out fold;
* reported: mean fold accuracy, population std (``np.std``, what papers quote) and the standard
  error ``std(ddof=1)/sqrt(n)`` (what the LFW README asks for).

``thresholds="grid"`` searches ``np.arange(0, 4, 0.01)`` and takes the first (smallest) maximiser, which
reproduces insightface's numbers bit for bit. ``thresholds="exact"`` searches every distinct training
distance by sorting, so its training accuracy is never below the grid's.

All counts ``#{d < t}`` are obtained with ``searchsorted`` on sorted distances instead of a loop over
thresholds: for ``N`` pairs, ``n`` folds and ``T`` grid thresholds the cost is
``O(n · (N log N + T log N))`` time and ``O(N + n·T)`` memory (insightface: ``O(n · T · N)`` time).

What scikit-learn already does is taken from it: ``KFold`` for the folds, ``preprocessing.normalize`` for the
row normalisation (after a scale-safe rescaling, see :func:`pair_distances`), and the pooled ROC / AUC through
:mod:`massface.evaluation.roc`. The grid and exact threshold searches stay here: they are the protocol.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from massface.evaluation._arrays import as_numpy
from massface.evaluation.roc import (
    auc,
    auc_from_roc,  # noqa: F401  (re-exported: its old home)
    eer_from_roc,
    roc_from_distances,
)

__all__ = [
    "PairEvaluation",
    "evaluate_pairs",
    "evaluate_distances",
    "pair_distances",
    "kfold_slices",
    "roc_from_distances",
    "auc_from_roc",
    "eer_from_roc",
    "ACCURACY_GRID",
    "VAL_GRID",
]

ThresholdMode = Literal["grid", "exact"]


def _accuracy_grid() -> np.ndarray:
    # insightface: ``thresholds = np.arange(0, 4, 0.01)`` — built by the same call so that arange's
    # accumulated float error (0.07 -> 0.07000000000000001) is identical.
    return np.arange(0, 4, 0.01)


def _val_grid() -> np.ndarray:
    # insightface ``calculate_val``: ``thresholds = np.arange(0, 4, 0.001)``.
    return np.arange(0, 4, 0.001)


ACCURACY_GRID: np.ndarray = _accuracy_grid()
ACCURACY_GRID.setflags(write=False)
VAL_GRID: np.ndarray = _val_grid()
VAL_GRID.setflags(write=False)


@dataclass(frozen=True)
class PairEvaluation:
    """Result of a k-fold pair verification.

    Attributes:
        accuracy: mean of the per-fold test accuracies.
        std: population standard deviation of the fold accuracies (``np.std``; what papers quote).
        stderr: standard error ``std(ddof=1) / sqrt(n_folds)`` (the LFW README's ``S_E``).
        fold_accuracies: test accuracy of each fold, shape ``(n_folds,)``.
        thresholds: the squared-L2 threshold chosen on the training folds of each fold, ``(n_folds,)``.
        tar_at_far: FAR target -> mean (over folds) TAR (insightface's ``VAL``) at the threshold chosen on
            the training folds for that FAR.
        tar_at_far_std: FAR target -> population std of the fold TARs.
        far_achieved: FAR target -> mean test-fold FAR actually obtained at those thresholds.
        auc: area under the pooled ROC (all pairs, exact, ties counted half).
        eer: equal error rate of the pooled ROC (where ``FPR = 1 - TPR``, linear between vertices).
        fpr, tpr, roc_thresholds: pooled ROC; vertex ``j`` accepts every pair with ``d < roc_thresholds[j]``.
        distances: squared L2 distance of every pair, ``(N,)``.
        issame: labels, ``(N,)`` bool.
        mode: ``"grid"`` or ``"exact"``.
        n_folds: number of folds.
    """

    accuracy: float
    std: float
    stderr: float
    fold_accuracies: np.ndarray
    thresholds: np.ndarray
    tar_at_far: dict[float, float]
    tar_at_far_std: dict[float, float]
    far_achieved: dict[float, float]
    auc: float
    eer: float
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    roc_thresholds: np.ndarray = field(repr=False)
    distances: np.ndarray = field(repr=False)
    issame: np.ndarray = field(repr=False)
    mode: str = "grid"
    n_folds: int = 10

    @property
    def threshold(self) -> float:
        """Mean of the per-fold thresholds (what TFace reports)."""
        return float(np.mean(self.thresholds))

    @property
    def num_pairs(self) -> int:
        return int(self.issame.shape[0])

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable scalars and per-fold values (no per-pair arrays)."""
        return {
            "accuracy": self.accuracy,
            "std": self.std,
            "stderr": self.stderr,
            "fold_accuracies": [float(a) for a in self.fold_accuracies],
            "thresholds": [float(t) for t in self.thresholds],
            "threshold": self.threshold,
            "tar_at_far": {repr(k): v for k, v in self.tar_at_far.items()},
            "tar_at_far_std": {repr(k): v for k, v in self.tar_at_far_std.items()},
            "far_achieved": {repr(k): v for k, v in self.far_achieved.items()},
            "auc": self.auc,
            "eer": self.eer,
            "mode": self.mode,
            "n_folds": self.n_folds,
            "num_pairs": self.num_pairs,
            "num_same": int(self.issame.sum()),
        }


# --------------------------------------------------------------------------------------------------
# input handling


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (any device; detached, copied to host)."""
    return as_numpy(x, name)


def _check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        bad_rows = bad.reshape(bad.shape[0], -1).any(axis=1)
        n_nan = int(np.isnan(x).sum())
        raise ValueError(
            f"{name} has {int(bad_rows.sum())} of {x.shape[0]} rows with non-finite values (first: row "
            f"{int(np.flatnonzero(bad_rows)[0])}; {n_nan} NaN, {int(bad.sum()) - n_nan} inf entries); "
            "the model produced invalid embeddings"
        )


# Rows whose largest |entry| lies outside [2^-48, 2^480] are rescaled before their squared norm is taken:
# above, squares overflow (1e160² = inf) in float64 and the row would normalise to NaN; below 2^-480 they
# underflow (1e-200² = 0), and below 2^-48 (> 10·eps) the norm may fall under the 10·eps that sklearn's
# ``normalize`` treats as zero (it leaves such rows unscaled). Within the range, D·max² stays finite and
# normal for any D < 2^60 and sklearn's arithmetic applies unchanged.
_SAFE_MAX_ABS = (2.0**-48, 2.0**480)


def _l2_normalize_(x: np.ndarray, name: str) -> np.ndarray:
    """In-place row-wise L2 normalisation of float64 rows, safe against overflow and underflow.

    Rows whose squared norm would overflow or underflow are first multiplied by 2^-e, e the binary exponent
    of their largest |entry|; scaling by a power of two is exact and commutes with every rounding that
    follows, so the result is what an unbounded exponent range would give and ``x·c`` normalises like ``x``
    for any c > 0. Then every row is divided by its norm by ``sklearn.preprocessing.normalize`` (insightface's
    own call, so its numbers stay bit-identical). A row of zero norm has no direction: ``ValueError`` with the
    count and the first row. Non-finite rows raise ``ValueError`` first. O(N·D) time, in place (plus one
    (N, D) temporary for the row maxima).
    """
    from sklearn.preprocessing import normalize

    if x.shape[1]:
        max_abs = np.max(np.abs(x), axis=1)  # NaN / inf for a non-finite row
        if not np.isfinite(max_abs).all():
            _check_finite(x, name)
        risky = (max_abs > _SAFE_MAX_ABS[1]) | ((max_abs < _SAFE_MAX_ABS[0]) & (max_abs > 0))
        if risky.any():
            _, exponent = np.frexp(max_abs[risky])
            x[risky] = np.ldexp(x[risky], -exponent[:, None])
        zero = max_abs == 0.0  # a finite row has zero norm iff all its entries are zero
    else:
        zero = np.ones(x.shape[0], dtype=bool)
    if zero.any():
        raise ValueError(
            f"{name} has {int(zero.sum())} of {x.shape[0]} rows of zero norm (first: row "
            f"{int(np.flatnonzero(zero)[0])}); a zero embedding has no direction to verify with"
        )
    return normalize(x, copy=False)


def _labels(issame: Any, n: int | None) -> np.ndarray:
    y = _as_numpy(issame, "issame")
    if y.ndim != 1:
        raise ValueError(f"issame must be 1-D (one label per pair), got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"issame has {y.shape[0]} labels but there are {n} pairs")
    if y.dtype != np.bool_:
        if y.dtype.kind not in "biuf":
            raise ValueError(f"issame must hold booleans or 0/1 values, got dtype {y.dtype}")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"issame must hold booleans or 0/1 values; {int(bad.sum())} of {y.shape[0]} "
                             f"are neither (first: index {first}, value {y[first]!r})")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(
            f"issame needs both same and different pairs; got {int(y.sum())} same of {y.shape[0]} pairs"
        )
    return y


# Squared L2 distances of unit vectors lie in [0, 4]; values may stray by the rounding of distances computed
# in 16 or 32 bits.
_DISTANCE_RANGE: tuple[float, float] = (0.0, 4.0)
_DISTANCE_TOLERANCE = 1e-3


def _check_distance_range(dist: np.ndarray) -> None:
    """ValueError unless every distance is a number in [0, 4] ± tolerance (NaN and ±inf are outside)."""
    low, high = _DISTANCE_RANGE[0] - _DISTANCE_TOLERANCE, _DISTANCE_RANGE[1] + _DISTANCE_TOLERANCE
    with np.errstate(invalid="ignore"):
        bad = ~((dist >= low) & (dist <= high))
    if bad.any():
        n_nan = int(np.isnan(dist).sum())
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"distances must be squared L2 distances of L2-normalised embeddings, in "
            f"[{_DISTANCE_RANGE[0]:g}, {_DISTANCE_RANGE[1]:g}] (tolerance {_DISTANCE_TOLERANCE:g}); {int(bad.sum())} of "
            f"{dist.shape[0]} values are not ({n_nan} NaN; first: index {first}, value {dist[first]!r}). "
            "Similarities (cosine) must be converted: d = 2 - 2·s"
        )


def pair_distances(emb1: Any, emb2: Any) -> np.ndarray:
    """Squared L2 distance ``||e1/|e1| - e2/|e2|||²`` of each pair, float64, shape ``(N,)``.

    Same arithmetic as insightface (``np.sum(np.square(np.subtract(e1, e2)), 1)`` after sklearn's
    ``normalize``), with the normalisation made scale-safe (any positive scaling of a row, 1e-300 to 1e300,
    gives the same distances). ``O(N·D)`` time and memory. Accepts numpy arrays or torch tensors.

    Raises ``ValueError`` for rows of zero norm and for non-finite rows (count and first row in the message).
    """
    e1 = _as_numpy(emb1, "emb1")
    e2 = _as_numpy(emb2, "emb2")
    if e1.ndim != 2 or e2.ndim != 2:
        raise ValueError(f"emb1 and emb2 must be 2-D (N, D); got shapes {e1.shape} and {e2.shape}")
    if e1.shape != e2.shape:
        raise ValueError(f"emb1 and emb2 must have the same shape; got {e1.shape} and {e2.shape}")
    if e1.shape[0] == 0:
        raise ValueError("emb1 and emb2 hold no pairs")
    if e1.dtype.kind not in "fiu" or e2.dtype.kind not in "fiu":
        raise TypeError(f"embeddings must be real numbers; got dtypes {e1.dtype} and {e2.dtype}")
    # two float64 work buffers, updated in place (same values as the out-of-place formula)
    with np.errstate(invalid="ignore", over="ignore"):
        a = _l2_normalize_(np.array(e1, dtype=np.float64), "emb1")
        b = _l2_normalize_(np.array(e2, dtype=np.float64), "emb2")
        np.subtract(a, b, out=a)
        np.square(a, out=a)
        dist = np.sum(a, 1)
    if not np.isfinite(dist).all():  # a NaN / inf in a row always reaches its distance
        _check_finite(e1, "emb1")
        _check_finite(e2, "emb2")
        raise ValueError(f"{int((~np.isfinite(dist)).sum())} pair distances are not finite (embedding overflow)")
    return dist


def kfold_slices(n: int, n_folds: int) -> list[slice]:
    """Contiguous test folds of ``range(n)``: ``sklearn.model_selection.KFold(n_folds, shuffle=False)``'s, as slices."""
    from sklearn.model_selection import KFold

    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be in [2, number of pairs={n}], got {n_folds}")
    folds = KFold(int(n_folds), shuffle=False).split(np.empty((n, 0)))
    return [slice(int(test[0]), int(test[-1]) + 1) for _, test in folds]


# --------------------------------------------------------------------------------------------------
# counting helpers: everything is "how many of these distances are < t"


class _FoldCounts:
    """Sorted positive / negative distances of each fold, for ``#{d < t}`` queries by searchsorted."""

    def __init__(self, dist: np.ndarray, issame: np.ndarray, folds: Sequence[slice]) -> None:
        self.pos = [np.sort(dist[f][issame[f]]) for f in folds]
        self.neg = [np.sort(dist[f][~issame[f]]) for f in folds]
        self.n_pos = np.array([p.size for p in self.pos], dtype=np.int64)
        self.n_neg = np.array([q.size for q in self.neg], dtype=np.int64)

    def below(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pos_lt, neg_lt)`` of shape ``(n_folds, len(t))``: per-fold counts of ``d < t``."""
        pos_lt = np.stack([np.searchsorted(p, t, side="left") for p in self.pos])
        neg_lt = np.stack([np.searchsorted(q, t, side="left") for q in self.neg])
        return pos_lt, neg_lt


def _grid_thresholds(counts: _FoldCounts) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: insightface's grid threshold and its training accuracy."""
    grid = ACCURACY_GRID
    pos_lt, neg_lt = counts.below(grid)
    tot_pos_lt, tot_neg_lt = pos_lt.sum(0), neg_lt.sum(0)
    tr_pos = counts.n_pos.sum() - counts.n_pos  # (n_folds,)
    tr_neg = counts.n_neg.sum() - counts.n_neg
    tp = tot_pos_lt[None, :] - pos_lt
    tn = tr_neg[:, None] - (tot_neg_lt[None, :] - neg_lt)
    n_train = (tr_pos + tr_neg).astype(np.float64)
    # same float expression as insightface: float(tp + tn) / dist.size
    acc = (tp + tn).astype(np.float64) / n_train[:, None]
    best = np.argmax(acc, axis=1)  # first maximum = smallest threshold among ties
    return grid[best], acc[np.arange(acc.shape[0]), best]


def _sorted_with_folds(dist: np.ndarray, issame: np.ndarray, folds: Sequence[slice]) -> tuple[np.ndarray, ...]:
    """Distances sorted once, with labels and fold index carried along (training sets are masks of it)."""
    order = np.argsort(dist, kind="stable")
    fold_id = np.empty(dist.shape[0], dtype=np.int64)
    for i, f in enumerate(folds):
        fold_id[f] = i
    return dist[order], issame[order], fold_id[order]


def _exact_thresholds(dist: np.ndarray, issame: np.ndarray, folds: Sequence[slice]) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: the accuracy-optimal threshold over all distinct training distances, by sorting."""
    ds, ys, fs = _sorted_with_folds(dist, issame, folds)
    thresholds = np.empty(len(folds))
    train_acc = np.empty(len(folds))
    for i in range(len(folds)):
        train = fs != i
        d, y = ds[train], ys[train]  # still sorted
        # candidate j accepts the first starts[j] sorted training distances (all d < values[j]);
        # the last candidate (+inf) accepts everything.
        first = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        starts = np.r_[first, d.size]
        cpos = np.r_[0, np.cumsum(y)]
        pos_lt = cpos[starts]
        neg_lt = starts - pos_lt
        n_neg = d.size - int(y.sum())
        correct = pos_lt + (n_neg - neg_lt)
        j = int(np.argmax(correct))  # first maximum = smallest threshold
        train_acc[i] = correct[j] / d.size
        if j == first.size:  # accept everything
            thresholds[i] = np.nextafter(d[-1], np.inf)
        elif j == 0:  # accept nothing
            thresholds[i] = d[0]
        else:
            lo, hi = d[first[j - 1]], d[first[j]]
            mid = lo + (hi - lo) / 2.0
            thresholds[i] = mid if lo < mid <= hi else hi
    return thresholds, train_acc


def _val_threshold_grid(far_train: np.ndarray, far_target: float) -> float:
    """insightface's ``calculate_val`` threshold without SciPy's ``interp1d``.

    If ``max(FAR_train) >= target``: with ``l`` the last grid index whose FAR is ``<= target``,
    ``t = th[l] + (target - FAR[l]) · (th[l+1] - th[l]) / (FAR[l+1] - FAR[l])`` — what old SciPy's
    ``interp1d(kind='slinear')`` returned on the flat-run FAR curve; otherwise ``t = 0``.
    """
    grid = VAL_GRID
    if far_train.max() < far_target:
        return 0.0
    l = int(np.searchsorted(far_train, far_target, side="right")) - 1  # FAR is non-decreasing
    if far_train[l] == far_target or l + 1 >= grid.size:
        return float(grid[l])
    return float(grid[l] + (far_target - far_train[l]) * (grid[l + 1] - grid[l]) / (far_train[l + 1] - far_train[l]))


def _tar_at_far(
    dist: np.ndarray, issame: np.ndarray, folds: Sequence[slice], counts: _FoldCounts, far_target: float, mode: str
) -> tuple[float, float, float]:
    """Mean TAR, its population std, and mean test FAR at a training-fold threshold for ``far_target``."""
    n_folds = len(folds)
    if mode == "grid":
        _, neg_lt = counts.below(VAL_GRID)
        tr_neg = counts.n_neg.sum() - counts.n_neg
        tr_neg_lt = neg_lt.sum(0)[None, :] - neg_lt
        with np.errstate(invalid="ignore", divide="ignore"):
            far_train = np.where(tr_neg[:, None] > 0, tr_neg_lt / np.maximum(tr_neg, 1)[:, None], 0.0)
        ts = np.array([_val_threshold_grid(far_train[i], far_target) for i in range(n_folds)])
    else:
        # exact: accept exactly m = floor(target · n_neg) training impostors (the largest such threshold)
        ts = np.empty(n_folds)
        ds, ys, fs = _sorted_with_folds(dist, issame, folds)
        neg_all, neg_fold = ds[~ys], fs[~ys]
        for i in range(n_folds):
            neg = neg_all[neg_fold != i]
            m = int(math.floor(far_target * neg.size + 1e-9))
            ts[i] = neg[m] if m < neg.size else np.inf
    vals = np.empty(n_folds)
    fars = np.empty(n_folds)
    for i in range(n_folds):
        t = ts[i]
        p = np.searchsorted(counts.pos[i], t, side="left")
        q = np.searchsorted(counts.neg[i], t, side="left")
        vals[i] = p / counts.n_pos[i] if counts.n_pos[i] else 0.0
        fars[i] = q / counts.n_neg[i] if counts.n_neg[i] else 0.0
    return float(np.mean(vals)), float(np.std(vals)), float(np.mean(fars))


# --------------------------------------------------------------------------------------------------
# public entry points


def evaluate_distances(
    distances: Any,
    issame: Any,
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
    far_targets: Sequence[float] = (1e-3,),
) -> PairEvaluation:
    """k-fold verification from precomputed squared-L2 pair distances (see :func:`evaluate_pairs`).

    ``distances`` are squared L2 distances of L2-normalised embeddings, so they must lie in [0, 4] (up to a
    tolerance of 1e-3 for rounding): anything else — NaN, ±inf, a similarity, a distance on another scale — is
    rejected with ``ValueError`` giving how many values are outside and the allowed range. ``issame`` must
    hold one boolean (or 0/1) per distance.
    """
    if thresholds not in ("grid", "exact"):
        raise ValueError(f"thresholds must be 'grid' or 'exact', got {thresholds!r}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral):
        raise ValueError(f"n_folds must be an int in [2, number of pairs], got {n_folds!r}")
    dist = _as_numpy(distances, "distances")
    if dist.dtype.kind not in "fiu":
        raise TypeError(f"distances must be real numbers, got dtype {dist.dtype}")
    dist = dist.astype(np.float64, copy=False)
    if dist.ndim != 1:
        raise ValueError(f"distances must be 1-D, got shape {dist.shape}")
    _check_distance_range(dist)
    y = _labels(issame, dist.shape[0])
    far_targets = tuple(float(f) for f in far_targets)
    for f in far_targets:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"far_targets must lie in (0, 1], got {f}")
    folds = kfold_slices(dist.shape[0], int(n_folds))
    counts = _FoldCounts(dist, y, folds)

    if thresholds == "grid":
        fold_t, _ = _grid_thresholds(counts)
    else:
        fold_t, _ = _exact_thresholds(dist, y, folds)

    fold_acc = np.empty(len(folds))
    for i, f in enumerate(folds):
        tp = np.searchsorted(counts.pos[i], fold_t[i], side="left")
        fp = np.searchsorted(counts.neg[i], fold_t[i], side="left")
        tn = counts.n_neg[i] - fp
        fold_acc[i] = float(tp + tn) / (f.stop - f.start)

    tar, tar_std, far_ach = {}, {}, {}
    for f in far_targets:
        tar[f], tar_std[f], far_ach[f] = _tar_at_far(dist, y, folds, counts, f, thresholds)

    fpr, tpr, roc_t = roc_from_distances(dist, y)
    return PairEvaluation(
        accuracy=float(np.mean(fold_acc)),
        std=float(np.std(fold_acc)),
        stderr=float(np.std(fold_acc, ddof=1) / math.sqrt(len(folds))),
        fold_accuracies=fold_acc,
        thresholds=np.asarray(fold_t, dtype=np.float64),
        tar_at_far=tar,
        tar_at_far_std=tar_std,
        far_achieved=far_ach,
        auc=auc(fpr, tpr),
        eer=eer_from_roc(fpr, tpr),
        fpr=fpr,
        tpr=tpr,
        roc_thresholds=roc_t,
        distances=dist,
        issame=y,
        mode=thresholds,
        n_folds=len(folds),
    )


def evaluate_pairs(
    emb1: Any,
    emb2: Any,
    issame: Any,
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
    far_targets: Sequence[float] = (1e-3,),
) -> PairEvaluation:
    """k-fold verification accuracy of embedding pairs, insightface's protocol.

    Args:
        emb1, emb2: ``(N, D)`` embeddings of the first and second image of each pair (numpy or torch, any
            device, any float dtype); each row is L2-normalised here in float64, scale-safely: multiplying
            the embeddings by any c > 0 (1e-200 … 1e160 included) gives the same result.
        issame: ``(N,)`` booleans (or 0/1), True for a genuine pair.
        n_folds: number of contiguous folds (insightface: 10, no shuffle).
        thresholds: ``"grid"`` (insightface: ``np.arange(0, 4, 0.01)``, first argmax) or ``"exact"``
            (every distinct training distance; the threshold is put mid-gap).
        far_targets: FARs for insightface's ``VAL@FAR``. Grid mode reproduces ``calculate_val`` (its
            ``arange(0, 4, 0.001)`` FAR curve on the training folds, old ``interp1d(slinear)`` rule,
            0 when the target is never reached) without SciPy; exact mode takes the largest threshold that
            accepts ``floor(FAR · n_neg)`` training impostors.

    Returns:
        :class:`PairEvaluation`. Accuracy, std and thresholds of grid mode equal insightface's
        ``verification.evaluate`` on the same embeddings.

    Raises:
        ValueError: shape mismatch, non-finite embeddings or rows of zero norm (with the count of bad rows
            and the first one), labels of one class or not boolean / 0-1, ``n_folds`` outside ``[2, N]``.

    Complexity: ``O(N·D + n_folds · N log N)`` time, ``O(N·D)`` memory for the normalised copies.
    """
    dist = pair_distances(emb1, emb2)
    return evaluate_distances(dist, issame, n_folds=n_folds, thresholds=thresholds, far_targets=far_targets)
