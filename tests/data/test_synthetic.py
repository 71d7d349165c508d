"""SynthFaces: determinism, shapes, identity structure, held-out pairs and export plumbing; renders bit-identical to the code before the split of ``SynthFaces._render`` by concern (issue 13)."""

from __future__ import annotations

import pickle
import sys
import types
import warnings

import numpy as np
import pytest

from massface.data import RecordDataset
from massface.data.align import ARCFACE_TEMPLATE
from massface.data.synthetic import SynthFaces


def test_export_bin_is_the_heldout_verification_set(tmp_path):
    from massface.data import read_bin

    paths = SynthFaces(3, 2, seed=4, difficulty=0.3, image_size=32).export(tmp_path, n_folds=2, pairs_per_fold=5,
                                                                           progress=True)
    images, issame = read_bin(paths["bin"])
    heldout = SynthFaces.heldout(40, 6, seed=4, difficulty=0.3, image_size=32)
    ref, ref_same = heldout.verification_pairs(2, 5)
    np.testing.assert_array_equal(issame, ref_same)
    assert images.shape == ref.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(RecordDataset(paths["rec"])) == 6



@pytest.mark.parametrize("n, m, seed, difficulty, size, split, images, landmarks", [
    (40, 3, 0, 0.5, 112, "train", "49a2102494ae8b0291bcc4b402fb472b", "b6699abb6f44271a0f58e9084368ef65"),
    (30, 4, 7, 1.0, 64, "heldout", "b46551fda487f9fb67e551e617c670a9", "106d49a14043fc9245fccb0e38492439"),
    (25, 2, 123, 0.0, 150, "train", "dba08c69bb4970011d69a42f3eb6f255", "fa5e987aa0d3df0b0b2a2d53577e2a47"),
])
def test_render_is_bit_identical(n: int, m: int, seed: int, difficulty: float, size: int, split: str,
                                 images: str, landmarks: str, _digest) -> None:
    ds = SynthFaces(n, m, seed=seed, difficulty=difficulty, image_size=size, split=split)  # type: ignore[arg-type]
    rendered = [ds.render(i, j) for i in range(n) for j in range(m)]
    assert _digest(np.stack([r[0] for r in rendered])) == images
    assert _digest(np.stack([r[1] for r in rendered])) == landmarks



def test_verification_pairs_are_bit_identical(_digest) -> None:
    images, issame = SynthFaces(4, 2, seed=1).verification_pairs(2, 5, identities_per_fold=4, images_per_identity=3)
    assert _digest(images, issame) == "3cc554950a238ac695c822c4412747d0"



def test_shapes_dtypes_labels():
    ds = SynthFaces(3, 4, seed=1)
    assert len(ds) == 12
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(3), 4))
    image, label = ds[5]
    assert image.shape == (112, 112, 3) and image.dtype == np.uint8
    assert label == 1 and isinstance(label, int)
    assert ds[-1][1] == 2
    small = SynthFaces(2, 2, seed=1, image_size=48)
    assert small[3][0].shape == (48, 48, 3)
    samples = list(ds.iter_samples(2, 6))
    assert [lab for _, lab in samples] == [0, 0, 1, 1]
    np.testing.assert_array_equal(samples[3][0], ds[5][0])



def test_deterministic_and_order_independent():
    a = SynthFaces(5, 5, seed=7, difficulty=0.6)
    b = SynthFaces(5, 5, seed=7, difficulty=0.6)
    forward = [a[k][0] for k in range(len(a))]
    backward = [b[k][0] for k in reversed(range(len(b)))][::-1]
    for x, y in zip(forward, backward):
        np.testing.assert_array_equal(x, y)
    # one image regenerated alone, and from a bigger dataset of the same seed (identity i is the same)
    np.testing.assert_array_equal(SynthFaces(50, 9, seed=7, difficulty=0.6).image(3, 4), a.image(3, 4))
    other = SynthFaces(5, 5, seed=8, difficulty=0.6)
    assert not np.array_equal(other.image(0, 0), a.image(0, 0))
    assert not np.array_equal(a.image(0, 0), a.image(0, 1))
    # a pickled copy (DataLoader worker) renders the same
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).image(2, 3), a.image(2, 3))



def test_identity_offset_tiles_namespace():
    whole = SynthFaces(6, 2, seed=3)
    part = SynthFaces(3, 2, seed=3, identity_offset=3)
    np.testing.assert_array_equal(whole.image(4, 1), part.image(1, 1))
    np.testing.assert_array_equal(whole.identity_vector(5), part.identity_vector(2))



def test_difficulty_shrinks_identity_spread():
    easy = SynthFaces(40, 1, seed=0, difficulty=0.0)
    hard = SynthFaces(40, 1, seed=0, difficulty=1.0)
    ve = np.stack([easy.identity_vector(i) for i in range(40)])
    vh = np.stack([hard.identity_vector(i) for i in range(40)])
    assert ve.min() >= 0.0 and ve.max() <= 1.0
    spread_e = np.linalg.norm(ve[:, None] - ve[None], axis=-1).mean()
    spread_h = np.linalg.norm(vh[:, None] - vh[None], axis=-1).mean()
    assert spread_h < 0.6 * spread_e



