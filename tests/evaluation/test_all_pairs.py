"""evaluation.all_pairs: streamed all-pairs ROC against sklearn on sets small enough to enumerate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from massface.evaluation.all_pairs import (  # noqa: E402
    _MARGIN,
    AllPairsROC,
    _bin_block,
    _normalised_sorted,
    all_pairs_roc,
)
from massface.evaluation.roc import roc_curve  # noqa: E402


def _dyadic_set(n: int = 60, per_id: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """±1 vectors of dimension 16: norm 4, so every float32 score is an exact multiple of 1/8 (many ties,
    all of them on bin edges; duplicates give exactly 1, negations exactly -1)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(-(-n // per_id)), per_id)[:n]
    proto = rng.choice([-1.0, 1.0], size=(labels.max() + 1, 16))
    flips = rng.random((n, 16)) < 0.2
    emb = proto[labels] * np.where(flips, -1.0, 1.0)
    emb[1] = emb[0]  # score exactly +1
    emb[-1] = -emb[0]  # score exactly -1
    perm = rng.permutation(n)  # unsorted labels
    return emb[perm], labels[perm]


def _pairs(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    iu = np.triu_indices(len(emb), 1)
    return (x @ x.T)[iu], labels[iu[0]] == labels[iu[1]]


def _reference_counts(scores: np.ndarray, same: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain re-implementation: bin k holds e_k <= s < e_{k+1}, ends open to ±inf."""
    edges = -1.0 + np.arange(bins + 1) * (2.0 / bins)
    k = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    return np.bincount(k[same], minlength=bins), np.bincount(k[~same], minlength=bins)


def _exact_tpr_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    return float(tpr[fpr <= far].max())


def test_hand_computed_four_images() -> None:
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    # pairs: (0,1)=0.6 G, (0,2)=0 I, (0,3)=-1 I, (1,2)=0.8 I, (1,3)=-0.6 I, (2,3)=0 G
    res = all_pairs_roc(emb, [0, 0, 1, 1], bins=4, far_targets=(0.1, 0.25, 0.5))
    np.testing.assert_array_equal(res.genuine_counts, [0, 0, 1, 1])
    np.testing.assert_array_equal(res.impostor_counts, [2, 0, 1, 1])
    p10, p25, p50 = res.points
    assert not p10.resolvable and math.isnan(p10.tpr) and math.isnan(p10.threshold)  # 0.1 · 4 < 1
    assert (p25.threshold, p25.tpr, p25.tpr_upper, p25.far, p25.bin_index) == (0.5, 0.5, 1.0, 0.25, 3)
    assert (p50.threshold, p50.tpr, p50.far) == (-0.5, 1.0, 0.5)
    assert math.isnan(res.tpr_at_far()[0.1]) and res.tpr_at_far((0.25,)) == {0.25: 0.5}


@pytest.mark.parametrize("bins", [16, 1 << 16])
@pytest.mark.parametrize("block_size", [7, 1024])
def test_dyadic_scores_on_edges_match_plain_histogram_and_sklearn(bins: int, block_size: int) -> None:
    emb, labels = _dyadic_set()
    scores, same = _pairs(emb, labels)
    res = all_pairs_roc(emb, labels, bins=bins, block_size=block_size)
    g, i = _reference_counts(scores, same, bins)
    np.testing.assert_array_equal(res.genuine_counts, g)
    np.testing.assert_array_equal(res.impostor_counts, i)
    assert res.n_pairs == len(emb) * (len(emb) - 1) // 2
    # the ROC from the counts is sklearn's ROC of the scores snapped down to their bin edge
    k = np.clip(np.floor(scores * (bins // 2)) + bins // 2, 0, bins - 1)
    snapped = -1.0 + k * (2.0 / bins)
    fpr, tpr, thr = res.roc()
    f2, t2, th2 = roc_curve(same, snapped, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, f2)
    np.testing.assert_array_equal(tpr, t2)
    th2 = th2.copy()
    th2[th2 == -1.0] = -np.inf  # bin 0 accepts everything
    np.testing.assert_array_equal(thr, th2)


def test_random_scores_tpr_exact_at_edge_and_bounded() -> None:
    rng = np.random.default_rng(1)
    n = 400
    labels = rng.integers(0, 60, n)
    emb = rng.normal(size=(60, 32))[labels] + 1.3 * rng.normal(size=(n, 32))
    bins = 1 << 10
    res = all_pairs_roc(emb, labels, bins=bins, block_size=n, far_targets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5))
    # the very float32 scores the function binned (one block: the same torch.mm call)
    order = np.argsort(np.unique(labels, return_inverse=True)[1], kind="stable")
    e = _normalised_sorted(emb, order, None)
    s = (torch.mm(e * float(bins // 2), e.T) / (bins // 2)).numpy().astype(np.float64)
    iu = np.triu_indices(n, 1)
    ls = labels[order]
    scores, same = s[iu], ls[iu[0]] == ls[iu[1]]
    n_gen, n_imp = int(same.sum()), int((~same).sum())
    assert (res.n_genuine, res.n_impostor) == (n_gen, n_imp)
    for p in res.points:
        if not p.resolvable:
            assert p.far_target * n_imp < 1
            continue
        t, lower = p.threshold, p.threshold - 2.0 / bins
        # exactly sklearn's TPR / FAR at the edge; FAR never exceeded, the edge below exceeds it
        assert p.tpr == (scores[same] >= t).sum() / n_gen
        assert p.far == (scores[~same] >= t).sum() / n_imp <= p.far_target
        if p.bin_index > 0:
            assert (scores[~same] >= lower).sum() / n_imp > p.far_target
            assert p.tpr_upper == (scores[same] >= lower).sum() / n_gen
        assert p.tpr <= _exact_tpr_at_far(scores, same, p.far_target) <= p.tpr_upper
    # float64 scores (not what was binned) agree up to rounding
    s64, same64 = _pairs(emb, labels)
    for p in res.points:
        if p.resolvable:
            assert abs(_exact_tpr_at_far(s64, same64, p.far_target) - p.tpr) <= 0.02


def test_bin_edges_are_exact() -> None:
    bins = 1 << 16
    half = bins // 2
    edges = (-1.0 + np.arange(0, bins + 1, 997) * (2.0 / bins)).astype(np.float32)
    s = np.concatenate([edges, np.nextafter(edges, np.float32(-2)), np.nextafter(edges, np.float32(2)),
                        np.float32([1.0, 1.0000001, -1.0, -1.0000001, 0.0, -0.0, 1e-30, -1e-30])])
    s = s.astype(np.float32)
    scaled = torch.from_numpy(s * np.float32(half))
    index = torch.empty(scaled.shape, dtype=torch.int32)
    got = _bin_block(scaled, index).numpy().astype(np.int64) + half
    ref = np.floor(s.astype(np.float64) * half).astype(np.int64) + half  # e_k <= s < e_{k+1}
    np.testing.assert_array_equal(got, ref)
    assert (ref + _MARGIN >= 0).all()


def test_shards_merge_to_the_full_result() -> None:
    emb, labels = _dyadic_set(n=50, per_id=5, seed=2)
    full = all_pairs_roc(emb, labels, block_size=8)
    parts = [all_pairs_roc(emb, labels, block_size=8, shard=(r, 3)) for r in range(3)]
    merged = parts[0] + parts[1] + parts[2]
    np.testing.assert_array_equal(merged.genuine_counts, full.genuine_counts)
    np.testing.assert_array_equal(merged.impostor_counts, full.impostor_counts)
    assert parts[0].merge(parts[1], parts[2]).tpr_at_far() == full.tpr_at_far()
    with pytest.raises(ValueError, match="bins"):
        full.merge(all_pairs_roc(emb, labels, bins=16))
    with pytest.raises(TypeError):
        full.merge(object())  # type: ignore[arg-type]
    empty = AllPairsROC(np.zeros(16, np.int64), np.zeros(16, np.int64))
    with pytest.raises(ValueError, match="merge the shards"):
        empty.roc()


def test_unresolvable_far_is_nan_and_flagged() -> None:
    emb, labels = _dyadic_set(n=40)
    res = all_pairs_roc(emb, labels)
    assert res.n_impostor * 1e-6 < 1
    p = res.points[0]
    assert p.far_target == 1e-6 and not p.resolvable and math.isnan(p.tpr) and p.bin_index == -1
    summary = json.loads(json.dumps(res.summary()))
    assert summary["points"][0]["tpr"] is None and summary["points"][-1]["resolvable"]
    assert 0.0 <= res.eer() <= 1.0 and 0.0 <= res.auc() <= 1.0


def test_inputs_tensor_strings_and_lazy_export() -> None:
    from massface.evaluation import all_pairs_roc as exported

    emb, labels = _dyadic_set(n=30)
    ref = all_pairs_roc(emb, labels)
    res = exported(torch.from_numpy(emb).float(), np.array([f"id{v}" for v in labels]))
    np.testing.assert_array_equal(res.genuine_counts, ref.genuine_counts)
    np.testing.assert_array_equal(res.impostor_counts, ref.impostor_counts)
    big = emb.copy()
    big[3] *= 1e200  # |x|^2 overflows float64: rescaled, the cosine is unchanged
    np.testing.assert_array_equal(all_pairs_roc(big, labels).impostor_counts, ref.impostor_counts)


@pytest.mark.parametrize(
    ("emb", "labels", "kwargs", "match"),
    [
        (np.ones(5), [0, 0, 1, 1, 2], {}, "2-D"),
        (np.ones((1, 4)), [0], {}, "at least 2"),
        (np.ones((3, 0)), [0, 0, 1], {}, "0 dimensions"),
        (np.ones((4, 3)), [0, 0, 1], {}, "labels has 3 entries, expected 4"),
        (np.ones((4, 3)), [0, 1, 2, 3], {}, "no genuine pairs"),
        (np.ones((4, 3)), [5, 5, 5, 5], {}, "no impostor pairs"),
        (np.ones((4, 3)), [0.0, 0.0, np.nan, 1.0], {}, r"labels\[2\] is NaN"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 0], {}, "numeric"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"bins": 1000}, "power of two"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"bins": 1}, "power of two"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"far_targets": (0.0,)}, r"\(0, 1\]"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"far_targets": (1.5,)}, r"\(0, 1\]"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"block_size": 0}, "block_size"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"shard": (2, 2)}, "rank < world_size"),
        (np.ones((4, 3)), [0, 0, 1, 1], {"shard": 3}, "rank, world_size"),
    ],
)
def test_bad_input_raises(emb: np.ndarray, labels: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        all_pairs_roc(emb, labels, **kwargs)


@pytest.mark.parametrize(("value", "match"), [(np.nan, "row 2 has a non-finite"), (np.inf, "row 2 has a non-finite"),
                                               (0.0, "row 2 is all zeros")])
def test_bad_rows_are_named(value: float, match: str) -> None:
    emb = np.random.default_rng(0).normal(size=(6, 4))
    emb[2] = value if value == 0.0 else emb[2]
    if value != 0.0:
        emb[2, 1] = value
    with pytest.raises(ValueError, match=match):
        all_pairs_roc(emb, [1, 0, 1, 0, 2, 2])
