"""IJB-B / IJB-C: template pooling, 1:1 verification (TAR at FAR) and 1:N identification (TPIR, CMC).

Protocol as in insightface's ``eval_ijbc.py`` / ``recognition/_evaluation_/ijb`` (see
``reference/eval-protocols.md`` §4):

* per image: ``f = e(img) + e(flip(img))`` (flip), optionally L2-normalised, optionally ``× faceness``;
  insightface's defaults keep the raw norm and multiply by the detector score, TFace's use the original
  view only and L2-normalise every image (:data:`FEATURE_PRESETS`);
* per template: media feature = mean of its images, template feature = sum of its media, then L2;
* pair score = cosine of the two template features; ROC as ``sklearn.metrics.roc_curve`` (score ``>=``
  threshold, collinear vertices dropped); TPR at FAR = the TPR of the ROC vertex nearest to the target
  FAR (ties: the larger TPR) — or linear interpolation on the ROC with ``rule="interpolate"``.

Full IJB-C size (469K images, 23K templates, ~15.6M pairs) runs from features in bounded memory: pooling
is one sparse × dense product, pair scores are computed block-wise (rows of a template-similarity block
times the templates those pairs touch), and image features can be streamed to a ``.npy`` memmap.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from massface.data._errors import DataFormatError

__all__ = [
    "FeatureFlags",
    "FEATURE_PRESETS",
    "IJBMeta",
    "read_ijb",
    "combine_features",
    "extract_ijb_features",
    "pool_templates",
    "score_template_pairs",
    "roc_curve",
    "tpr_at_fpr",
    "verify_templates",
    "identify",
    "DEFAULT_FARS",
]

DEFAULT_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
_MAX_ID = 2**63 - 1


# --------------------------------------------------------------------------------------------------
# per-image feature flags


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


# --------------------------------------------------------------------------------------------------
# pooling and 1:1 scoring


def _ids(x: Any, name: str, n: int | None = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} entries, expected {n}")
    return a


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

    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    f = np.asarray(features) if not isinstance(features, np.memmap) else features
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {f.shape}")
    n = f.shape[0]
    if n == 0:
        raise ValueError("features hold no images")
    tids = _ids(template_ids, "template_ids", n)
    mids = _ids(media_ids, "media_ids", n)
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
    a = _ids(t1, "t1")
    b = _ids(t2, "t2", a.shape[0])
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


def roc_curve(labels: Any, scores: Any, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of ``score >= threshold``, same vertices as ``sklearn.metrics.roc_curve``.

    Returns ascending ``(fpr, tpr, thresholds)`` starting at ``(0, 0)`` with threshold ``+inf``;
    ``drop_intermediate`` removes vertices collinear with their neighbours on a horizontal or vertical
    run (sklearn's rule: second differences of both counts are zero). ``O(P log P)`` time, ``O(P)`` memory.
    """
    y = _ids(labels, "labels")
    s = _ids(scores, "scores", y.shape[0])
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 (1 = genuine pair)")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} of {s.size} scores are not finite")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"ROC needs genuine and impostor pairs; got {n_pos} genuine of {y.size}")
    order = np.argsort(s)[::-1]  # tie order is irrelevant: only run ends of equal scores are kept
    s_sorted = s[order]
    y_sorted = y[order]
    idx = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted, dtype=np.int64)[idx]
    fps = 1 + idx - tps
    thr = s_sorted[idx].astype(np.float64)
    if drop_intermediate and fps.size > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thr = np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def tpr_at_fpr(
    fpr: np.ndarray,
    tpr: np.ndarray,
    targets: Sequence[float] = DEFAULT_FARS,
    rule: Literal["nearest", "interpolate"] = "nearest",
) -> dict[float, float]:
    """TPR at each target FPR read off an ascending ROC.

    * ``"nearest"`` (insightface): flip the curve to descending FPR, take ``argmin |fpr - x|`` (first
      index), i.e. the ROC vertex nearest to ``x`` and, among vertices of equal FPR, the largest TPR.
    * ``"interpolate"``: the piecewise-linear ROC at ``x`` (upper TPR on vertical runs).
    """
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
    for x in targets:
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


