"""Recall@K / R-precision / MAP@R against a brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.retrieval import retrieval_metrics


def _brute(emb, labels, ks):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    rec = {k: [] for k in ks}
    rp, mapr = [], []
    for q in range(len(labels)):
        r = int((labels == labels[q]).sum()) - 1
        if r == 0:
            continue
        order = np.argsort(-sim[q], kind="stable")[: len(labels) - 1]
        rel = labels[order] == labels[q]
        for k in ks:
            rec[k].append(rel[:k].any())
        rp.append(rel[:r].sum() / r)
        prec = np.cumsum(rel[:r]) / np.arange(1, r + 1)
        mapr.append((prec * rel[:r]).sum() / r)
    out = {f"recall@{k}": np.mean(v) for k, v in rec.items()}
    out["r_precision"] = np.mean(rp)
    out["map@r"] = np.mean(mapr)
    return out



def test_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 15, 200)
    centres = rng.normal(size=(15, 12))
    emb = centres[labels] + 0.9 * rng.normal(size=(200, 12))
    labels[0] = 999  # a singleton: excluded
    got = retrieval_metrics(emb, labels, ks=(1, 4))
    ref = _brute(emb, labels, (1, 4))
    for key, v in ref.items():
        assert got[key] == pytest.approx(v), key
    assert got["num_queries"] == 199



def test_subgroups_and_perfect_case():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    emb = np.eye(4)[labels] + 0.01 * np.arange(8)[:, None]
    group = np.array(["a"] * 4 + ["b"] * 4)
    got = retrieval_metrics(emb, labels, ks=(1,), subgroups=group)
    assert got["recall@1"] == 1.0 and got["map@r"] == 1.0 and got["r_precision"] == 1.0
    assert set(got["subgroups"]) == {"a", "b"}
    assert got["subgroups"]["b"]["num_queries"] == 4



def test_errors():
    with pytest.raises(ValueError, match="rows with NaN"):
        retrieval_metrics(np.array([[np.nan, 1.0], [1.0, 0.0]]), np.array([0, 0]))
    with pytest.raises(ValueError, match="labels must be 1-D"):
        retrieval_metrics(np.ones((3, 2)), np.array([0, 0]))