def test_identity_separable_in_pixels_at_low_difficulty():
    ds = SynthFaces(6, 5, seed=0, difficulty=0.0)
    x = np.stack([ds[k][0][30:90, 30:82].astype(np.float32).ravel() for k in range(len(ds))])
    d = ((x[:, None] - x[None]) ** 2).mean(-1)
    same = ds.labels[:, None] == ds.labels[None]
    off_diag = ~np.eye(len(ds), dtype=bool)
    assert d[same & off_diag].mean() < 0.7 * d[~same].mean()



def test_landmarks_follow_the_face():
    ds = SynthFaces(4, 4, seed=2, difficulty=0.0)
    lms = np.stack([ds.render(i, j)[1] for i in range(4) for j in range(4)])
    assert lms.shape == (16, 5, 2)
    # unposed layout is built around the ArcFace template; mild pose keeps the mean close to it
    assert np.abs(lms.mean(0) - ARCFACE_TEMPLATE).max() < 6.0
    assert (lms[:, 0, 0] < lms[:, 1, 0]).all() and (lms[:, 3, 1] > lms[:, 2, 1]).all()



def test_heldout_identities_are_disjoint_from_train():
    train = SynthFaces(30, 1, seed=4)
    held = SynthFaces.heldout(30, 1, seed=4)
    vt = np.stack([train.identity_vector(i) for i in range(30)])
    vh = np.stack([held.identity_vector(i) for i in range(30)])
    assert np.linalg.norm(vt[:, None] - vh[None], axis=-1).min() > 1e-3
    assert not np.array_equal(train.image(0, 0), held.image(0, 0))



def test_verification_pairs_structure():
    ds = SynthFaces(10, 3, seed=5)
    folds, per_fold, ipf = 3, 8, 6
    images, issame = ds.verification_pairs(folds, per_fold, identities_per_fold=ipf, images_per_identity=4)
    assert images.shape == (2 * folds * 2 * per_fold, 112, 112, 3) and images.dtype == np.uint8
    assert issame.dtype == np.bool_ and issame.shape == (folds * 2 * per_fold,)
    expected = np.tile(np.r_[np.ones(per_fold, bool), np.zeros(per_fold, bool)], folds)
    np.testing.assert_array_equal(issame, expected)
    refs, same2 = ds.pair_specs(folds, per_fold, identities_per_fold=ipf, images_per_identity=4)
    np.testing.assert_array_equal(same2, issame)
    # images are the held-out renders of the referenced (identity, image)
    held = SynthFaces.heldout(folds * ipf, 4, seed=5)
    for k in (0, 9, len(refs) - 1):
        np.testing.assert_array_equal(images[2 * k], held.image(*refs[k, 0]))
        np.testing.assert_array_equal(images[2 * k + 1], held.image(*refs[k, 1]))



def test_pair_specs_lfw_layout_and_validity():
    ds = SynthFaces(2, 2, seed=6)
    refs, issame = ds.pair_specs()  # LFW View 2: 10 × (300 + 300), no rendering
    assert refs.shape == (6000, 2, 2) and issame.sum() == 3000
    ids = refs[:, :, 0]
    np.testing.assert_array_equal(ids[:, 0] == ids[:, 1], issame)
    assert (refs[issame, 0, 1] != refs[issame, 1, 1]).all()  # a same pair uses two different images
    fold_ids = [set(ids[f * 600:(f + 1) * 600].ravel().tolist()) for f in range(10)]
    for f in range(10):
        for g in range(f + 1, 10):
            assert not fold_ids[f] & fold_ids[g]
        keys = {tuple(sorted(map(tuple, pair.tolist()))) for pair in refs[f * 600:(f + 1) * 600]}
        assert len(keys) == 600  # no duplicated pair within a fold
    again, _ = ds.pair_specs()
    np.testing.assert_array_equal(again, refs)
    assert not np.array_equal(ds.pair_specs(seed=1)[0], refs)



def test_bad_arguments():
    with pytest.raises(ValueError, match="num_identities"):
        SynthFaces(0, 3)
    with pytest.raises(ValueError, match="difficulty"):
        SynthFaces(2, 2, difficulty=1.5)
    with pytest.raises(ValueError, match="image_size"):
        SynthFaces(2, 2, image_size=8)
    with pytest.raises(ValueError, match="split"):
        SynthFaces(2, 2, split="test")  # type: ignore[arg-type]
    ds = SynthFaces(2, 2)
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds.image(2, 0)
    with pytest.raises(ValueError, match="pairs_per_fold"):
        ds.pair_specs(1, 100, identities_per_fold=3, images_per_identity=3)



