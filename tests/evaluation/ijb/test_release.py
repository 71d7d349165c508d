"""evaluation.ijb.release: reading an IJB release layout and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.ijb import (
    read_ijb,
)

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



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
