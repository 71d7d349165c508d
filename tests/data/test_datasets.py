"""data.open_dataset: every format opens the same samples; format detection and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from massface.data import FolderDataset, RecordDataset, TFRecordIndexDataset, open_dataset
from massface.data.folder import JsonListDataset, write_folder
from massface.data.recordio import write_records
from massface.data.tfrecord import write_tfrecords


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
