"""massface.data.open_dataset: one format → reader map (convert and the trainer), its defaults, the old
locations (convert.open_dataset, data._base) and the (height, width) image-size convention."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from massface.data import FolderDataset, RecordDataset, SynthFaces, TFRecordIndexDataset, open_dataset
from massface.data.folder import JsonListDataset, write_folder
from massface.data.recordio import write_records
from massface.data.tfrecord import write_tfrecords


@pytest.fixture(scope="module")
def samples():
    return list(SynthFaces(3, 2, seed=0, image_size=32).iter_samples())


def test_every_format_opens_the_same_samples(tmp_path, samples):
    write_records(tmp_path / "rec", samples)
    index = write_tfrecords(tmp_path / "tfr", samples)
    write_folder(tmp_path / "folder", samples, num_classes=3)
    opened = {"rec": open_dataset(tmp_path / "rec" / "train.rec"), "tfrecord": open_dataset(index),
              "folder": open_dataset(tmp_path / "folder")}
    assert isinstance(opened["rec"], RecordDataset) and isinstance(opened["tfrecord"], TFRecordIndexDataset)
    assert isinstance(opened["folder"], FolderDataset)
    for ds in opened.values():
        np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 2, 2])
    explicit = open_dataset(tmp_path / "tfr" / "train.index", "tfrecord", image_root=tmp_path / "tfr",
                            transform=lambda img: img.shape)
    assert explicit[0] == ((32, 32, 3), 0)


def test_rec_requires_its_property_file_unless_told(tmp_path, samples):
    write_records(tmp_path, samples)
    (tmp_path / "property").unlink()
    with pytest.raises(FileNotFoundError, match="property"):
        open_dataset(tmp_path / "train.rec")
    assert len(open_dataset(tmp_path / "train.rec", require_property=False)) == 6


def test_json_list_needs_an_image_root_and_crops_to_height_width(tmp_path, samples):
    import json

    write_folder(tmp_path / "img", samples, num_classes=3)
    files = sorted(p.relative_to(tmp_path / "img").as_posix() for p in (tmp_path / "img").rglob("*.jpg"))
    entries = {f: {"label": int(f.split("/")[0]), "x1": 2, "y1": 4, "x2": 30, "y2": 28} for f in files}
    (tmp_path / "l.json").write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="image_root"):
        open_dataset(tmp_path / "l.json")
    ds = open_dataset(tmp_path / "l.json", image_root=tmp_path / "img", size=(20, 12))
    assert isinstance(ds, JsonListDataset) and ds[0][0].shape == (20, 12, 3)


def test_unknown_format_and_undetectable_path(tmp_path):
    with pytest.raises(ValueError, match="unknown source format"):
        open_dataset(tmp_path, "lmdb")
    with pytest.raises(ValueError, match="cannot tell the format"):
        open_dataset(tmp_path / "x.bin")


def test_convert_open_dataset_is_deprecated_but_keeps_its_defaults(tmp_path, samples):
    from massface.data import convert

    write_records(tmp_path, samples)
    (tmp_path / "property").unlink()
    with pytest.warns(DeprecationWarning, match="massface.data.open_dataset"):
        ds = convert.open_dataset(str(tmp_path / "train.rec"), "rec")
    assert len(ds) == 6


def test_base_module_still_exports_the_encoded_machinery():
    from massface.data import _base, encoded

    for name in ("EncodedImageDataset", "FileCache", "decode_image", "encode_image", "size_hints"):
        assert getattr(_base, name) is getattr(encoded, name)


@pytest.mark.parametrize("size, hw", [(112, (112, 112)), ((112, 96), (112, 96)), (np.int64(64), (64, 64))])
def test_image_hw_is_height_width(size, hw):
    from massface.data._guard import image_hw

    assert image_hw(size) == hw


@pytest.mark.parametrize("bad", [0, -3, True, (112,), (112, 0), (1.5, 2), "112", None])
def test_image_hw_refuses(bad):
    from massface.data._guard import image_hw

    with pytest.raises(ValueError, match="height, width"):
        image_hw(bad)


def test_export_bin_is_the_heldout_verification_set(tmp_path):
    from massface.data import read_bin

    paths = SynthFaces(3, 2, seed=4, difficulty=0.3, image_size=32).export(tmp_path, num_folds=2, pairs_per_fold=5,
                                                                           progress=True)
    images, issame = read_bin(paths["bin"])
    heldout = SynthFaces.heldout(40, 6, seed=4, difficulty=0.3, image_size=32)
    ref, ref_same = heldout.verification_pairs(2, 5)
    np.testing.assert_array_equal(issame, ref_same)
    assert images.shape == ref.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(RecordDataset(paths["rec"])) == 6
