"""IJB pooling, pair scoring, ROC / TPR@FAR rules, 1:N identification and the release-layout reader."""

from __future__ import annotations

import numpy as np
import pytest

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from massface.evaluation.ijb import (
    FEATURE_PRESETS,
    FeatureFlags,
    combine_features,
    identify,
    pool_templates,
    read_ijb,
    roc_curve,
    score_template_pairs,
    tpr_at_fpr,
    verify_templates,
)


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


def test_combine_features_flags():
    e = np.array([[3.0, 4.0]])
    ef = np.array([[1.0, 0.0]])
    s = np.array([0.5])
    np.testing.assert_allclose(combine_features(e, ef, s, FEATURE_PRESETS["insightface"]), [[2.0, 2.0]])
    np.testing.assert_allclose(combine_features(e, None, None, FEATURE_PRESETS["tface"]), [[0.6, 0.8]])
    np.testing.assert_allclose(
        combine_features(e, ef, s, FeatureFlags(flip=True, normalize=True, detector_score=True)),
        0.5 * np.array([[4.0, 4.0]]) / np.sqrt(32.0),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="no flipped"):
        combine_features(e, None, s)


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


def test_identify_open_set_and_cmc():
    # gallery subjects 10, 20, 30 with one template each; probe feats chosen by hand
    templates = np.array([1, 2, 3, 11, 12, 13, 14])
    g = np.eye(3, dtype=np.float32)
    probes = np.array(
        [
            [0.9, 0.1, 0.0],  # subj 10: rank 1, score .9
            [0.5, 0.6, 0.0],  # subj 10: rank 2 (20 beats it)
            [0.0, 0.0, 0.7],  # subj 30: rank 1, score .7
            [0.0, 0.8, 0.0],  # subj 99 (non-mated), top-1 score .8
        ],
        dtype=np.float32,
    )
    feats = np.vstack([g, probes])
    out = identify(
        templates,
        feats,
        {"G": (np.array([1, 2, 3]), np.array([10, 20, 30]))},
        (np.array([11, 12, 13, 14]), np.array([10, 10, 30, 99])),
        fpir_targets=(1.0,),
        ranks=(1, 2),
    )
    assert out["cmc"] == {1: pytest.approx(2 / 3), 2: pytest.approx(1.0)}
    # one non-mated search: th = 0.8; only probe 0 (0.9 > 0.8, rank 1) passes
    assert out["tpir"][1.0] == pytest.approx(1 / 3)
    assert out["galleries"]["G"]["non_mated"] == 1


