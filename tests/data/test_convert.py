"""data.convert: the conversion CLI between folder, RecordIO, TFRecord and .bin; the deprecated open_dataset."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from massface.data.convert import main
from massface.data.folder import FolderDataset
from massface.data.recordio import RecordDataset, write_records
from massface.data.tfrecord import TFRecordIndexDataset
from massface.data.verification import read_bin


def test_convert_open_dataset_is_deprecated_but_keeps_its_defaults(tmp_path, samples):
    from massface.data import convert

    write_records(tmp_path, samples)
    (tmp_path / "property").unlink()
    with pytest.warns(DeprecationWarning, match="massface.data.open_dataset"):
        ds = convert.open_dataset(str(tmp_path / "train.rec"), "rec")
    assert len(ds) == 6



def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 100])[1].tobytes()



def test_convert_folder_rec_tfrecord_folder(tmp_path, capsys, make_folder):
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



def test_convert_json_to_aligned_folder_and_errors(tmp_path, capsys, make_folder):
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



def test_convert_pairs_to_bin(tmp_path, colour):
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
