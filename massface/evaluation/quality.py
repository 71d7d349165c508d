"""Face-image quality evaluated by error-versus-discard curves (EDC / ERC), and the quality sources.

:func:`error_vs_discard` follows the face-image-quality literature (Grother & Tabassi's error-versus-reject
characteristic; ISO/IEC 29794-1's EDC; the ERC scripts published with MagFace and CR-FIQA):

1. one threshold ``τ`` is fixed **once**, on all pairs, at the target false-match rate ``fmr`` —
   :func:`massface.evaluation.fairness.threshold_at_fmr`, the rule shared with the fairness evaluation (largest
   ``τ`` with ``#{impostor accepted} / n_impostor <= fmr``; accepted means ``d < τ``, impostors tied at ``τ``
   rejected);
2. the quality of a pair is ``min(quality1, quality2)`` (higher = better image);
3. for each discard fraction ``x`` the ``k = floor(x · N)`` pairs of lowest pair quality are removed — all pairs,
   genuine and impostor; ties in quality are broken by pair order (a stable sort: among equal qualities the
   earlier pair is discarded first) — and ``FNMR(x)`` is the share of the remaining genuine pairs not accepted
   at ``τ`` (``NaN`` once no genuine pair remains);
4. ``pAUC`` = trapezoidal area under ``(x, FNMR(x))`` for ``x`` in ``[0, pauc_limit]`` (the curve interpolated
   linearly at the limit when it is not a grid point); normalised by the area of the random baseline,
   ``FNMR(0) · pauc_limit`` (the CR-FIQA script's "normalized pAUC": the area divided by the area under the
   constant first value); ``NaN`` when ``FNMR(0) = 0``.

**Random baseline.** Discarding uniformly at random leaves ``FNMR`` unchanged *in expectation*, exactly: given
that ``G`` genuine pairs remain, the number of false non-matches among them is hypergeometric with mean
``G · FNMR(0)``. So the baseline is the flat line ``FNMR(0)`` — what the ERC scripts use to normalise — rather
than one seeded random draw (a noisy estimate of the same line).

**Scores.** By default ``scores`` are massface distances (``pair_distances``: squared L2 of L2-normalised
embeddings, in ``[0, 4]``; lower = genuine; accepted iff ``d < τ``). ``higher_is_genuine=True`` takes similarity
scores (e.g. cosine): they are negated internally, so a pair is accepted iff ``s > τ_s`` with ``τ_s = -τ``
(reported in the similarity's own scale).

**Quality sources.** :func:`feature_norms` — the L2 norm of the model's raw, un-normalised output for the
un-flipped image (MagFace / AdaFace: feature magnitude as quality; the same forward pass as
:func:`~massface.evaluation.embedding.embed_batch`, the verification embedding itself stays flip-summed and
L2-normalised); :func:`bin_feature_norms` for a ``.bin`` set; or :func:`read_quality_scores`, a file of one
float per image in the set's image order (pair ``k`` = images ``2k``, ``2k+1``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from massface.evaluation.fairness import threshold_at_fmr
from massface.evaluation.verification import _check_distance_range, _labels

__all__ = [
    "DEFAULT_DISCARD",
    "ErrorDiscardCurve",
    "error_vs_discard",
    "feature_norms",
    "bin_feature_norms",
    "read_quality_scores",
    "format_quality_table",
]

#: Default discard fractions: 0, 0.01, ..., 0.95 (96 points; the last 5 % would leave too few pairs).
DEFAULT_DISCARD: np.ndarray = np.round(np.arange(96) / 100.0, 2)
DEFAULT_DISCARD.setflags(write=False)

_COUNT_SLACK = 1e-9  # floor(x · N) with this slack: 0.29 · 100 discards 29 pairs, not 28


@dataclass(frozen=True)
class ErrorDiscardCurve:
    """An error-versus-discard curve (see the module docstring for the definitions).

    Attributes:
        discard: the discard fractions ``x``, ascending, ``discard[0] = 0``.
        fnmr: ``FNMR(x)`` at the fixed threshold (``NaN`` where no genuine pair remains).
        num_discarded: pairs removed at each ``x`` (``floor(x · N)``).
        num_genuine: genuine pairs remaining at each ``x``.
        threshold: ``τ`` in the scale of ``scores`` (distance: accept ``d < τ``; similarity: accept ``s > τ``).
        fmr: the target false-match rate; ``fmr_achieved``: the FMR of all pairs at ``τ``.
        higher_is_genuine: whether ``scores`` were similarities.
        pauc, pauc_normalized, pauc_limit: area under the curve on ``[0, pauc_limit]`` and that area divided by
            ``FNMR(0) · pauc_limit``.
        baseline_fnmr: the random-discard baseline, ``FNMR(0)`` at every ``x`` (its exact expectation).
        num_pairs: ``N``.
    """

    discard: np.ndarray
    fnmr: np.ndarray
    num_discarded: np.ndarray = field(repr=False)
    num_genuine: np.ndarray = field(repr=False)
    threshold: float = math.nan
    fmr: float = 1e-3
    fmr_achieved: float = math.nan
    higher_is_genuine: bool = False
    pauc: float = math.nan
    pauc_normalized: float = math.nan
    pauc_limit: float = 0.2
    baseline_fnmr: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    num_pairs: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable values: the curve as lists (``None`` for NaN), pAUCs, threshold, counts."""

        def num(x: float) -> float | str | None:
            x = float(x)
            return None if math.isnan(x) else ("inf" if math.isinf(x) else x)

        return {
            "discard": [float(x) for x in self.discard],
            "fnmr": [num(v) for v in self.fnmr],
            "num_genuine": [int(v) for v in self.num_genuine],
            "fnmr_at_0": num(self.fnmr[0]),
            "pauc": num(self.pauc),
            "pauc_normalized": num(self.pauc_normalized),
            "pauc_limit": self.pauc_limit,
            "threshold": num(self.threshold),
            "fmr": self.fmr,
            "fmr_achieved": self.fmr_achieved,
            "higher_is_genuine": self.higher_is_genuine,
            "num_pairs": self.num_pairs,
        }


