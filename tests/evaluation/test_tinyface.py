"""evaluation.tinyface: the reader on synthetic trees, the CMC against a loop and by hand, hostile trees."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.synthetic import SynthFaces
from massface.evaluation.embedding import embed_images
from massface.evaluation.tinyface import (
    DISTRACTOR_LABEL,
    TinyFaceSet,
    evaluate_tinyface,
    format_tinyface,
    read_tinyface,
    tinyface_cmc,
)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())


def make_tree(root: Path, n_ids: int = 5, n_distractors: int = 6, size: int = 20) -> Path:
    """``root/Probe`` (1 image per identity), ``root/Gallery_Match`` (2 per identity), ``root/Gallery_Distractor``
    (held-out faces, some in a sub-folder) — TinyFace's naming ``<identity>_<index>.<ext>``, identities 11, 12, ..."""
    faces = SynthFaces(n_ids, 3, seed=1, image_size=size, difficulty=0.2)
    for k in range(len(faces)):
        img, label = faces[k]
        ident, j = 11 + int(label), k % 3
        folder = "Probe" if j == 0 else "Gallery_Match"
        _write(root / folder / f"{ident}_{j}.{'png' if j == 2 else 'jpg'}", img)
    others = SynthFaces(n_distractors, 1, seed=1, image_size=size, split="heldout")
    for k in range(n_distractors):
        sub = "a" if k % 2 else ""
        _write(root / "Gallery_Distractor" / sub / f"dis_{k:03d}_face1.jpg", others[k][0])
    return root


# ----------------------------------------------------------------------------------------------- reader
def test_read_tree_labels_and_order(tmp_path) -> None:
    root = make_tree(tmp_path / "tf")
    (root / "Probe" / "notes.txt").write_text("not an image")
    (root / "Probe" / ".DS_Store").write_bytes(b"\0")
    ds = read_tinyface(root)
    assert isinstance(ds, TinyFaceSet) and ds.root == root
    assert ds.num_probes == 5 and ds.num_match == 10 and ds.num_distractors == 6 and ds.num_identities == 5
    assert ds.probe_labels.tolist() == [11, 12, 13, 14, 15]
    assert ds.gallery_labels[:10].tolist() == [11, 11, 12, 12, 13, 13, 14, 14, 15, 15]
    assert (ds.gallery_labels[10:] == DISTRACTOR_LABEL).all()
    assert any(os.sep + "a" + os.sep in p for p in ds.gallery_paths[10:])  # sub-folders are walked
    assert [Path(p).name for p in ds.ignored] == ["notes.txt"]  # hidden files are skipped silently
    assert ds.summary()["ignored_files"] == 1 and ds.summary()["distractors"] == 6
    assert ds.image_paths == ds.probe_paths + ds.gallery_paths


def test_release_layout_and_no_distractors(tmp_path) -> None:
    make_tree(tmp_path / "tinyface" / "Testing_Set")
    ds = read_tinyface(tmp_path)  # the release's tinyface/Testing_Set/ is found
    assert ds.root == tmp_path / "tinyface" / "Testing_Set"
    for p in (tmp_path / "tinyface" / "Testing_Set" / "Gallery_Distractor").rglob("*.jpg"):
        p.unlink()
    with pytest.raises(DataFormatError, match="Gallery_Distractor: folder holds no image .*distractors=False"):
        read_tinyface(tmp_path)
    ds = read_tinyface(tmp_path, distractors=False)
    assert ds.num_distractors == 0 and ds.num_gallery == 10


@pytest.mark.parametrize("name", ["abc_1.jpg", "12.jpg", "12_.jpg", "-3_1.jpg", "99999999999999999999999_1.jpg"])
def test_bad_probe_name_names_the_file(tmp_path, name) -> None:
    root = make_tree(tmp_path / "tf", n_ids=2, n_distractors=1)
    _write(root / "Probe" / name, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=name.replace(".", r"\.")):
        read_tinyface(root)