def verify_templates(
    templates: np.ndarray,
    feats: np.ndarray,
    t1: Any,
    t2: Any,
    labels: Any,
    far_targets: Sequence[float] = DEFAULT_FARS,
    rule: Literal["nearest", "interpolate"] = "nearest",
    return_curve: bool = False,
) -> dict[float, float] | tuple[dict[float, float], dict[str, Any]]:
    """IJB 1:1 verification: TPR at each FAR for the template pairs ``(t1, t2, labels)``.

    Scores with :func:`score_template_pairs`, builds the ROC with :func:`roc_curve` and reads TPRs with
    :func:`tpr_at_fpr` (insightface's nearest-vertex rule by default). With ``return_curve`` also returns
    ``{"fpr", "tpr", "thresholds", "auc", "scores"}``. Time ``O(P log P + T²·D)`` worst case, memory
    ``O(P)`` plus one similarity block.
    """
    y = _ids(labels, "labels")
    a = _ids(t1, "t1", y.shape[0])
    b = _ids(t2, "t2", y.shape[0])
    scores = score_template_pairs(templates, feats, a, b)
    fpr, tpr, thr = roc_curve(y, scores)
    result = tpr_at_fpr(fpr, tpr, far_targets, rule=rule)
    if not return_curve:
        return result
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return result, {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auc": auc, "scores": scores}


# --------------------------------------------------------------------------------------------------
# 1:N identification


def _search_gallery(
    p_feats: np.ndarray,
    p_subj: np.ndarray,
    g_feats: np.ndarray,
    g_subj: np.ndarray,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: mated?, rank of the mate subject (1 = first), mate score, best non-mate score."""
    n = p_feats.shape[0]
    mated = np.isin(p_subj, g_subj)
    rank = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    mate = np.full(n, -np.inf)
    nonmate = np.full(n, -np.inf)
    for s in range(0, n, chunk):
        sim = p_feats[s : s + chunk] @ g_feats.T  # (c, G)
        same = p_subj[s : s + chunk, None] == g_subj[None, :]
        m = np.where(same, sim, -np.inf).max(axis=1)
        nm = np.where(same, -np.inf, sim)
        mate[s : s + chunk] = m
        nonmate[s : s + chunk] = nm.max(axis=1)
        r = 1 + (nm >= m[:, None]).sum(axis=1)  # ties count against the mate
        rank[s : s + chunk] = np.where(mated[s : s + chunk], r, rank[s : s + chunk])
    return mated, rank, mate, nonmate


def identify(
    templates: np.ndarray,
    feats: np.ndarray,
    galleries: Mapping[str, tuple[Any, Any]],
    probes: tuple[Any, Any],
    fpir_targets: Sequence[float] = (1e-2, 1e-1),
    ranks: Sequence[int] = (1, 5, 10),
    chunk: int = 4096,
) -> dict[str, Any]:
    """IJB 1:N search of mixed probes against each gallery (e.g. G1 and G2 separately).

    For a gallery, a probe is *mated* if its subject is enrolled. Its rank is 1 + the number of other
    gallery subjects scoring ``>=`` its mate. Open-set: with non-mated top-1 scores sorted descending,
    ``τ = s[max(floor(N_nm · FPIR) - 1, 0)]`` and ``TPIR = #{mated: rank 1 and mate score > τ} / N_mated``
    (insightface ``ijb_evals.run_model_test_1N``). Reported: TPIR per gallery and its mean over galleries;
    CMC rank-k = mated hits at rank <= k summed over galleries / mated searches summed over galleries.

    Args:
        templates, feats: pooled templates (see :func:`pool_templates`).
        galleries: ``{name: (template_ids, subject_ids)}``.
        probes: ``(template_ids, subject_ids)`` of the probe templates.

    Complexity: ``O(N_probe · N_gallery · D)`` time, ``O(chunk · N_gallery)`` memory.
    """
    feats = np.asarray(feats, dtype=np.float32)
    p_t = _ids(probes[0], "probe template ids")
    p_s = _ids(probes[1], "probe subject ids", p_t.shape[0])
    p_f = feats[_rows_of(np.asarray(templates), p_t, "probes")]
    per: dict[str, dict[str, Any]] = {}
    hits = {k: 0 for k in ranks}
    n_mated_total = 0
    for name, (g_t, g_s) in galleries.items():
        g_t = _ids(g_t, f"gallery {name} template ids")
        g_s = _ids(g_s, f"gallery {name} subject ids", g_t.shape[0])
        g_f = feats[_rows_of(np.asarray(templates), g_t, f"gallery {name}")]
        mated, rank, mate, nonmate = _search_gallery(p_f, p_s, g_f, g_s, chunk)
        n_mated = int(mated.sum())
        top_nm = np.sort(nonmate[~mated])[::-1]  # top-1 score of each non-mated search
        tpir: dict[float, float] = {}
        for fp in fpir_targets:
            if top_nm.size == 0 or n_mated == 0:
                tpir[float(fp)] = float("nan")
                continue
            th = top_nm[max(int(math.floor(top_nm.size * fp)) - 1, 0)]
            ok = mated & (rank == 1) & (mate > th)
            tpir[float(fp)] = float(ok.sum() / n_mated)
        cmc = {k: float((mated & (rank <= k)).sum() / n_mated) if n_mated else float("nan") for k in ranks}
        for k in ranks:
            hits[k] += int((mated & (rank <= k)).sum())
        n_mated_total += n_mated
        per[name] = {"tpir": tpir, "cmc": cmc, "mated": n_mated, "non_mated": int((~mated).sum())}
    mean_tpir = {
        float(fp): float(np.nanmean([per[g]["tpir"][float(fp)] for g in per])) if per else float("nan")
        for fp in fpir_targets
    }
    cmc_all = {k: hits[k] / n_mated_total if n_mated_total else float("nan") for k in ranks}
    return {"tpir": mean_tpir, "cmc": cmc_all, "galleries": per}


# --------------------------------------------------------------------------------------------------
# the IJB release layout


@dataclass
class IJBMeta:
    """Metadata of an insightface ``IJB_release`` set (``<root>/meta``, ``<root>/loose_crop``)."""

    root: Path
    name: str
    image_names: list[str]
    template_ids: np.ndarray
    media_ids: np.ndarray
    landmarks: np.ndarray  # (N, 5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    scores: np.ndarray  # (N,) float32 faceness
    pair_t1: np.ndarray
    pair_t2: np.ndarray
    pair_labels: np.ndarray
    galleries: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    probes: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_names)


@dataclass
class _Table:
    """The non-blank lines of an IJB list split into fields, with the 1-based line number of each row."""

    path: Path
    rows: list[list[str]]
    lines: np.ndarray

    def where(self, i: int) -> str:
        return f"line {int(self.lines[i])}"


def _read_columns(path: Path, n_cols: int, sep: str | None = None, skip_header: bool = False) -> _Table:
    """Rows of at least ``n_cols`` fields of a regular, strict-UTF-8 list file (DataFormatError naming the line)."""
    from massface.data._guard import read_lines

    if not os.path.lexists(path):
        raise FileNotFoundError(f"IJB file not found: {path}")
    lines = read_lines(path)  # regular files only (a FIFO is an error, not a hang); UTF-8 errors name the line
    first = 1 if skip_header else 0
    rows: list[list[str]] = []
    numbers: list[int] = []
    for n in range(first, len(lines)):
        line = lines[n]
        if not line.strip():
            continue
        r = line.split(sep) if sep else line.split()
        if len(r) < n_cols:
            raise DataFormatError(path, f"has {len(r)} fields, expected {n_cols}: {' '.join(r)[:120]!r}",
                                  f"line {n + 1}")
        rows.append(r)
        numbers.append(n + 1)
    return _Table(path, rows, np.asarray(numbers, dtype=np.int64))


def _int_column(table: _Table, col: int) -> np.ndarray:
    """Column ``col`` as int64 ids, each a non-negative integer below 2**63 (DataFormatError naming the line)."""
    from massface.data._guard import parse_int

    values = [r[col] for r in table.rows]
    try:
        out = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):  # find and name the culprit
        for i, v in enumerate(values):
            parse_int(v, table.path, table.where(i), f"column {col + 1}", 0, _MAX_ID)
        raise DataFormatError(table.path, f"column {col + 1} must hold integers") from None
    bad = np.flatnonzero(out < 0)
    if bad.size:
        raise DataFormatError(table.path, f"column {col + 1} holds {out[bad[0]]}; ids must be non-negative "
                                          "integers", table.where(int(bad[0])))
    return out


def _float_columns(table: _Table, cols: slice) -> np.ndarray:
    """Columns ``cols`` as finite float32 (DataFormatError naming the line of a non-number or inf / nan)."""
    try:
        out = np.array([r[cols] for r in table.rows], dtype=np.float32)
    except ValueError:
        for i, r in enumerate(table.rows):
            try:
                [float(v) for v in r[cols]]
            except ValueError:
                raise DataFormatError(table.path, f"landmark and score columns must be numbers, got "
                                                  f"{' '.join(r[cols])[:120]!r}", table.where(i)) from None
        raise DataFormatError(table.path, "landmark and score columns must be numbers") from None
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1)) if out.size else np.zeros(0, dtype=np.int64)
    if bad.size:
        raise DataFormatError(table.path, "landmark and score columns must be finite numbers (inf, nan or a value "
                                          "beyond float32 found)", table.where(int(bad[0])))
    return out


def _find_meta(meta: Path, suffix: str, prefix: str) -> Path:
    exact = meta / f"{prefix}{suffix}"
    if exact.is_file():
        return exact
    found = sorted(meta.glob(f"*{suffix}"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f"{meta}: expected {exact.name} (found {[p.name for p in found]})")


def read_ijb(root: str | Path, name: str | None = None, read_1n: bool = True) -> IJBMeta:
    """Read the IJB release metadata under ``root`` (``root/meta/<name>_face_tid_mid.txt`` etc.).

    ``name`` is ``"ijbb"`` / ``"ijbc"`` (default: the directory name, lower-cased). Checks that the
    tid/mid and landmark files agree line by line, that pair labels are 0/1, and reads the 1:N gallery
    (``*_1N_gallery_G1.csv``/``G2``, IJB-B ``S1``/``S2``) and probe CSVs when present.

    Every list must be a regular, strict-UTF-8 text file; ids are non-negative integers below 2**63, landmarks
    and scores finite numbers, and image names relative paths that stay inside ``loose_crop/`` (no absolute
    path, no ``..`` climbing out). Bad input raises :class:`~massface.data.DataFormatError` (a ValueError) naming
    the file and line.
    """
    root = Path(root)
    meta = root / "meta"
    if not meta.is_dir():
        raise FileNotFoundError(f"{root}: no meta/ directory (expected the insightface IJB_release layout)")
    prefix = (name or root.name).lower()
    p_tid = _find_meta(meta, "_face_tid_mid.txt", prefix)
    p_lmk = _find_meta(meta, "_name_5pts_score.txt", prefix)
    p_pair = _find_meta(meta, "_template_pair_label.txt", prefix)
    from massface.data._guard import relpath_problem

    tid = _read_columns(p_tid, 3)
    lmk = _read_columns(p_lmk, 12)
    if len(tid.rows) != len(lmk.rows):
        raise DataFormatError(
            p_tid, f"has {len(tid.rows)} lines but {p_lmk.name} has {len(lmk.rows)}; they must list the "
            f"same images in the same order"
        )
    names = [r[0] for r in tid.rows]
    for i, name in enumerate(names):
        problem = relpath_problem(name)
        if problem is not None:
            raise DataFormatError(p_tid, f"image name {name[:80]!r}: {problem}; refused", tid.where(i))
    for i, r in enumerate(lmk.rows):
        if r[0] != names[i]:
            raise DataFormatError(p_lmk, f"lists {r[0][:80]!r} but {p_tid.name} {tid.where(i)} lists "
                                         f"{names[i][:80]!r}", lmk.where(i))
    nums = _float_columns(lmk, slice(1, 12))
    pair = _read_columns(p_pair, 3)
    labels = _int_column(pair, 2)
    bad = np.flatnonzero(~np.isin(labels, (0, 1)))
    if bad.size:
        raise DataFormatError(p_pair, f"labels (3rd column) must be 0 or 1, got {labels[bad[0]]}",
                              pair.where(int(bad[0])))
    out = IJBMeta(
        root=root,
        name=prefix,
        image_names=names,
        template_ids=_int_column(tid, 1),
        media_ids=_int_column(tid, 2),
        landmarks=nums[:, :10].reshape(-1, 5, 2),
        scores=nums[:, 10].copy(),
        pair_t1=_int_column(pair, 0),
        pair_t2=_int_column(pair, 1),
        pair_labels=labels,
    )
    if read_1n:
        for g in ("G1", "G2", "S1", "S2"):
            hits = sorted(meta.glob(f"*_1N_gallery_{g}.csv"))
            if hits:
                out.galleries[g] = _read_1n_csv(hits[0])
        probe = sorted(meta.glob("*_1N_probe_mixed.csv"))
        if probe:
            out.probes = _read_1n_csv(probe[0])
    return out


def _read_1n_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(template_ids, subject_ids)`` of a 1:N CSV (header row; TEMPLATE_ID, SUBJECT_ID first)."""
    table = _read_columns(path, 2, sep=",", skip_header=True)
    t = _int_column(table, 0)
    s = _int_column(table, 1)
    tu, first = np.unique(t, return_index=True)
    su = s[first]
    t_sorted = np.argsort(t, kind="stable")
    grp = np.searchsorted(tu, t[t_sorted])
    if np.any(s[t_sorted] != su[grp]):
        raise DataFormatError(path, "a template is listed with more than one SUBJECT_ID")
    return tu, su


# --------------------------------------------------------------------------------------------------
# feature extraction from the loose crops


def _iter_aligned(meta: IJBMeta, start: int, stop: int, image_size: int, max_pixels: int) -> Iterable[np.ndarray]:
    """Aligned RGB crops of images ``start..stop-1``: each a regular file that resolves inside ``loose_crop/``,
    header-checked against ``max_pixels`` before decoding (DataFormatError naming the file and image)."""
    from massface.data._base import decode_image
    from massface.data._guard import max_file_bytes, read_regular_file, real_root
    from massface.data.align import align_face  # lazily: written alongside this module

    crops = meta.root / "loose_crop"
    root_real, limit = real_root(crops), max_file_bytes(max_pixels)
    for i in range(start, stop):
        path = crops / meta.image_names[i]
        where = f"image {i} of the tid_mid list"
        data = read_regular_file(path, where, max_bytes=limit, root=root_real)
        rgb = decode_image(data, path, where, max_pixels=max_pixels)
        yield align_face(rgb, meta.landmarks[i], image_size=(image_size, image_size))


def extract_ijb_features(
    model: Callable[[Any], Any],
    meta: IJBMeta,
    flags: FeatureFlags = FEATURE_PRESETS["insightface"],
    batch_size: int = 128,
    out_path: str | Path | None = None,
    image_size: int = 112,
    device: Any = None,
    progress: bool = True,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Per-image IJB features: 5-point alignment, embedding (+ flip), flags. Streams to ``out_path``.

    Images are read from ``loose_crop/`` with OpenCV, aligned by ``massface.data.align.align_face`` with
    the detector's landmarks, normalised ``(x/255 - 0.5)/0.5`` and embedded batch by batch; with
    ``out_path`` the ``(N, D)`` float32 features go to a ``.npy`` memmap (bounded memory at IJB-C size).
    Images of more than ``max_pixels`` pixels (default :data:`massface.data._guard.DEFAULT_MAX_PIXELS`) are
    refused from their header; an unreadable image raises :class:`~massface.data.DataFormatError`.
    Time ``O(N)`` forward passes, memory ``O(batch · image)`` plus the output.
    """
    from massface.evaluation.runner import embed_batch

    from massface.data._guard import DEFAULT_MAX_PIXELS, check_max_pixels

    limit = check_max_pixels(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    n = meta.num_images
    out: np.ndarray | None = None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        imgs = np.stack(list(_iter_aligned(meta, start, stop, image_size, limit)))
        e, ef = embed_batch(model, imgs, flip=flags.flip, device=device)
        f = combine_features(e, ef, meta.scores[start:stop], flags)
        if out is None:
            shape = (n, f.shape[1])
            if out_path is not None:
                out = np.lib.format.open_memmap(str(out_path), mode="w+", dtype=np.float32, shape=shape)
            else:
                out = np.empty(shape, dtype=np.float32)
        out[start:stop] = f
        if progress:
            print(f"\r{meta.name}: {stop}/{n} images", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    assert out is not None
    if isinstance(out, np.memmap):
        out.flush()
    return out
