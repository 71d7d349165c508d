"""IJB 1:N identification: mixed probes searched against each gallery (open-set TPIR at FPIR, closed-set CMC).

``fpir_targets`` are false-positive *identification* rates (the share of non-mated searches whose top score
passes the threshold) — not the pairwise FARs that ``far_targets`` name elsewhere.

Two definitions circulate (insightface #2747, #1228; PR #1386/#1387/#1739), chosen by ``definition``:

- ``"fpir"`` (default; insightface ``ijb_evals.run_model_test_1N``, close to NIST's): each gallery (G1, G2)
  searched separately; τ from the top-1 scores of the non-mated searches; TPIR counts mated probes whose mate is
  rank 1 **and** scores above τ; the mean over galleries is reported.
- ``"ijb_1n"`` (the older ``ijb_1n.py``): one gallery G1 ∪ G2, τ = the ⌈N_probe · far⌉-th largest of *all*
  non-mate probe–gallery similarities (not one per search), and the rate is the share of mated probes whose mate
  score exceeds τ, with no rank condition — a different, non-standard quantity; numbers of the two are not
  comparable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from massface.evaluation._arrays import as_vector
from massface.evaluation.ijb.templates import _rows_of

__all__ = ["identify", "search_gallery", "DEFAULT_FPIRS"]

DEFAULT_FPIRS: tuple[float, ...] = (1e-2, 1e-1)


def search_gallery(
    p_feats: np.ndarray,
    p_subj: np.ndarray,
    g_feats: np.ndarray,
    g_subj: np.ndarray,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: mated?, rank of the mate subject (1 = first; ties count against the mate), mate score, best
    non-mate score -- the one gallery search of IJB 1:N and TinyFace. ``O(N_probe · N_gallery · D)`` time,
    ``O(chunk · N_gallery)`` memory."""
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
    fpir_targets: Sequence[float] = DEFAULT_FPIRS,
    ranks: Sequence[int] = (1, 5, 10),
    chunk: int = 4096,
    definition: str = "fpir",
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
        definition: ``"fpir"`` (above) or ``"ijb_1n"``, the older definition (module docstring): the galleries
            are joined into one and ``tpir[far]`` is the share of mated probes whose mate score exceeds the
            ⌈N_probe · far⌉-th largest non-mate similarity (NaN where there are fewer non-mate similarities).
            The result's ``"definition"`` says which was computed.

    Complexity: ``O(N_probe · N_gallery · D)`` time, ``O(chunk · N_gallery)`` memory.
    """
    if definition not in ("fpir", "ijb_1n"):
        raise ValueError(f"identify: definition must be 'fpir' or 'ijb_1n', got {definition!r}")
    feats = np.asarray(feats, dtype=np.float32)
    p_t = as_vector(probes[0], "probe template ids")
    p_s = as_vector(probes[1], "probe subject ids", p_t.shape[0])
    p_f = feats[_rows_of(np.asarray(templates), p_t, "probes")]
    if definition == "ijb_1n":
        ids, subjects = [], []
        for name, (g_t, g_s) in galleries.items():
            ids.append(as_vector(g_t, f"gallery {name} template ids"))
            subjects.append(as_vector(g_s, f"gallery {name} subject ids", ids[-1].shape[0]))
        joined_t, joined_s = np.concatenate(ids), np.concatenate(subjects)
        g_f = feats[_rows_of(np.asarray(templates), joined_t, "galleries")]
        return _identify_ijb_1n(p_f, p_s, g_f, joined_s, "+".join(galleries), fpir_targets, ranks, chunk)
    per: dict[str, dict[str, Any]] = {}
    hits = {k: 0 for k in ranks}
    n_mated_total = 0
    for name, (g_t, g_s) in galleries.items():
        g_t = as_vector(g_t, f"gallery {name} template ids")
        g_s = as_vector(g_s, f"gallery {name} subject ids", g_t.shape[0])
        g_f = feats[_rows_of(np.asarray(templates), g_t, f"gallery {name}")]
        mated, rank, mate, nonmate = search_gallery(p_f, p_s, g_f, g_s, chunk)
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
    return {"definition": "fpir", "tpir": mean_tpir, "cmc": cmc_all, "galleries": per}


def _identify_ijb_1n(p_f: np.ndarray, p_s: np.ndarray, g_f: np.ndarray, g_s: np.ndarray, name: str,
                     fars: Sequence[float], ranks: Sequence[int], chunk: int) -> dict[str, Any]:
    """The older ``ijb_1n.py`` definition on one joined gallery (see :func:`identify`); keeps only the
    ⌈N_probe · max(far)⌉ largest non-mate similarities of each chunk: ``O(chunk · N_gallery)`` memory."""
    n = p_f.shape[0]
    mated, rank, mate, _ = search_gallery(p_f, p_s, g_f, g_s, chunk)
    need = max((math.ceil(n * float(f)) for f in fars), default=0)
    top = np.empty(0)
    for s in range(0, n, chunk):
        sim = p_f[s : s + chunk] @ g_f.T
        other = sim[p_s[s : s + chunk, None] != g_s[None, :]]
        if need and other.size:
            keep = other if other.size <= need else np.partition(other, other.size - need)[-need:]
            top = np.concatenate([top, keep])
            if top.size > need:
                top = np.partition(top, top.size - need)[-need:]
    top = np.sort(top)[::-1]
    n_mated = int(mated.sum())
    rates: dict[float, float] = {}
    for f in fars:
        k = math.ceil(n * float(f))
        if n_mated == 0 or k < 1 or k > top.size:
            rates[float(f)] = float("nan")
            continue
        rates[float(f)] = float((mated & (mate > top[k - 1])).sum() / n_mated)
    cmc = {k: float((mated & (rank <= k)).sum() / n_mated) if n_mated else float("nan") for k in ranks}
    gallery = {"tpir": rates, "cmc": cmc, "mated": n_mated, "non_mated": int((~mated).sum())}
    return {"definition": "ijb_1n", "tpir": dict(rates), "cmc": dict(cmc), "galleries": {name: gallery}}