def test_hostile_trees(tmp_path) -> None:
    root = make_tree(tmp_path / "tf", n_ids=2, n_distractors=1)
    _write(root / "Probe" / "77_0.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"77_0\.jpg: probe identity 77 has no image in .*Gallery_Match"):
        read_tinyface(root)
    (root / "Probe" / "77_0.jpg").unlink()
    bad_match = root / "Gallery_Match" / "x.png"
    _write(bad_match, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"Gallery_Match/x\.png: file name must be <identity>_<index>"):
        read_tinyface(root)
    bad_match.unlink()
    for p in (root / "Probe").iterdir():
        p.unlink()
    with pytest.raises(DataFormatError, match="Probe: folder holds no image"):
        read_tinyface(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="TinyFace folder not found: .*Probe"):
        read_tinyface(empty)
    (empty / "Probe").mkdir()
    (empty / "Gallery_Match").mkdir()
    with pytest.raises(FileNotFoundError, match="Gallery_Distractor"):
        read_tinyface(empty)


# ----------------------------------------------------------------------------------------------- CMC
def _loop_cmc(p, pl, g, gl, ranks):
    """Plain re-implementation: sort the gallery per probe, look for a mate among the first k."""
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    hits = dict.fromkeys(ranks, 0)
    for i in range(len(p)):
        order = sorted(range(len(g)), key=lambda j: -float(g[j] @ p[i]))
        for k in ranks:
            hits[k] += any(gl[j] == pl[i] and gl[j] != DISTRACTOR_LABEL for j in order[:k])
    return {k: hits[k] / len(p) for k in ranks}


@pytest.mark.parametrize("seed", range(4))
def test_cmc_matches_a_loop(seed) -> None:
    rng = np.random.default_rng(seed)
    n_ids, d = int(rng.integers(3, 9)), int(rng.integers(2, 6))
    pl = rng.integers(0, n_ids, 30)
    gl = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, 20), np.full(40, DISTRACTOR_LABEL)])
    p, g = rng.normal(size=(30, d)), rng.normal(size=(gl.size, d))
    ranks = (1, 2, 5, 20, 500)
    want = _loop_cmc(p, pl, g, gl, ranks)
    got = tinyface_cmc(p, pl, g, gl, ranks=ranks)
    assert got.keys() == want.keys()
    for k in ranks:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    assert tinyface_cmc(p, pl, g, gl, ranks=ranks, chunk=1) == got  # probe blocks change nothing
    assert got[500] == 1.0


def test_cmc_by_hand() -> None:
    # cosine of probe e_i with gallery row j is S[j, i] exactly (a 4th coordinate makes every row unit-norm)
    s = np.array([[0.5, 0.1, 0.15],   # id 7
                  [0.6, 0.0, 0.05],   # distractor
                  [0.0, 0.3, 0.2],    # id 8
                  [0.1, 0.4, 0.3],    # distractor
                  [0.0, 0.35, 0.1],   # id 9
                  [0.2, 0.5, 0.4],    # distractor
                  [0.4, 0.0, 0.0]])   # id 7
    g = np.hstack([s, np.sqrt(1 - (s ** 2).sum(1, keepdims=True))])
    p = np.eye(3, 4)
    gl = np.array([7, -100, 8, -100, 9, -100, 7])
    # probe 7: best mate 0.5, beaten by 0.6 -> rank 2; probe 8: mate 0.3 < 0.4, 0.35, 0.5 -> rank 4;
    # probe 9: mate 0.1 < 0.15, 0.2, 0.3, 0.4 -> rank 5
    got = tinyface_cmc(p, [7, 8, 9], g, gl, ranks=(1, 2, 4, 5))
    assert got == pytest.approx({1: 0.0, 2: 1 / 3, 4: 2 / 3, 5: 1.0})


def test_distractors_never_match_and_ties_count_against() -> None:
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    mate = np.array([[0.9, 0.1], [0.1, 0.9]])
    # each probe's exact copy sits in the gallery as a distractor; as a mate it would give rank 1
    g = np.vstack([mate, p])
    assert tinyface_cmc(p, [1, 2], g, [1, 2, -100, -100], ranks=(1, 2)) == {1: 0.0, 2: 1.0}
    # a distractor scoring exactly as the mate ties: the tie counts against the probe
    assert tinyface_cmc(p, [1, 2], np.vstack([mate, mate]), [1, 2, -100, -100], ranks=(1, 2)) == {1: 0.0, 2: 1.0}
    # another marker can be named
    assert tinyface_cmc(p, [1, 2], g, [1, 2, -1, -1], ranks=(1,), distractor_label=-1) == {1: 0.0}


