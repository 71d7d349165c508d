"""evaluate_pairs against a plain re-implementation of insightface's verification loop; kfold_slices is scikit-learn's KFold."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.verification import (
    eer_from_roc,
    evaluate_distances,
    evaluate_pairs,
    kfold_slices,
    pair_distances,
    roc_from_distances,
)


def test_kfold_slices_are_sklearn_kfold() -> None:
    from sklearn.model_selection import KFold

    from massface.evaluation.verification import kfold_slices

    for n, k in ((6000, 10), (1234, 10), (37, 5), (10, 10)):
        ref = [test for _, test in KFold(k).split(np.zeros(n))]
        assert [np.arange(n)[s].tolist() for s in kfold_slices(n, k)] == [t.tolist() for t in ref]
    with pytest.raises(ValueError, match="n_folds"):
        kfold_slices(5, 6)



def _ref_folds(n: int, k: int) -> list[np.ndarray]:
    # sklearn KFold(k, shuffle=False): first n % k folds one longer, contiguous
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    out, start = [], 0
    for s in sizes:
        out.append(np.arange(start, start + s))
        start += s
    return out



def _ref_acc(threshold, dist, actual):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, actual))
    tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(actual)))
    return float(tp + tn) / dist.size



def _ref_val_far(threshold, dist, actual):
    predict = np.less(dist, threshold)
    ta = np.sum(np.logical_and(predict, actual))
    fa = np.sum(np.logical_and(predict, np.logical_not(actual)))
    n_same = np.sum(actual)
    n_diff = np.sum(np.logical_not(actual))
    return float(ta) / float(n_same), float(fa) / float(n_diff)



def _ref_normalize(x):
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    n[n == 0] = 1.0
    return x / n[:, None]



def _ref_evaluate(e1, e2, issame, k=10):
    e1 = _ref_normalize(e1.astype(np.float64))
    e2 = _ref_normalize(e2.astype(np.float64))
    dist = np.sum(np.square(np.subtract(e1, e2)), 1)
    thresholds = np.arange(0, 4, 0.01)
    n = len(issame)
    idx = np.arange(n)
    accs, best_ts = [], []
    for test in _ref_folds(n, k):
        train = np.setdiff1d(idx, test)
        acc_train = np.zeros(len(thresholds))
        for j, t in enumerate(thresholds):
            acc_train[j] = _ref_acc(t, dist[train], issame[train])
        best = np.argmax(acc_train)
        best_ts.append(thresholds[best])
        accs.append(_ref_acc(thresholds[best], dist[test], issame[test]))
    return np.array(accs), np.array(best_ts), dist



def _ref_val(dist, issame, far_target, k=10):
    """calculate_val with old SciPy's slinear interp1d written out as a B-spline evaluation."""
    thresholds = np.arange(0, 4, 0.001)
    n = len(issame)
    idx = np.arange(n)
    vals, fars = [], []
    for test in _ref_folds(n, k):
        train = np.setdiff1d(idx, test)
        far_train = np.array([_ref_val_far(t, dist[train], issame[train])[1] for t in thresholds])
        if np.max(far_train) >= far_target:
            # old SciPy interp1d(kind="slinear") = degree-1 B-spline with knots [x0, x..., x_last]
            from scipy.interpolate import BSpline

            spline = BSpline(np.r_[far_train[0], far_train, far_train[-1]], thresholds, 1)
            threshold = float(spline(far_target))
        else:
            threshold = 0.0
        v, f = _ref_val_far(threshold, dist[test], issame[test])
        vals.append(v)
        fars.append(f)
    return np.mean(vals), np.std(vals), np.mean(fars)



def _random_case(seed: int, n: int, d: int = 16, sep: float = 1.0, quantize: bool = False):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    e1 = rng.normal(size=(n, d))
    noise = rng.normal(size=(n, d))
    e2 = np.where(issame[:, None], e1 + sep * noise, rng.normal(size=(n, d)))
    if quantize:  # many exact ties between distances and with grid values
        e1 = np.round(e1)
        e2 = np.round(e2)
    return e1.astype(np.float32), e2.astype(np.float32), issame



@pytest.mark.parametrize(
    "seed,n,k,quantize", [(0, 600, 10, False), (1, 487, 10, False), (2, 300, 5, True), (3, 1003, 10, True)]
)
def test_grid_matches_insightface_loop(seed, n, k, quantize):
    e1, e2, issame = _random_case(seed, n, quantize=quantize)
    ref_acc, ref_t, ref_dist = _ref_evaluate(e1, e2, issame, k)
    res = evaluate_pairs(e1, e2, issame, n_folds=k, thresholds="grid")
    np.testing.assert_array_equal(res.distances, ref_dist)
    np.testing.assert_array_equal(res.thresholds, ref_t)
    np.testing.assert_array_equal(res.fold_accuracies, ref_acc)
    assert res.accuracy == np.mean(ref_acc)
    assert res.std == np.std(ref_acc)
    assert res.stderr == pytest.approx(np.std(ref_acc, ddof=1) / np.sqrt(k))



@pytest.mark.parametrize("seed,far", [(4, 1e-2), (5, 5e-2), (6, 1e-3)])
def test_val_at_far_matches_old_interp_rule(seed, far):
    e1, e2, issame = _random_case(seed, 800, sep=1.2)
    res = evaluate_pairs(e1, e2, issame, far_targets=(far,))
    ref_val, ref_std, ref_far = _ref_val(res.distances, issame, far)
    assert res.tar_at_far[far] == pytest.approx(ref_val, abs=1e-12)
    assert res.tar_at_far_std[far] == pytest.approx(ref_std, abs=1e-12)
    assert res.far_achieved[far] == pytest.approx(ref_far, abs=1e-12)