def _write_release(root, n_lmk_lines=None, bad_label=False):
    meta = root / "meta"
    meta.mkdir(parents=True)
    names = ["1.jpg", "2.jpg", "3.jpg"]
    (meta / "ijbc_face_tid_mid.txt").write_text("".join(f"{n} {t} {m}\n" for n, t, m in zip(names, [1, 1, 2], [5, 6, 7])))
    lmk = [f"{n} " + " ".join(str(float(v)) for v in range(10)) + " 0.9\n" for n in names]
    (meta / "ijbc_name_5pts_score.txt").write_text("".join(lmk[: n_lmk_lines or 3]))
    (meta / "ijbc_template_pair_label.txt").write_text(f"1 2 {2 if bad_label else 0}\n1 1 1\n")
    (meta / "ijbc_1N_gallery_G1.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,100,a.jpg\n1,100,b.jpg\n")
    (meta / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n2,100,c.jpg\n")


def test_read_ijb_layout(tmp_path):
    root = tmp_path / "IJBC"
    _write_release(root)
    m = read_ijb(root)
    assert m.num_images == 3 and m.template_ids.tolist() == [1, 1, 2] and m.media_ids.tolist() == [5, 6, 7]
    assert m.landmarks.shape == (3, 5, 2) and m.landmarks[0, 1].tolist() == [2.0, 3.0]
    np.testing.assert_allclose(m.scores, 0.9)
    assert m.pair_labels.tolist() == [0, 1]
    assert m.galleries["G1"][0].tolist() == [1] and m.probes[1].tolist() == [100]


def test_read_ijb_errors(tmp_path):
    _write_release(tmp_path / "a" / "IJBC", n_lmk_lines=2)
    with pytest.raises(ValueError, match="has 3 lines but"):
        read_ijb(tmp_path / "a" / "IJBC")
    _write_release(tmp_path / "b" / "IJBC", bad_label=True)
    with pytest.raises(ValueError, match="0 or 1"):
        read_ijb(tmp_path / "b" / "IJBC")
    with pytest.raises(FileNotFoundError, match="meta"):
        read_ijb(tmp_path / "c")


def _align_available(monkeypatch):
    """Use massface.data.align.align_face; stand in a centre-crop if that module is absent."""
    try:
        import massface.data.align  # noqa: F401
    except ImportError:
        import sys
        import types

        def align_face(image, landmarks5, image_size=(112, 112)):
            import cv2

            assert np.asarray(landmarks5).shape == (5, 2)
            return cv2.resize(np.ascontiguousarray(image[:16, :16]), image_size)

        mod = types.ModuleType("massface.data.align")
        mod.align_face = align_face
        monkeypatch.setitem(sys.modules, "massface.data.align", mod)


def test_extract_pool_verify_pipeline(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    cv2 = pytest.importorskip("cv2")
    _align_available(monkeypatch)
    from massface.evaluation.ijb import extract_ijb_features

    root = tmp_path / "IJBC"
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    rng = np.random.default_rng(0)
    lines_tid, lines_lmk = [], []
    tids = [1, 1, 1, 2, 2, 3]
    mids = [10, 10, 11, 20, 21, 30]
    lmk = "38.3 51.7 73.5 51.5 56.0 71.7 41.5 92.4 70.7 92.2"
    for i, (t, m) in enumerate(zip(tids, mids)):
        name = f"{i}.jpg"
        cv2.imwrite(str(root / "loose_crop" / name), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 100])
        lines_tid.append(f"{name} {t} {m}\n")
        lines_lmk.append(f"{name} {lmk} {0.5 + 0.1 * i:.1f}\n")
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("".join(lines_tid))
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("".join(lines_lmk))
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("1 2 1\n1 3 0\n2 3 0\n")
    meta = read_ijb(root)

    conv = torch.nn.Conv2d(3, 6, 3, stride=4)
    torch.nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))

    def model(x):
        return conv(x).mean(dim=(2, 3))

    out = tmp_path / "feats.npy"
    feats = extract_ijb_features(model, meta, batch_size=4, out_path=out, progress=False)
    assert feats.shape == (6, 6) and np.load(out).shape == (6, 6)
    # insightface flags: flip-sum, raw norm, x faceness; check image 5 by hand
    face = np.load(out)[5]
    img = cv2.cvtColor(cv2.imread(str(root / "loose_crop" / "5.jpg")), cv2.COLOR_BGR2RGB)
    import massface.data.align as al

    a = al.align_face(img, meta.landmarks[5], image_size=(112, 112))
    x = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        ref = (model(x) + model(torch.flip(x, dims=[3]))).numpy()[0] * 1.0
    np.testing.assert_allclose(face, ref, rtol=1e-4, atol=1e-5)
    templates, tf = pool_templates(feats, meta.template_ids, meta.media_ids)
    res = verify_templates(templates, tf, meta.pair_t1, meta.pair_t2, meta.pair_labels, far_targets=(0.5,))
    assert set(res) == {0.5}

    # the same through `massface eval --ijb`
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))

    ts = tmp_path / "net.pt"
    torch.jit.script(Net()).save(str(ts))
    from massface.evaluation.cli import main

    assert main(["--model", str(ts), "--trust-torchscript", "--ijb", str(root), "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]) == 0
    import json

    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["meta"]["ijb"]["preset"] == "insightface"
    np.testing.assert_allclose(np.load(tmp_path / "o" / "ijbc_features.npy"), feats, rtol=1e-5, atol=1e-6)


def test_identify_two_galleries_mean_tpir_and_pooled_cmc():
    # G1 enrols subjects 1, 2; G2 enrols 3, 4; probes of subjects 1 and 3 are mated in one gallery each
    g = np.eye(4, dtype=np.float32)
    probes = np.array([[0.9, 0.2, 0, 0], [0, 0, 0.3, 0.6]], dtype=np.float32)  # p0 -> subj 1, p1 -> subj 3
    templates = np.arange(6)
    feats = np.vstack([g, probes])
    out = identify(
        templates, feats,
        {"G1": (np.array([0, 1]), np.array([1, 2])), "G2": (np.array([2, 3]), np.array([3, 4]))},
        (np.array([4, 5]), np.array([1, 3])),
        fpir_targets=(1.0,), ranks=(1, 2),
    )
    # G1: p0 mated, rank 1, score .9; non-mated p1 top-1 = 0 -> tpir 1.  G2: p1 rank 2 -> tpir 0
    assert out["galleries"]["G1"]["tpir"][1.0] == 1.0 and out["galleries"]["G2"]["tpir"][1.0] == 0.0
    assert out["tpir"][1.0] == 0.5
    assert out["cmc"] == {1: 0.5, 2: 1.0}
