"""Verification sets: .bin (restricted unpickler, Python-2 pickles), LFW pairs.txt, MassFace pair folders."""

from __future__ import annotations

import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data.verification import load_bin_pickle, read_bin, read_lfw_pairs, read_pair_folders, write_bin


def flat_rgb(i: int, size: int = 12) -> np.ndarray:
    return np.broadcast_to(np.array([(37 * i) % 256, (91 * i + 40) % 256, (13 * i + 200) % 256], np.uint8),
                           (size, size, 3)).copy()



def jpeg_of(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 100])[1].tobytes()



# --- a Python-2 protocol-2 pickle assembled opcode by opcode (py2 str -> SHORT_BINSTRING / BINSTRING)
def _s(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b



def _k(n: int) -> bytes:
    return b"K" + bytes([n]) if n < 256 else b"J" + struct.pack("<i", n)



def _py2_uint8_array(raw: bytes) -> bytes:
    dtype = (b"cnumpy\ndtype\n" + _s(b"u1") + _k(0) + _k(1) + b"\x87R"
             + b"(" + _k(3) + _s(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _k(0) + b"tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _k(0) + b"\x85" + _s(b"b") + b"\x87R"
            + b"(" + _k(1) + _k(len(raw)) + b"\x85" + dtype + b"\x89" + _s(raw) + b"tb")



def py2_bin(buffers: list[bytes], issame: list[bool], as_arrays: bool) -> bytes:
    items = b"".join(_py2_uint8_array(b) if as_arrays else _s(b) for b in buffers)
    flags = b"".join(b"\x88" if v else b"\x89" for v in issame)
    return b"\x80\x02" + b"](" + items + b"e" + b"](" + flags + b"e" + b"\x86."



@pytest.fixture()
def pairs():
    images = np.stack([flat_rgb(i) for i in range(8)])
    return images, np.array([True, False, True, False])



def test_write_read_bin_round_trip(tmp_path, pairs):
    images, issame = pairs
    write_bin(tmp_path / "a.bin", images, issame)
    got, flags = read_bin(tmp_path / "a.bin")
    assert got.dtype == np.uint8 and got.shape == (8, 12, 12, 3) and flags.dtype == bool
    assert flags.tolist() == issame.tolist()
    assert np.abs(got.astype(int) - images).max() <= 3  # RGB order kept through the JPEG round trip
    with open(tmp_path / "a.bin", "rb") as f:
        bins, lst = pickle.load(f)  # what insightface's loader does
    assert len(bins) == 8 and all(isinstance(b, bytes) for b in bins) and lst == issame.tolist()
    raw, _ = read_bin(tmp_path / "a.bin", decode=False)
    assert raw == bins
    resized, _ = read_bin(tmp_path / "a.bin", image_size=(20, 24))
    assert resized.shape == (8, 20, 24, 3)



@pytest.mark.parametrize("as_arrays", [False, True])
def test_python2_pickles(tmp_path, pairs, as_arrays):
    images, issame = pairs
    buffers = [jpeg_of(im) for im in images]
    (tmp_path / "py2.bin").write_bytes(py2_bin(buffers, issame.tolist(), as_arrays))
    got, flags = read_bin(tmp_path / "py2.bin")
    assert flags.tolist() == issame.tolist()
    for g, b in zip(got, buffers):
        np.testing.assert_array_equal(g, cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])



@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_python3_pickles_with_arrays_and_numpy_bools(tmp_path, pairs, protocol):
    images, issame = pairs
    buffers = [np.frombuffer(jpeg_of(im), np.uint8) for im in images]  # cv2.imencode output type
    flags = [np.bool_(v) for v in issame]
    (tmp_path / "p.bin").write_bytes(pickle.dumps((buffers, flags), protocol=protocol))
    got, got_flags = read_bin(tmp_path / "p.bin")
    assert got.shape == (8, 12, 12, 3) and got_flags.tolist() == issame.tolist()



class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)



def test_malicious_pickles_are_rejected_without_running(tmp_path, pairs):
    marker = tmp_path / "pwned"
    buffers = [jpeg_of(im) for im in pairs[0]]
    attacks = {
        "reduce": pickle.dumps((buffers, [_Evil(str(marker))] * 4), protocol=2),
        "protocol0": b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
        "eval": b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R.",
        "object_array": pickle.dumps(([np.array([b"x"], dtype=object)] * 2, [True]), protocol=2),
        "float_array": pickle.dumps(([np.zeros(3, np.float64)] * 2, [True]), protocol=2),
    }
    for name, data in attacks.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
        with pytest.raises(DataFormatError, match="rejected pickle|not allowed|must be"):
            read_bin(tmp_path / f"{name}.bin")
    assert not marker.exists()



