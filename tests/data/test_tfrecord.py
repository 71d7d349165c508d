"""TFace TFRecord shards + index: CRC32C, hand-built Example/record bytes, round trip, corruption."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.tfrecord import (
    TFRecordIndexDataset,
    crc32c,
    encode_example,
    iter_tfrecords,
    masked_crc32c,
    parse_example,
    write_tfrecords,
)


def bitwise_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF



def jpeg(value: int) -> bytes:
    rgb = np.full((10, 10, 3), (value, 255 - value, 90), np.uint8)
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 100])[1].tobytes()



def test_crc32c_vectors():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"\0" * 32) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0
    rng = np.random.default_rng(1)
    for n in (1, 3, 4, 5, 255, 256, 257, 600, 1029):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == bitwise_crc32c(data)
    table = []
    for b in range(256):  # classic byte-wise table, then a byte-wise reference for long messages
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    for n in (65536, 65536 + 4, 2 * 65536 + 700):  # one, and several, 64 KiB blocks
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        crc = 0xFFFFFFFF
        for b in data:
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
        assert crc32c(data) == crc ^ 0xFFFFFFFF
    c = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF



def hand_example(image: bytes) -> bytes:
    """tf.train.Example{features{feature{key:"image" value{bytes_list{value: image}}}}} by hand (+ an int64 'x')."""
    def ld(field: int, payload: bytes) -> bytes:
        assert len(payload) < 2 ** 14
        n = len(payload)
        size = bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80, n >> 7])
        return bytes([field << 3 | 2]) + size + payload
    x = ld(1, ld(1, b"x") + ld(2, ld(3, ld(1, b"\x05"))))  # int64_list{value: 5} before the image
    img = ld(1, ld(1, b"image") + ld(2, ld(1, ld(1, image))))
    return ld(1, x + img)



def hand_record(data: bytes) -> bytes:
    def masked(b: bytes) -> int:
        c = bitwise_crc32c(b)
        return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked(head)) + data + struct.pack("<I", masked(data))



def test_reader_on_hand_built_shards(tmp_path):
    images = [jpeg(v) for v in (10, 120, 240)]
    (tmp_path / "ds").mkdir()
    offsets, blob = [], b""
    for img in images:
        offsets.append(len(blob))
        blob += hand_record(hand_example(img))
    (tmp_path / "ds" / "ds-00003.tfrecord").write_bytes(blob)
    (tmp_path / "loose.jpg").write_bytes(jpeg(60))
    lines = [f"ds\t3\t{offsets[2]}\t4", f"ds\t3\t{offsets[0]}\t0", "loose.jpg\t2", f"ds\t3\t{offsets[1]}\t1"]
    (tmp_path / "ds.index").write_text("\n".join(lines) + "\n")
    ds = TFRecordIndexDataset(tmp_path / "ds.index", tmp_path)
    assert ds.labels.tolist() == [4, 0, 2, 1] and ds.num_classes == 5
    expected = [images[2], images[0], jpeg(60), images[1]]
    for i, enc in enumerate(expected):
        assert ds.read_encoded(i) == enc
        img, label = ds[i]
        np.testing.assert_array_equal(img, cv2.imdecode(np.frombuffer(enc, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])
    assert [d for _, d in iter_tfrecords(tmp_path / "ds" / "ds-00003.tfrecord")] == \
        [hand_example(im) for im in images]
    assert encode_example({"x": 5, "image": images[0]}) == hand_example(images[0])



def test_write_round_trip_with_shards(tmp_path):
    samples = [(jpeg(20 * i), i % 3) for i in range(7)]
    index = write_tfrecords(tmp_path, samples, name="casia", shard_size=3)
    rows = [line.split("\t") for line in open(index).read().splitlines()]
    assert [r[0] for r in rows] == ["casia"] * 7 and [int(r[1]) for r in rows] == [0, 0, 0, 1, 1, 1, 2]
    assert (tmp_path / "casia" / "casia-00002.tfrecord").exists()
    ds = TFRecordIndexDataset(index, tmp_path)
    assert ds.labels.tolist() == [s[1] for s in samples]
    assert all(ds.read_encoded(i) == samples[i][0] for i in range(7))
    arr = np.full((8, 8, 3), (250, 10, 10), np.uint8)
    ds2 = TFRecordIndexDataset(write_tfrecords(tmp_path / "b", [(arr, 0)]), tmp_path / "b")
    assert np.abs(ds2[0][0].astype(int) - arr).max() <= 4



def test_corruption_is_reported(tmp_path):
    index = write_tfrecords(tmp_path, [(jpeg(5 * i), i) for i in range(3)])
    shard = tmp_path / "train" / "train-00000.tfrecord"
    blob = bytearray(shard.read_bytes())
    rows = [line.split("\t") for line in open(index).read().splitlines()]
    off1 = int(rows[1][2])
    blob[off1 + 40] ^= 0xFF  # flip a data byte of record 1
    shard.write_bytes(bytes(blob))
    ds = TFRecordIndexDataset(index, tmp_path)
    ds[0]
    with pytest.raises(DataFormatError, match=r"train-00000\.tfrecord: sample 1 \(.*line 2, offset \d+\): data CRC"):
        ds[1]
    assert TFRecordIndexDataset(index, tmp_path, verify_crc=False).read_encoded(1) != b""
    blob[off1 + 40] ^= 0xFF
    blob[off1 + 2] ^= 0x01  # corrupt the length field
    shard.write_bytes(bytes(blob))
    with pytest.raises(DataFormatError, match="length CRC"):
        TFRecordIndexDataset(index, tmp_path)[1]
    shard.write_bytes(bytes(blob[:off1 + 30]))  # truncate inside record 1
    with pytest.raises(DataFormatError, match=r"line 3.*past the end"):
        TFRecordIndexDataset(index, tmp_path)
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = TFRecordIndexDataset(index, tmp_path, on_error="skip")
    assert ds.labels.tolist() == [0, 1]
    (tmp_path / "bad.index").write_text("train\t0\tx\t1\n")
    with pytest.raises(DataFormatError, match=r"bad\.index: line 1"):
        TFRecordIndexDataset(tmp_path / "bad.index", tmp_path)



def test_parse_example_errors():
    with pytest.raises(ValueError, match="no feature 'image'"):
        parse_example(encode_example({"label": 3}))
    with pytest.raises(ValueError, match="not a bytes_list"):
        parse_example(encode_example({"image": 3}))
    with pytest.raises(ValueError, match="truncated|past the end"):
        parse_example(hand_example(b"abc")[:-2])
