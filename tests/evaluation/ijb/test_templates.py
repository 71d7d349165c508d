"""evaluation.ijb.templates: template pooling, blocked pair scoring, end-to-end template verification."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.ijb import (
    pool_templates,
    score_template_pairs,
    verify_templates,
)

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_pool_templates_hand_computed():
    # template 7: media 1 = {a, b}, media 2 = {c}; template 3: media 5 = {d}; template 9: media 1 = {e}
    # (media id 1 reappears in another template: groups are per (template, media))
    f = np.array(
        [
            [2.0, 0.0],  # a  t7 m1
            [0.0, 2.0],  # b  t7 m1
            [3.0, 0.0],  # c  t7 m2
            [0.0, -5.0],  # d  t3 m5
            [1.0, 1.0],  # e  t9 m1
        ],
        dtype=np.float32,
    )
    tids = np.array([7, 7, 7, 3, 9])
    mids = np.array([1, 1, 2, 5, 1])
    templates, feats = pool_templates(f, tids, mids)
    assert templates.tolist() == [3, 7, 9]
    # t7: mean(a, b) = (1, 1); + c = (4, 1); / sqrt(17)
    np.testing.assert_allclose(feats[1], np.array([4.0, 1.0]) / np.sqrt(17.0), rtol=1e-6)
    np.testing.assert_allclose(feats[0], [0.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(feats[2], np.array([1.0, 1.0]) / np.sqrt(2.0), rtol=1e-6)
    assert feats.dtype == np.float32



def test_pool_templates_torch_and_errors():
    torch = pytest.importorskip("torch")
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t, feats = pool_templates(f, torch.tensor([1, 1]), torch.tensor([4, 5]))
    np.testing.assert_allclose(feats, [[2**-0.5, 2**-0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match="template_ids has 3 entries"):
        pool_templates(np.zeros((2, 2)), [1, 2, 3], [1, 1])
    with pytest.raises(ValueError, match="non-finite"):
        pool_templates(np.array([[np.nan, 0.0], [1.0, 0.0]]), [1, 2], [1, 1])



def test_score_pairs_blocked_equals_naive():
    rng = np.random.default_rng(0)
    templates = np.sort(rng.choice(10_000, 300, replace=False))
    feats = rng.normal(size=(300, 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    for n_pairs in (5000, 30):  # dense blocks (presence mask) and sparse blocks (unique columns)
        r1 = rng.integers(0, 300, n_pairs)
        r2 = rng.integers(0, 300, n_pairs)
        s = score_template_pairs(templates, feats, templates[r1], templates[r2], block_rows=37)
        np.testing.assert_allclose(s, np.einsum("ij,ij->i", feats[r1], feats[r2]), atol=1e-6)
    with pytest.raises(ValueError, match="no images"):
        score_template_pairs(templates, feats, [templates[0], 10_001], [templates[1], templates[2]])



def test_verify_templates_end_to_end():
    # 4 templates; genuine (1,2) scores 1.0, impostors lower
    templates = np.array([1, 2, 3, 4])
    feats = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    t1 = np.array([1, 1, 1, 3, 2])
    t2 = np.array([2, 3, 4, 4, 4])
    y = np.array([1, 0, 0, 1, 0])
    res, curve = verify_templates(templates, feats, t1, t2, y, far_targets=(0.0, 0.5), return_curve=True)
    np.testing.assert_allclose(curve["scores"], [1.0, 0.0, 0.6, 0.8, 0.6], atol=1e-6)
    # scores desc: 1.0 (g), 0.8 (g), 0.6 (i, i), 0.0 (i) -> tpr 1 at fpr 0
    assert res[0.0] == 1.0
    assert curve["auc"] == pytest.approx(1.0)
