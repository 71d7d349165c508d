"""evaluation.roc: the one ROC module, against scikit-learn and toy curves."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.ijb import (
    roc_curve,
    tpr_at_fpr,
)

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_verification_roc_is_sklearn_with_strict_thresholds() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    from massface.evaluation.roc import auc, roc_from_distances

    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.4
    d = np.round(rng.random(500) * 4 - 1.5 * y, 2).clip(0, 4)  # ties
    fpr, tpr, thr = roc_from_distances(d, y)
    f2, t2, _ = sk.roc_curve(y, -d, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, f2)
    np.testing.assert_array_equal(tpr, t2)
    # vertex j accepts exactly the pairs with d < thr[j]
    for j in (0, 1, len(thr) // 2, len(thr) - 1):
        acc = d < thr[j]
        assert (acc & y).sum() / y.sum() == tpr[j] and (acc & ~y).sum() / (~y).sum() == fpr[j]
    assert auc(fpr, tpr) == sk.auc(fpr, tpr)



def test_tpr_at_fpr_old_keyword_warns() -> None:
    from massface.evaluation.roc import tpr_at_fpr

    fpr, tpr = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0])
    with pytest.warns(DeprecationWarning, match="far_targets"):
        old = tpr_at_fpr(fpr, tpr, targets=(0.5,))
    assert old == tpr_at_fpr(fpr, tpr, far_targets=(0.5,)) == {0.5: 0.8}



def test_roc_curve_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.1
    s = np.round(rng.normal(size=3000) + 1.5 * y, 1).astype(np.float32)  # many ties
    for drop in (True, False):
        fpr, tpr, thr = roc_curve(y.astype(int), s, drop_intermediate=drop)
        f2, t2, th2 = sk.roc_curve(y.astype(int), s, drop_intermediate=drop)
        np.testing.assert_allclose(fpr, f2)
        np.testing.assert_allclose(tpr, t2)
        np.testing.assert_allclose(thr[1:], th2[1:])



def test_tpr_at_fpr_on_toy_roc():
    fpr = np.array([0.0, 0.0, 0.001, 0.001, 0.01, 0.1, 1.0])
    tpr = np.array([0.0, 0.2, 0.3, 0.5, 0.7, 0.8, 1.0])
    near = tpr_at_fpr(fpr, tpr, (1e-4, 1e-3, 4e-3, 6e-3, 0.5, 2.0))
    # 1e-4: nearest vertex fpr 0 -> the larger tpr there (0.2); 1e-3: vertical run -> 0.5
    # 4e-3: |0.001-0.004| < |0.01-0.004| -> 0.5; 6e-3 -> 0.7; 0.5: |0.1-0.5| < |1-0.5| -> 0.8; 2 -> 1.0
    assert near == {1e-4: 0.2, 1e-3: 0.5, 4e-3: 0.5, 6e-3: 0.7, 0.5: 0.8, 2.0: 1.0}
    interp = tpr_at_fpr(fpr, tpr, (5e-4, 1e-3, 5.5e-3, 1.0), rule="interpolate")
    assert interp[5e-4] == pytest.approx(0.2 + 0.5 * 0.1)
    assert interp[1e-3] == pytest.approx(0.5)
    assert interp[5.5e-3] == pytest.approx(0.6)
    assert interp[1.0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ascending"):
        tpr_at_fpr(fpr[::-1], tpr[::-1])
