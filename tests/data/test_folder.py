"""FolderDataset, write_folder and JsonListDataset."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.folder import FolderDataset, JsonListDataset, write_folder


def test_folder_dataset(tmp_path, colour, make_folder):
    samples = make_folder(tmp_path / "f")
    ds = FolderDataset(tmp_path / "f")
    assert ds.classes == ["id0", "id1", "id2"] and ds.labels.tolist() == [s[1] for s in samples]
    assert [ds.read_encoded(i) for i in range(len(ds))] == [s[0] for s in samples]
    assert np.abs(ds[5][0].astype(int) - colour(8)).max() <= 3
    (tmp_path / "f" / "id2" / "002.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataFormatError, match=r"002\.jpg: sample 5 \(label 2\): undecodable"):
        ds[5]



def test_write_folder_pads_labels_so_sorting_keeps_order(tmp_path, colour):
    samples = [(colour(i), i) for i in range(12)]
    assert write_folder(tmp_path / "o", samples, num_classes=12) == 12
    ds = FolderDataset(tmp_path / "o")
    assert ds.classes[:3] == ["00", "01", "02"] and ds.labels.tolist() == list(range(12))
    with pytest.raises(ValueError, match="label"):
        write_folder(tmp_path / "p", [(colour(0), 12)], num_classes=12)



def test_json_list_crops_boxes(tmp_path):
    img = np.zeros((40, 50, 3), np.uint8)
    img[10:20, 5:30] = (255, 0, 0)
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "imgs" / "a" / "x.png"), img[:, :, ::-1])
    spec = {"a/x.png": {"label": 3, "x1": 5, "y1": 10, "x2": 29.2, "y2": 20}}
    (tmp_path / "l.json").write_text(json.dumps(spec))
    ds = JsonListDataset(tmp_path / "l.json", tmp_path / "imgs")
    crop, label = ds[0]
    assert label == 3 and crop.shape == (10, 25, 3) and (crop == (255, 0, 0)).all()
    assert JsonListDataset(tmp_path / "l.json", tmp_path / "imgs", output_size=(16, 16))[0][0].shape == (16, 16, 3)
    for bad in ({"label": -1, "x1": 0, "y1": 0, "x2": 1, "y2": 1}, {"label": 0, "x1": 5, "y1": 0, "x2": 1, "y2": 1},
                {"label": 0, "x1": 0}):
        (tmp_path / "b.json").write_text(json.dumps({"a/x.png": bad}))
        with pytest.raises(DataFormatError, match=r"b\.json"):
            JsonListDataset(tmp_path / "b.json", tmp_path / "imgs")
    (tmp_path / "o.json").write_text(json.dumps({"a/x.png": {"label": 0, "x1": 60, "y1": 0, "x2": 70, "y2": 5}}))
    with pytest.raises(DataFormatError, match="outside"):
        JsonListDataset(tmp_path / "o.json", tmp_path / "imgs")[0]
