"""evaluation.ijb.features: feature flags and the extract-pool-verify pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.ijb import (
    FEATURE_PRESETS,
    FeatureFlags,
    combine_features,
    pool_templates,
    read_ijb,
    verify_templates,
)

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



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



def test_extract_pool_verify_pipeline(tmp_path):
    torch = pytest.importorskip("torch")
    cv2 = pytest.importorskip("cv2")
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