def test_val_flat_far_runs_do_not_crash():
    # well separated: the training FAR curve is flat 0 then jumps; SciPy interp1d raises on this input
    e1, e2, issame = _random_case(7, 400, sep=0.2)
    res = evaluate_pairs(e1, e2, issame, far_targets=(1e-3, 1e-1))
    assert set(res.tar_at_far) == {1e-3, 1e-1}
    assert all(0.0 <= v <= 1.0 for v in res.tar_at_far.values())



@pytest.mark.parametrize("seed", [8, 9, 10])
def test_exact_never_below_grid_on_training_folds(seed):
    e1, e2, issame = _random_case(seed, 700, sep=1.5)
    grid = evaluate_pairs(e1, e2, issame, thresholds="grid")
    exact = evaluate_pairs(e1, e2, issame, thresholds="exact", far_targets=(1e-2,))
    d = grid.distances
    for i, f in enumerate(kfold_slices(d.size, 10)):
        train = np.ones(d.size, bool)
        train[f] = False
        acc_grid = _ref_acc(grid.thresholds[i], d[train], issame[train])
        acc_exact = _ref_acc(exact.thresholds[i], d[train], issame[train])
        assert acc_exact >= acc_grid
        # and it is the optimum over every possible cut of the sorted training distances
        cands = np.r_[np.unique(d[train]), np.inf]
        assert acc_exact == max(_ref_acc(t, d[train], issame[train]) for t in cands)
    assert 0.0 <= exact.tar_at_far[1e-2] <= 1.0



def test_roc_auc_eer_on_toy_case():
    dist = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([True, True, False, True, False, False])
    fpr, tpr, thr = roc_from_distances(dist, same)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert thr[0] == 0.1 and thr[-1] == np.inf
    res = evaluate_distances(dist, same, n_folds=2)
    # Mann-Whitney: 9 (pos, neg) couples, pos closer in 8 of them
    assert res.auc == pytest.approx(8 / 9)
    # EER: segment (1/3, 2/3) -> (1/3, 1) crosses 1 - tpr = fpr at fpr = 1/3
    assert res.eer == pytest.approx(1 / 3)
    assert eer_from_roc(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)



def test_auc_counts_ties_half():
    dist = np.array([0.5, 0.5, 0.5, 0.5])
    same = np.array([True, False, True, False])
    res = evaluate_distances(dist, same, n_folds=2)
    assert res.auc == pytest.approx(0.5)



def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    e1, e2, issame = _random_case(11, 200)
    a = evaluate_pairs(e1, e2, issame)
    b = evaluate_pairs(torch.from_numpy(e1), torch.from_numpy(e2), torch.from_numpy(issame))
    np.testing.assert_array_equal(a.fold_accuracies, b.fold_accuracies)
    assert a.summary()["accuracy"] == b.accuracy



def test_bad_inputs():
    e1, e2, issame = _random_case(12, 100)
    bad = e1.copy()
    bad[[3, 7, 9], 0] = np.nan
    with pytest.raises(ValueError, match="3 of 100 rows"):
        evaluate_pairs(bad, e2, issame)
    with pytest.raises(ValueError, match="same shape"):
        evaluate_pairs(e1[:50], e2, issame)
    with pytest.raises(ValueError, match="labels"):
        evaluate_pairs(e1, e2, issame[:10])
    with pytest.raises(ValueError, match="both same and different"):
        evaluate_pairs(e1, e2, np.ones(100, bool))
    with pytest.raises(ValueError, match="n_folds"):
        evaluate_pairs(e1, e2, issame, n_folds=1)
    with pytest.raises(ValueError, match="grid"):
        evaluate_pairs(e1, e2, issame, thresholds="fine")
    with pytest.raises(ValueError, match="far_targets"):
        evaluate_pairs(e1, e2, issame, far_targets=(0.0,))
    with pytest.raises(ValueError, match="0/1"):
        evaluate_pairs(e1, e2, np.full(100, 2))
    # a zero embedding has no direction: rejected (it used to stay zero and score as distance 1)
    with pytest.raises(ValueError, match="2 of 2 rows of zero norm"):
        pair_distances(np.zeros((2, 3)), np.ones((2, 3)))



def test_exact_val_accepts_floor_far_training_impostors():
    e1, e2, issame = _random_case(13, 900, sep=1.2)
    far = 0.02
    res = evaluate_pairs(e1, e2, issame, thresholds="exact", far_targets=(far,))
    d = res.distances
    vals, fars = [], []
    for f in kfold_slices(d.size, 10):
        train = np.ones(d.size, bool)
        train[f] = False
        neg = np.sort(d[train & ~issame])
        t = neg[int(np.floor(far * neg.size))]
        assert np.mean(neg < t) <= far  # training FAR at the threshold never exceeds the target
        test_d, test_y = d[f], issame[f]
        vals.append(np.mean(test_d[test_y] < t))
        fars.append(np.mean(test_d[~test_y] < t))
    assert res.tar_at_far[far] == pytest.approx(np.mean(vals))
    assert res.far_achieved[far] == pytest.approx(np.mean(fars))