def test_bin_structure_errors(tmp_path, pairs):
    buffers = [jpeg_of(im) for im in pairs[0]]
    cases = {
        "odd": (buffers[:3], [True, False]),
        "strs": (["abc"] * 2, [True]),
        "flags": (buffers[:2], ["yes"]),
        "triple": (buffers[:2], [True], 3),
    }
    for name, obj in cases.items():
        with pytest.raises(DataFormatError):
            load_bin_pickle(pickle.dumps(obj, protocol=4), name)
    (tmp_path / "trunc.bin").write_bytes(pickle.dumps((buffers, [True] * 4))[:100])
    with pytest.raises(DataFormatError, match="trunc.bin"):
        read_bin(tmp_path / "trunc.bin")
    bad = buffers[:]
    bad[3] = b"\xff\xd8\xff" + b"\0" * 50
    (tmp_path / "undecodable.bin").write_bytes(pickle.dumps((bad, [True, False, True, False])))
    with pytest.raises(DataFormatError, match=r"undecodable\.bin: bins\[3\] \(pair 1\)"):
        read_bin(tmp_path / "undecodable.bin")
    with pytest.warns(UserWarning, match="skipped 1"):
        got, flags = read_bin(tmp_path / "undecodable.bin", on_error="skip")
    assert got.shape[0] == 6 and flags.tolist() == [True, True, False]



def _lfw_tree(root, names: dict[str, int]) -> dict[tuple[str, int], np.ndarray]:
    images = {}
    for n, (name, count) in enumerate(names.items()):
        os.makedirs(root / name)
        for i in range(1, count + 1):
            img = flat_rgb(10 * n + i)
            (root / name / f"{name}_{i:04d}.jpg").write_bytes(jpeg_of(img))
            images[(name, i)] = img
    return images



def test_lfw_pairs_view2_layout(tmp_path):
    images = _lfw_tree(tmp_path / "lfw", {"Ann_A": 3, "Bob_B": 2, "Cy_C": 1})
    lines = ["2\t2",
             "Ann_A\t1\t2", "Bob_B\t1\t2", "Ann_A\t3\tCy_C\t1", "Bob_B\t2\tAnn_A\t1",
             "Ann_A\t2\t3", "Ann_A\t1\t3", "Cy_C\t1\tBob_B\t1", "Ann_A\t2\tBob_B\t2"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    got, issame = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "lfw")
    assert issame.tolist() == [True, True, False, False, True, True, False, False]
    expected = [("Ann_A", 1), ("Ann_A", 2), ("Bob_B", 1), ("Bob_B", 2), ("Ann_A", 3), ("Cy_C", 1),
                ("Bob_B", 2), ("Ann_A", 1)]
    for g, key in zip(got, expected):
        assert np.abs(g.astype(int) - images[key]).max() <= 3
    raw, _ = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "lfw", decode=False)
    assert raw[0] == (tmp_path / "lfw" / "Ann_A" / "Ann_A_0001.jpg").read_bytes()
    # wrong kind of line in a "same" block, wrong count, missing file
    bad = lines[:]
    bad[1], bad[3] = bad[3], bad[1]
    (tmp_path / "bad.txt").write_text("\n".join(bad))
    with pytest.raises(DataFormatError, match=r"bad\.txt: line 2: expected a same pair"):
        read_lfw_pairs(tmp_path / "bad.txt", tmp_path / "lfw")
    (tmp_path / "short.txt").write_text("\n".join(lines[:-1]))
    with pytest.raises(DataFormatError, match="8 lines, found 7"):
        read_lfw_pairs(tmp_path / "short.txt", tmp_path / "lfw")
    os.remove(tmp_path / "lfw" / "Cy_C" / "Cy_C_0001.jpg")
    with pytest.raises(DataFormatError, match=r"line 4.*Cy_C_0001\.jpg"):
        read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "lfw")
    with pytest.warns(UserWarning, match="skipped 2"):
        got, issame = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "lfw", on_error="skip")
    assert issame.tolist() == [True, True, False, True, True, False] and got.shape[0] == 12



def test_pair_folders(tmp_path):
    for pid in range(3):
        os.makedirs(tmp_path / "p" / str(pid))
        for name, k in (("b.jpg", 1), ("a.jpg", 0)):
            (tmp_path / "p" / str(pid) / name).write_bytes(jpeg_of(flat_rgb(2 * pid + k)))
    (tmp_path / "list.txt").write_text("2 0\n0 1\n1 true\n")
    got, issame = read_pair_folders(tmp_path / "list.txt", tmp_path / "p")
    assert issame.tolist() == [False, True, True]
    order = [4, 5, 0, 1, 2, 3]  # list order, then sorted file names within a folder
    for g, i in zip(got, order):
        assert np.abs(g.astype(int) - flat_rgb(i)).max() <= 3
    (tmp_path / "p" / "1" / "c.jpg").write_bytes(jpeg_of(flat_rgb(9)))
    with pytest.raises(DataFormatError, match="exactly 2 images, found 3"):
        read_pair_folders(tmp_path / "list.txt", tmp_path / "p")