def _finite_vector(x: Any, name: str, n: int | None = None) -> np.ndarray:
    from massface.evaluation._arrays import as_vector

    v = as_vector(x, name, n)
    if v.dtype.kind not in "fiu" or v.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {v.dtype}")
    v = v.astype(np.float64, copy=False)
    bad = ~np.isfinite(v)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values ({int(np.isnan(v).sum())} NaN; first: "
                         f"index {first}, value {v[first]!r})")
    return v


def _discard_grid(discard: Any) -> np.ndarray:
    if discard is None:
        return np.array(DEFAULT_DISCARD)
    x = _finite_vector(discard, "discard")
    if x.size == 0 or x[0] != 0.0:
        raise ValueError("discard must start at 0 (FNMR(0) is the curve's reference point)")
    if np.any(np.diff(x) <= 0):
        raise ValueError("discard fractions must be strictly increasing")
    if x[-1] >= 1.0:
        raise ValueError(f"discard fractions must lie in [0, 1), got {x[-1]!r}")
    return x


def error_vs_discard(
    scores: Any,
    issame: Any,
    quality1: Any,
    quality2: Any,
    *,
    fmr: float = 1e-3,
    discard: Sequence[float] | np.ndarray | None = None,
    pauc_limit: float = 0.2,
    higher_is_genuine: bool = False,
) -> ErrorDiscardCurve:
    """FNMR at a fixed FMR threshold as the lowest-quality pairs are discarded (EDC / ERC).

    Args:
        scores: ``(N,)`` pair scores: distances from :func:`~massface.evaluation.verification.pair_distances`
            (in ``[0, 4]``, checked) by default, or similarities with ``higher_is_genuine=True``.
        issame: ``(N,)`` booleans (or 0/1); both classes needed.
        quality1, quality2: ``(N,)`` quality of the first and second image of each pair (higher = better);
            finite (NaN refused).
        fmr: target false-match rate of the fixed threshold, in ``(0, 1]``.
        discard: discard fractions, strictly increasing from 0, below 1; default :data:`DEFAULT_DISCARD`.
        pauc_limit: upper end of the pAUC, in ``(0, discard[-1]]``.
        higher_is_genuine: ``scores`` are similarities (accept ``s > τ``) instead of distances.

    Returns:
        :class:`ErrorDiscardCurve`.

    Complexity: ``O(N log N + len(discard))`` time (one sort by quality, prefix counts), ``O(N)`` memory.
    """
    s = _finite_vector(scores, "scores")
    y = _labels(issame, s.shape[0])
    q1 = _finite_vector(quality1, "quality1", s.shape[0])
    q2 = _finite_vector(quality2, "quality2", s.shape[0])
    if not higher_is_genuine:
        _check_distance_range(s)
    d = -s if higher_is_genuine else s
    x = _discard_grid(discard)
    if not 0.0 < float(pauc_limit) <= x[-1]:
        raise ValueError(f"pauc_limit must lie in (0, {x[-1]:g}] (the last discard fraction), got {pauc_limit!r}")
    tau = threshold_at_fmr(d, y, fmr)
    accepted = d < tau
    n = s.shape[0]
    order = np.argsort(np.minimum(q1, q2), kind="stable")
    gen_cum = np.r_[0, np.cumsum(y[order])]
    fnm_cum = np.r_[0, np.cumsum((y & ~accepted)[order])]
    k = np.floor(x * n + _COUNT_SLACK).astype(np.int64)
    n_gen = gen_cum[-1] - gen_cum[k]
    n_fnm = fnm_cum[-1] - fnm_cum[k]
    with np.errstate(invalid="ignore", divide="ignore"):
        fnmr = np.where(n_gen > 0, n_fnm / np.maximum(n_gen, 1), np.nan)
    pauc = _partial_area(x, fnmr, float(pauc_limit))
    base = fnmr[0] * float(pauc_limit)
    return ErrorDiscardCurve(
        discard=x,
        fnmr=fnmr,
        num_discarded=k,
        num_genuine=n_gen,
        threshold=(-tau if higher_is_genuine else tau),
        fmr=float(fmr),
        fmr_achieved=float(accepted[~y].mean()),
        higher_is_genuine=bool(higher_is_genuine),
        pauc=pauc,
        pauc_normalized=(pauc / base) if base > 0 else math.nan,
        pauc_limit=float(pauc_limit),
        baseline_fnmr=np.full_like(fnmr, fnmr[0]),
        num_pairs=n,
    )