def test_cmc_hostile_inputs() -> None:
    p, g = np.eye(2), np.eye(2)
    with pytest.raises(ValueError, match="no mate in the gallery .*identity 5"):
        tinyface_cmc(p, [1, 5], g, [1, 2])
    with pytest.raises(ValueError, match="distractor label"):
        tinyface_cmc(p, [1, -100], g, [1, 2])
    with pytest.raises(ValueError, match="every gallery row is a distractor"):
        tinyface_cmc(p, [1, 2], g, [-100, -100])
    with pytest.raises(ValueError, match="probe_labels has 1 entries, expected 2"):
        tinyface_cmc(p, [1], g, [1, 2])
    with pytest.raises(ValueError, match="dimension 2 but gallery_emb 3"):
        tinyface_cmc(p, [1, 2], np.eye(2, 3), [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        tinyface_cmc(np.array([[np.nan, 1.0], [0.0, 1.0]]), [1, 2], g, [1, 2])
    with pytest.raises(ValueError, match="all-zero rows"):
        tinyface_cmc(p, [1, 2], np.array([[1.0, 0.0], [0.0, 0.0]]), [1, 2])
    with pytest.raises(ValueError, match="must be integers"):
        tinyface_cmc(p, [1.0, 2.0], g, [1, 2])
    with pytest.raises(ValueError, match="ranks must be positive"):
        tinyface_cmc(p, [1, 2], g, [1, 2], ranks=(0,))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        tinyface_cmc(p, [1, 2], g, [1, 2], chunk=0)


# ----------------------------------------------------------------------------------------------- evaluation
def test_evaluate_matches_embed_then_cmc(tmp_path, TinyNet) -> None:
    root = make_tree(tmp_path / "tf")
    net = TinyNet()
    res = evaluate_tinyface(net, root, image_size=16, batch_size=7, ranks=(1, 5, 20))
    ds = read_tinyface(root)
    imgs = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB), (16, 16),
                                interpolation=cv2.INTER_AREA) for p in ds.image_paths])
    emb = embed_images(net, imgs, flip=True)
    want = tinyface_cmc(emb[:5], ds.probe_labels, emb[5:], ds.gallery_labels, ranks=(1, 5, 20))
    assert res.cmc == pytest.approx(want)
    assert res.num_probes == 5 and res.num_gallery == 16 and res.num_distractors == 6 and res.flip
    assert res.image_size == (16, 16) and res.probe_ranks.shape == (5,)
    assert res.summary()["rank_1"] == res.cmc[1]
    text = format_tinyface(res)
    assert "rank-1 %" in text and "distractors" in text
    assert format_tinyface(res, markdown=True).startswith("| rank-1 %")
    # a listed set is accepted as well, and upscaling a 20 px face to 24 px works
    assert evaluate_tinyface(net, ds, image_size=(24, 24), flip=False).flip is False


def test_evaluate_bad_images_name_the_file(tmp_path, TinyNet) -> None:
    root = make_tree(tmp_path / "tf", n_ids=2, n_distractors=2)
    net = TinyNet()
    zero = root / "Gallery_Distractor" / "zero.jpg"
    zero.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"zero\.jpg: empty image payload"):
        evaluate_tinyface(net, root, image_size=16)
    zero.unlink()
    png = root / "Gallery_Match" / "11_2.png"
    png.write_bytes(png.read_bytes()[:60])  # truncated after its header
    with pytest.raises(DataFormatError, match=r"11_2\.png: undecodable"):
        evaluate_tinyface(net, root, image_size=16)
    _write(png, np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"11_0\.jpg: .*max_pixels"):
        evaluate_tinyface(net, root, image_size=16, max_pixels=100)
    outside = tmp_path / "outside.jpg"
    _write(outside, np.zeros((20, 20, 3), np.uint8))
    (root / "Gallery_Distractor" / "link.jpg").symlink_to(outside)
    with pytest.raises(DataFormatError, match=r"link\.jpg: .*outside"):
        evaluate_tinyface(net, root, image_size=16)
