"""evaluation.ijb keeps its names after the split by concern."""

from __future__ import annotations


def test_ijb_package_keeps_its_names() -> None:
    from massface.evaluation import ijb, roc

    for name in ijb.__all__ + ["_iter_aligned"]:
        assert hasattr(ijb, name), name
    assert ijb.roc_curve is roc.roc_curve and ijb.tpr_at_fpr is roc.tpr_at_fpr