def _partial_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoids under ``(x, y)`` on ``[0, limit]`` (``y`` interpolated linearly at ``limit``); NaN if any
    value there is NaN."""
    from massface.evaluation.roc import auc

    j = int(np.searchsorted(x, limit, side="right"))  # x[:j] <= limit
    xs, ys = x[:j], y[:j]
    if xs[-1] < limit:
        w = (limit - x[j - 1]) / (x[j] - x[j - 1])
        xs, ys = np.r_[xs, limit], np.r_[ys, y[j - 1] + w * (y[j] - y[j - 1])]
    if np.isnan(ys).any():
        return math.nan
    return auc(xs, ys) if xs.size > 1 else 0.0


# --------------------------------------------------------------------------------------------------
# quality sources


def feature_norms(
    model: Callable[[Any], Any],
    images: np.ndarray,
    batch_size: int = 64,
    device: Any = None,
    progress: bool = False,
) -> np.ndarray:
    """``||f(x)||₂`` of the raw, un-normalised model output of each un-flipped image, float64 ``(N,)``.

    MagFace / AdaFace read the feature magnitude as image quality. The forward pass is
    :func:`~massface.evaluation.embedding.embed_batch` (``flip=False``, input ``(x/255 - 0.5)/0.5``).
    ``N`` forward passes; ``O(N)`` memory beyond a batch.
    """
    from massface._progress import progress_bar
    from massface.evaluation.embedding import embed_batch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 3) array, got shape {imgs.shape}")
    out = np.empty(imgs.shape[0], dtype=np.float64)
    with progress_bar(total=imgs.shape[0], desc="feature norms", unit="img", enabled=progress) as bar:
        for s in range(0, imgs.shape[0], batch_size):
            e, _ = embed_batch(model, imgs[s : s + batch_size], flip=False, device=device)
            out[s : s + e.shape[0]] = np.linalg.norm(e.astype(np.float64), axis=1)
            bar.update(e.shape[0])
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(f"the model produced non-finite features for {int(bad.sum())} of {out.size} images")
    return out


def bin_feature_norms(
    model: Callable[[Any], Any],
    path: str | os.PathLike[str],
    batch_size: int = 64,
    device: Any = None,
    max_pixels: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """:func:`feature_norms` of every image of an insightface ``.bin`` set, in file order (``2N`` values for
    ``N`` pairs: pair ``k`` is ``[2k]``, ``[2k+1]``). Reads the set with ``massface.data.verification.read_bin``."""
    from massface.data.verification import read_bin

    kw = {} if max_pixels is None else {"max_pixels": max_pixels}
    images, _ = read_bin(path, **kw)
    return feature_norms(model, images, batch_size=batch_size, device=device, progress=progress)


def read_quality_scores(path: str | os.PathLike[str], n_images: int | None = None) -> np.ndarray:
    """Per-image quality scores: one float per line, in the set's image order; whole-line ``#`` comments are
    skipped; blank lines, NaN and ±inf are refused (``DataFormatError`` naming the file and line), and so is a
    count other than ``n_images`` (naming the file). Strict UTF-8. ``O(lines)``."""
    from massface.data._errors import DataFormatError
    from massface.data._guard import read_lines

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFormatError(path, "quality score file not found")
    values: list[float] = []
    for lineno, line in enumerate(read_lines(path), 1):
        text = line.strip()
        if text.startswith("#"):
            continue
        where = f"line {lineno}"
        if not text:
            raise DataFormatError(path, "blank line (expected one quality score per image)", where)
        try:
            v = float(text)
        except ValueError:
            raise DataFormatError(path, f"expected one number, got {text[:80]!r}", where) from None
        if not math.isfinite(v):
            raise DataFormatError(path, f"quality must be a finite number, got {text[:40]!r}", where)
        values.append(v)
    if not values:
        raise DataFormatError(path, "no quality scores")
    if n_images is not None and len(values) != n_images:
        raise DataFormatError(path, f"{len(values)} quality scores for {n_images} images (one per image, in the "
                                    "set's image order)")
    return np.array(values, dtype=np.float64)


def format_quality_table(curves: Mapping[str, ErrorDiscardCurve], markdown: bool = True) -> str:
    """One row per curve: FNMR at 0 / 10 / 20 / 30 % discarded (when on the grid), pAUC, normalised pAUC, τ."""
    marks = (0.0, 0.1, 0.2, 0.3)
    head = ["curve", *[f"FNMR@{int(100 * m)}% %" for m in marks], "pAUC", "pAUC/base", "FMR", "τ"]
    rows = []
    for name, c in curves.items():
        cells = []
        for m in marks:
            hit = np.flatnonzero(np.isclose(c.discard, m))
            cells.append(f"{100 * c.fnmr[hit[0]]:.2f}" if hit.size and not np.isnan(c.fnmr[hit[0]]) else "n/a")
        rows.append([str(name), *cells, f"{c.pauc:.4f}", f"{c.pauc_normalized:.3f}", f"{c.fmr:g}",
                     f"{c.threshold:.4f}"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in rows)])
