"""MXNet RecordIO reader/writer: hand-built byte fixtures from the spec, round trips, bad input, workers."""

from __future__ import annotations

import pickle
import struct

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.recordio import RecordDataset, RecordIOReader, frame_record, unpack_payload, write_records

MAGIC = 0xCED7230A



def jpeg(value: int, size: int = 16, comment: bytes = b"") -> bytes:
    """A small JPEG (RGB gradient + ``value``); ``comment`` goes into a COM segment right after SOI."""
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.stack([xx * 8 + value, yy * 8, np.full_like(xx, value * 3)], -1).clip(0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 95])
    data = enc.tobytes()
    if comment:
        data = data[:2] + b"\xff\xfe" + struct.pack(">H", 2 + len(comment)) + comment + data[2:]
    return data



def rgb_of(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]



def part(cflag: int, data: bytes) -> bytes:
    return struct.pack("<II", MAGIC, (cflag << 29) | len(data)) + data + b"\0" * (-len(data) % 4)



def payload(label, image: bytes, key: int, id2: int = 0) -> bytes:
    if isinstance(label, (list, tuple)):
        return struct.pack("<IfQQ", len(label), 0.0, key, id2) + struct.pack(f"<{len(label)}f", *label) + image
    return struct.pack("<IfQQ", 0, float(label), key, id2) + image



def build_fixture(tmp_path, with_property: bool = True):
    """insightface layout by hand (face2rec2 style: image label arrays [class, 1]); image key 2 holds the magic
    word at a 4-aligned payload offset, so it is stored as two parts (cflag 1 + 3) with the magic dropped."""
    magic_le = struct.pack("<I", MAGIC)
    # image bytes start at payload offset 24 + 8 = 32; COM data starts 6 bytes later (38): pad 2 -> offset 40
    images = [jpeg(10), jpeg(60, comment=b"ab" + magic_le + b"tail"), jpeg(120)]
    labels = [0, 0, 1]
    records = {}
    for key, (img, lab) in enumerate(zip(images, labels), 1):
        records[key] = payload([float(lab), 1.0], img, key)
    records[4] = payload([1.0, 3.0], b"", 4)  # identity 0: keys [1, 3)
    records[5] = payload([3.0, 4.0], b"", 5)  # identity 1: keys [3, 4)
    records[0] = payload([4.0, 6.0], b"", 0)  # identity records are keys [4, 6)
    blob, idx = b"", []
    for key in (0, 1, 2, 3, 4, 5):
        p = records[key]
        idx.append(f"{key}\t{len(blob)}")
        cut = p.find(magic_le)
        if key == 2:
            assert cut == 40
            blob += part(1, p[:cut]) + part(3, p[cut + 4:])
        else:
            assert cut == -1 or cut % 4 != 0
            blob += part(0, p)
    (tmp_path / "train.rec").write_bytes(blob)
    (tmp_path / "train.idx").write_text("\n".join(idx) + "\n")
    if with_property:
        (tmp_path / "property").write_text("2,16,16\n")
    return images, labels, records



def test_reader_on_hand_built_fixture(tmp_path):
    images, labels, records = build_fixture(tmp_path)
    reader = RecordIOReader(tmp_path / "train.rec")
    assert reader.read(2) == records[2]  # magic re-inserted between the two parts
    header, img = unpack_payload(reader.read(1))
    assert header.flag == 2 and header.label == (0.0, 1.0) and header.id == 1 and img == images[0]
    assert reader.read_header(0).label == (4.0, 6.0)
    ds = RecordDataset(tmp_path / "train.rec")
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == labels
    assert ds.num_classes == 2 and ds.image_size == (16, 16) and len(ds) == 3
    for i in range(3):
        image, label = ds[i]
        assert image.dtype == np.uint8 and image.shape == (16, 16, 3) and label == labels[i]
        np.testing.assert_array_equal(image, rgb_of(images[i]))
    assert RecordDataset(tmp_path / "train.rec", scan_labels=True).labels.tolist() == labels
    with pytest.raises(IndexError):
        ds[3]



def test_writer_frames_like_the_spec(tmp_path):
    _, _, records = build_fixture(tmp_path)
    blob = (tmp_path / "train.rec").read_bytes()
    assert b"".join(frame_record(records[k]) for k in (0, 1, 2, 3, 4, 5)) == blob
    assert frame_record(b"abc") == part(0, b"abc")  # padding to 4 bytes