def test_export_plugs_into_writer_signatures(tmp_path, monkeypatch):
    calls: dict[str, object] = {}

    def write_records(directory, samples, *, progress=False, total=None):
        calls["records"] = (directory, [(img.shape, img.dtype, lab) for img, lab in samples])
        calls["total"] = total

    def write_bin(path, images, issame):
        calls["bin"] = (path, images.shape, issame.copy())

    monkeypatch.setitem(sys.modules, "massface.data.recordio",
                        types.SimpleNamespace(write_records=write_records))
    monkeypatch.setitem(sys.modules, "massface.data.verification", types.SimpleNamespace(write_bin=write_bin))
    ds = SynthFaces(2, 2, seed=0, image_size=32)
    paths = ds.export(tmp_path / "out", n_folds=1, pairs_per_fold=2)
    directory, samples = calls["records"]
    assert directory == tmp_path / "out"
    assert samples == [((32, 32, 3), np.uint8, lab) for lab in (0, 0, 1, 1)] and calls["total"] == 4
    path, shape, issame = calls["bin"]
    assert path == paths["bin"] and shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(issame, [True, True, False, False])


def test_num_folds_is_a_deprecated_name_of_n_folds():
    ds = SynthFaces(3, 2, seed=1, image_size=32)
    with pytest.warns(DeprecationWarning, match=r"pair_specs\(num_folds=\) is deprecated"):
        old = ds.pair_specs(num_folds=2, pairs_per_fold=3)
    new = ds.pair_specs(n_folds=2, pairs_per_fold=3)
    assert all((a == b).all() for a, b in zip(old, new))


# ------------------------------------------------------------------------------ dirty on purpose
def test_duplicate_identities_and_label_noise_with_ground_truth():
    clean = SynthFaces(20, 5, seed=1, image_size=32)
    dirty = SynthFaces(20, 5, seed=1, image_size=32, duplicate_identities=0.1, label_noise=0.05)
    pairs = dirty.duplicate_pairs
    assert pairs.shape == (2, 2) and len(set(pairs.ravel().tolist())) == 4
    for i, j in pairs.tolist():  # one person under two labels, other images of it
        np.testing.assert_array_equal(dirty.identity_vector(i), dirty.identity_vector(j))
        assert not np.array_equal(dirty.image(i, 0), dirty.image(j, 0))
        assert (dirty.true_identity[dirty.labels == j] == i).sum() >= 4
    clean_labels = np.repeat(np.arange(20), 5)
    noisy = dirty.labels != clean_labels
    assert noisy.sum() == 5 and dirty.labels.dtype == np.int64
    assert np.array_equal(dirty.true_identity[~noisy & ~np.isin(clean_labels, pairs[:, 1])], clean_labels[
        ~noisy & ~np.isin(clean_labels, pairs[:, 1])])
    image, label = dirty[int(np.flatnonzero(noisy)[0])]  # the image shows its true person, labelled wrongly
    k = int(np.flatnonzero(noisy)[0])
    np.testing.assert_array_equal(image, clean.image(k // 5, k % 5))
    assert label == dirty.labels[k] != k // 5
    untouched = [t for t in range(20) if t not in pairs[:, 1]][0]
    np.testing.assert_array_equal(dirty.image(untouched, 3), clean.image(untouched, 3))  # same renders
    again = SynthFaces(20, 5, seed=1, image_size=32, duplicate_identities=0.1, label_noise=0.05)
    assert np.array_equal(again.labels, dirty.labels) and np.array_equal(again.duplicate_pairs, pairs)
    assert clean.duplicate_pairs.shape == (0, 2) and np.array_equal(clean.true_identity, clean.labels)


def test_dirty_export_writes_the_ground_truth(tmp_path):
    from massface.data.label_lists import read_label_pairs

    dirty = SynthFaces(6, 3, seed=2, image_size=32, duplicate_identities=0.2, label_noise=0.1)
    paths = dirty.export(tmp_path / "faces", bin_name=None)
    truth = np.load(paths["true_identity"], allow_pickle=False)
    order = np.argsort(dirty.labels, kind="stable")  # RecordIO groups the images by label
    records = RecordDataset(paths["rec"])
    assert np.array_equal(np.asarray(records.labels), dirty.labels[order])
    assert np.array_equal(truth, dirty.true_identity[order])
    first_noisy = int(np.flatnonzero(dirty.labels[order] != np.repeat(np.arange(6), 3)[order])[0])
    assert truth[first_noisy] == dirty.true_identity[order[first_noisy]]
    assert np.array_equal(read_label_pairs(paths["duplicate_pairs"]), dirty.duplicate_pairs)
    assert "true_identity" not in SynthFaces(6, 3, seed=2, image_size=32).export(tmp_path / "clean", bin_name=None)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(duplicate_identities=0.6), "duplicate_identities"),
    (dict(duplicate_identities=float("nan")), "duplicate_identities"),
    (dict(label_noise=1.0), "label_noise"),
    (dict(label_noise=-0.1), "label_noise"),
    (dict(label_noise="0.1"), "label_noise"),
])
def test_hostile_dirt_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthFaces(4, 2, **kwargs)
    with pytest.raises(ValueError, match="at least 2 identities"):
        SynthFaces(1, 4, label_noise=0.5)
