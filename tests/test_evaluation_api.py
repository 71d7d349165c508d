"""The evaluation's public surface after the split: the one ROC module, the embedding contract, progress
bars, and the deprecated names that still work for one release."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest


def test_runner_shim_warns_and_reexports() -> None:
    sys.modules.pop("massface.evaluation.runner", None)
    with pytest.warns(DeprecationWarning, match="massface.evaluation.runner is deprecated"):
        runner = importlib.import_module("massface.evaluation.runner")
    from massface.evaluation import embedding, models, verification_sets

    assert runner.load_model is models.load_model and runner.is_torchscript is models.is_torchscript
    assert runner.OnnxModel is models.OnnxModel
    assert runner.embed_images is embedding.embed_images and runner.embed_batch is embedding.embed_batch
    for name in ("evaluate_bin", "evaluate_bins", "evaluate_lfw_pairs", "evaluate_images", "find_bins", "KNOWN_SETS"):
        assert getattr(runner, name) is getattr(verification_sets, name)


def test_lazy_exports_resolve() -> None:
    import massface.evaluation as ev

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no lazy name goes through the shim
        for name in ev.__all__:
            assert getattr(ev, name) is not None, name


def test_ijb_package_keeps_its_names() -> None:
    from massface.evaluation import ijb, roc

    for name in ijb.__all__ + ["_iter_aligned"]:
        assert hasattr(ijb, name), name
    assert ijb.roc_curve is roc.roc_curve and ijb.tpr_at_fpr is roc.tpr_at_fpr


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


def test_kfold_slices_are_sklearn_kfold() -> None:
    from sklearn.model_selection import KFold

    from massface.evaluation.verification import kfold_slices

    for n, k in ((6000, 10), (1234, 10), (37, 5), (10, 10)):
        ref = [test for _, test in KFold(k).split(np.zeros(n))]
        assert [np.arange(n)[s].tolist() for s in kfold_slices(n, k)] == [t.tolist() for t in ref]
    with pytest.raises(ValueError, match="n_folds"):
        kfold_slices(5, 6)


def test_embedding_contract_types_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from massface.evaluation.embedding import embed_batch, embed_images

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(6))
    net(torch.zeros(1, 3, 16, 16))
    net.train()
    imgs = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    e, ef = embed_batch(net, imgs)
    assert e.dtype == ef.dtype == np.float32 and e.shape == ef.shape == (5, 6) and isinstance(e, np.ndarray)
    emb = embed_images(net, imgs, batch_size=2, progress=True, desc="toy")
    assert emb.dtype == np.float64 and emb.shape == (5, 6) and net.training  # training flag restored
    assert "toy" in capsys.readouterr().err
    with pytest.warns(DeprecationWarning, match="progress"):
        old = embed_images(net, imgs, batch_size=2, progress="toy")
    np.testing.assert_array_equal(old, emb)
    capsys.readouterr()
    embed_images(net, imgs, batch_size=2)
    assert capsys.readouterr().err == ""  # progress is off by default


def test_cli_folds_flag_maps_to_n_folds() -> None:
    from massface.evaluation.cli import build_parser

    args = build_parser().parse_args(["--model", "m.onnx", "--folds", "5"])
    assert args.n_folds == 5