def test_write_records_layout_and_round_trip(tmp_path):
    arrays = [np.broadcast_to(np.array(c, np.uint8), (16, 16, 3)).copy() for c in ((200, 30, 30), (30, 200, 30),
                                                                                    (30, 30, 200))]
    raw = [jpeg(v) for v in (5, 50, 90, 140)]
    # unsorted input: the writer must group by identity (stable) with keys 1..N
    samples = [(raw[0], 2), (arrays[0], 0), (raw[1], 1), (arrays[1], 0), (raw[2], 2), (arrays[2], 1), (raw[3], 1)]
    res = write_records(tmp_path, samples, label_array=True)
    assert (res.num_images, res.num_classes, res.image_size) == (7, 3, (16, 16))
    assert (tmp_path / "property").read_text().strip() == "3,16,16"
    reader = RecordIOReader(res.rec_path)
    h0 = reader.read_header(0)
    assert h0.flag == 2 and h0.label == (8.0, 11.0)
    assert [reader.read_header(k).label for k in (8, 9, 10)] == [(1.0, 3.0), (3.0, 6.0), (6.0, 8.0)]
    for k in range(1, 8):
        assert reader.read_header(k).id == k
    ds = RecordDataset(res.rec_path)
    assert ds.labels.tolist() == [0, 0, 1, 1, 1, 2, 2]
    order = [1, 3, 2, 5, 6, 0, 4]  # stable grouping of the input
    for i, j in enumerate(order):
        img, label = samples[j]
        assert ds[i][1] == label
        if isinstance(img, bytes):
            assert ds.read_encoded(i) == img  # encoded bytes stored untouched
        else:
            assert np.abs(ds[i][0].astype(int) - img).max() <= 4  # flat colour survives JPEG: RGB, not BGR
    # grouped input streams in one pass and gives the same layout; transform is applied
    res2 = write_records(tmp_path / "b", [(raw[i], i // 2) for i in range(4)])
    ds2 = RecordDataset(res2.rec_path, transform=lambda x: x.mean())
    assert ds2.labels.tolist() == [0, 0, 1, 1] and isinstance(ds2[0][0], float)



def test_write_records_rejects_bad_labels(tmp_path):
    with pytest.raises(ValueError, match="label"):
        write_records(tmp_path, [(jpeg(1), 0), (jpeg(2), 2)])  # identity 1 missing
    with pytest.raises(ValueError, match="integer"):
        write_records(tmp_path, [(jpeg(1), 0.5)])
    with pytest.raises(ValueError, match="not an encoded"):
        write_records(tmp_path, [(b"not an image", 0)])
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())



def test_bad_input_errors_name_file_and_record(tmp_path):
    images, labels, records = build_fixture(tmp_path)
    rec = tmp_path / "train.rec"
    blob = rec.read_bytes()
    idx = dict(line.split("\t") for line in (tmp_path / "train.idx").read_text().splitlines())
    off2, off3 = int(idx["2"]), int(idx["3"])
    # bad magic at key 2 (not the first image of its identity: the identity-range fast path does not read it)
    rec.write_bytes(blob[:off2] + b"\0\0\0\0" + blob[off2 + 4:])
    ds = RecordDataset(rec)
    assert ds[0][1] == 0
    with pytest.raises(DataFormatError, match=r"train\.rec: sample 1, record key 2 \(offset \d+\): bad magic"):
        ds[1]
    with pytest.raises(DataFormatError, match="record key 2.*bad magic"):
        RecordDataset(rec, scan_labels=True)
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        skip = RecordDataset(rec, on_error="skip")
    assert skip.labels.tolist() == [0, 1] and skip.keys.tolist() == [1, 3] and len(skip.skipped) == 1
    # bad magic at key 3, the first image of identity 1: caught while the labels are derived
    rec.write_bytes(blob[:off3] + b"\0\0\0\0" + blob[off3 + 4:])
    with pytest.raises(DataFormatError, match="record key 3.*bad magic"):
        RecordDataset(rec)
    # truncated file: the last records are cut off
    rec.write_bytes(blob[:off3 + 20])
    with pytest.raises(DataFormatError, match="past the end|truncated"):
        RecordDataset(rec)
    # .idx offset past the end
    rec.write_bytes(blob)
    (tmp_path / "train.idx").write_text((tmp_path / "train.idx").read_text().replace(f"3\t{off3}", "3\t999999"))
    with pytest.raises(DataFormatError, match="past the end"):
        RecordDataset(rec, scan_labels=True)
    # malformed .idx line
    (tmp_path / "train.idx").write_text("0\t0\nthree\t12\n")
    with pytest.raises(DataFormatError, match=r"train\.idx: line 2"):
        RecordDataset(rec)



def test_missing_property_and_undecodable_image(tmp_path):
    build_fixture(tmp_path, with_property=False)
    with pytest.raises(FileNotFoundError, match="property"):
        RecordDataset(tmp_path / "train.rec")
    assert len(RecordDataset(tmp_path / "train.rec", require_property=False)) == 3
    d = tmp_path / "bad"
    write_records(d, [(jpeg(1), 0), (jpeg(2), 0), (jpeg(3), 1)])
    # corrupt the JPEG body of key 1 in place (same length: framing stays valid)
    reader = RecordIOReader(d / "train.rec")
    off = int(reader.offsets[list(reader.keys).index(1)])
    blob = bytearray((d / "train.rec").read_bytes())
    blob[off + 8 + 24: off + 8 + 24 + 40] = b"\0" * 40
    (d / "train.rec").write_bytes(bytes(blob))
    with pytest.raises(DataFormatError, match=r"train\.rec: sample 0, record key 1.*undecodable"):
        RecordDataset(d / "train.rec")[0]
    ds = RecordDataset(d / "train.rec", on_error="skip")
    with pytest.warns(UserWarning, match="another of identity 0"):
        image, label = ds[0]
    assert label == 0 and len(ds.skipped) == 1
    np.testing.assert_array_equal(image, rgb_of(jpeg(2)))  # replaced by the other image of identity 0



def test_label_disagreement_is_never_returned(tmp_path):
    # image key 2 says label 1 while the identity ranges put it in identity 0
    recs = [payload(0.0, jpeg(1), 1), payload(1.0, jpeg(2), 2), payload(1.0, jpeg(3), 3),
            payload([1.0, 3.0], b"", 4), payload([3.0, 4.0], b"", 5), payload([4.0, 6.0], b"", 0)]
    blob, idx = b"", []
    for key, p in zip((1, 2, 3, 4, 5, 0), recs):
        idx.append(f"{key}\t{len(blob)}")
        blob += part(0, p)
    (tmp_path / "train.rec").write_bytes(blob)
    (tmp_path / "train.idx").write_text("\n".join(idx))
    (tmp_path / "property").write_text("2,16,16")
    ds = RecordDataset(tmp_path / "train.rec")
    assert ds[0][1] == 0
    with pytest.raises(DataFormatError, match="disagrees"):
        ds[1]
    assert RecordDataset(tmp_path / "train.rec", scan_labels=True).labels.tolist() == [0, 1, 1]



def test_plain_rec_without_header_record(tmp_path):
    blob, idx = b"", []
    for key, lab in ((7, 3.0), (9, 1.0)):
        idx.append(f"{key}\t{len(blob)}")
        blob += part(0, payload(lab, jpeg(key), key))
    (tmp_path / "x.rec").write_bytes(blob)
    (tmp_path / "x.idx").write_text("\n".join(idx))
    ds = RecordDataset(tmp_path / "x.rec", require_property=False)
    assert ds.labels.tolist() == [3, 1] and ds.keys.tolist() == [7, 9] and ds.num_classes == 4



def test_dataloader_workers_and_pickling(tmp_path):
    torch = pytest.importorskip("torch")
    samples = [(jpeg(v), v % 3) for v in range(12)]
    samples.sort(key=lambda s: s[1])
    res = write_records(tmp_path, samples)
    ds = RecordDataset(res.rec_path)
    first = ds[0][0]  # the parent opens its descriptor before the workers fork
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[0][0], first)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
    got_labels, got_images = [], []
    for images, labels in loader:
        got_labels += labels.tolist()
        got_images.append(images.numpy())
    assert got_labels == ds.labels.tolist()
    np.testing.assert_array_equal(np.concatenate(got_images), np.stack([ds[i][0] for i in range(len(ds))]))
    assert labels.dtype == torch.int64
