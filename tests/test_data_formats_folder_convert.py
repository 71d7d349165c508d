"""Identity folders, ffem JSON lists, and the ``massface convert`` CLI round trips."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.convert import main
from massface.data.folder import FolderDataset, JsonListDataset, write_folder
from massface.data.recordio import RecordDataset
from massface.data.tfrecord import TFRecordIndexDataset
from massface.data.verification import read_bin


def colour(i: int, size: int = 12) -> np.ndarray:
    return np.full((size, size, 3), ((50 * i) % 256, (90 * i + 30) % 256, 200 - 10 * i), np.uint8)


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 100])[1].tobytes()


def make_folder(root, counts=(2, 1, 3)) -> list[tuple[bytes, int]]:
    samples = []
    for label, n in enumerate(counts):
        d = root / f"id{label}"  # sorted names = label order
        d.mkdir(parents=True)
        for k in range(n):
            data = jpeg(colour(3 * label + k))
            (d / f"{k:03d}.jpg").write_bytes(data)
            samples.append((data, label))
    (root / "id1" / "notes.txt").write_text("ignored")
    return samples


def test_folder_dataset(tmp_path):
    samples = make_folder(tmp_path / "f")
    ds = FolderDataset(tmp_path / "f")
    assert ds.classes == ["id0", "id1", "id2"] and ds.labels.tolist() == [s[1] for s in samples]
    assert [ds.read_encoded(i) for i in range(len(ds))] == [s[0] for s in samples]
    assert np.abs(ds[5][0].astype(int) - colour(8)).max() <= 3
    (tmp_path / "f" / "id2" / "002.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataFormatError, match=r"002\.jpg: sample 5 \(label 2\): undecodable"):
        ds[5]


def test_write_folder_pads_labels_so_sorting_keeps_order(tmp_path):
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


def test_convert_folder_rec_tfrecord_folder(tmp_path, capsys):
    samples = make_folder(tmp_path / "f")
    assert main(["dataset", str(tmp_path / "f"), str(tmp_path / "rec"), "--to", "rec", "--quiet"]) == 0
    rec = RecordDataset(tmp_path / "rec" / "train.rec")
    assert rec.labels.tolist() == [s[1] for s in samples] and rec.image_size == (12, 12)
    assert [rec.read_encoded(i) for i in range(len(rec))] == [s[0] for s in samples]  # bytes copied as is
    assert main(["dataset", str(tmp_path / "rec" / "train.rec"), str(tmp_path / "tfr"), "--to", "tfrecord",
                 "--quiet"]) == 0
    tfr = TFRecordIndexDataset(tmp_path / "tfr" / "train.index", tmp_path / "tfr")
    assert [tfr.read_encoded(i) for i in range(len(tfr))] == [s[0] for s in samples]
    assert main(["dataset", str(tmp_path / "rec" / "train.rec"), str(tmp_path / "back"), "--to", "folder",
                 "--quiet"]) == 0
    back = FolderDataset(tmp_path / "back")
    assert back.labels.tolist() == rec.labels.tolist()
    assert [back.read_encoded(i) for i in range(len(back))] == [s[0] for s in samples]
    assert "6 images, 3 identities" in capsys.readouterr().out


def test_convert_json_to_aligned_folder_and_errors(tmp_path, capsys):
    make_folder(tmp_path / "f", counts=(1, 1))
    spec = {"id0/000.jpg": {"label": 0, "x1": 2, "y1": 2, "x2": 10, "y2": 10},
            "id1/000.jpg": {"label": 1, "x1": 0, "y1": 0, "x2": 12, "y2": 6}}
    (tmp_path / "l.json").write_text(json.dumps(spec))
    assert main(["dataset", str(tmp_path / "l.json"), str(tmp_path / "al"), "--to", "folder", "--image-root",
                 str(tmp_path / "f"), "--size", "16", "16", "--quiet"]) == 0
    al = FolderDataset(tmp_path / "al")
    assert al.labels.tolist() == [0, 1] and al[1][0].shape == (16, 16, 3)
    (tmp_path / "f" / "id0" / "000.jpg").write_bytes(b"\xff\xd8\xff broken")
    assert main(["dataset", str(tmp_path / "f"), str(tmp_path / "r2"), "--to", "rec", "--quiet"]) == 2
    assert "000.jpg" in capsys.readouterr().err
    assert main(["dataset", str(tmp_path / "f"), str(tmp_path / "r3"), "--to", "rec", "--quiet", "--on-error",
                 "skip"]) == 2  # the only image of identity 0 is gone: labels would have a hole -> refused
    assert main(["dataset", str(tmp_path / "f"), str(tmp_path / "f3"), "--to", "folder", "--quiet", "--on-error",
                 "skip"]) == 0
    assert "skipped 1 bad record" in capsys.readouterr().out


def test_convert_pairs_to_bin(tmp_path):
    for name, n in (("A_a", 2), ("B_b", 1)):
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for i in range(1, n + 1):
            (tmp_path / "lfw" / name / f"{name}_{i:04d}.jpg").write_bytes(jpeg(colour(i + len(name))))
    (tmp_path / "pairs.txt").write_text("1\t1\nA_a\t1\t2\nA_a\t2\tB_b\t1\n")
    assert main(["pairs", str(tmp_path / "pairs.txt"), str(tmp_path / "lfw"), str(tmp_path / "lfw.bin")]) == 0
    raw, issame = read_bin(tmp_path / "lfw.bin", decode=False)
    assert issame.tolist() == [True, False]
    assert raw[3] == (tmp_path / "lfw" / "B_b" / "B_b_0001.jpg").read_bytes()
    (tmp_path / "pf" / "7").mkdir(parents=True)
    for k in (0, 1):
        (tmp_path / "pf" / "7" / f"{k}.jpg").write_bytes(jpeg(colour(k)))
    (tmp_path / "pl.txt").write_text("7 1\n")
    assert main(["pairs", str(tmp_path / "pl.txt"), str(tmp_path / "pf"), str(tmp_path / "p.bin"),
                 "--layout", "folders"]) == 0
    images, issame = read_bin(tmp_path / "p.bin")
    assert images.shape == (2, 12, 12, 3) and issame.tolist() == [True]
    assert main(["pairs", str(tmp_path / "missing.txt"), str(tmp_path / "pf"), str(tmp_path / "x.bin")]) == 2
