"""Hostile and careless input to massface's data readers, ``read_bin``, the IJB lists and ``massface convert``.

Every fixture is built at run time in ``tmp_path``: tiny JPEG/PNG files from ``cv2.imencode``, image bombs made by
patching a header (a ~600-byte JPEG whose SOF says 20000×20000, a 1-bit PNG whose IHDR says 30000×30000), RecordIO
and TFRecord files written by massface's own writers and then corrupted. Each bad input must give the exact error
type with a message naming the file and the record / line (or a counted skip), never a hang, an OverflowError, a
MemoryError, code execution, the contents of a file outside the data root, or a changed input file.

A SIGALRM deadline guards every test, so a reader that blocks on a FIFO fails instead of hanging the suite.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import signal
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from massface.data._errors import DataFormatError
from massface.data._guard import DEFAULT_MAX_PIXELS
from massface.data.convert import main as convert
from massface.data.folder import FolderDataset, JsonListDataset, write_folder
from massface.data.recordio import RecordDataset, RecordIOReader, read_property, write_records
from massface.data.tfrecord import TFRecordIndexDataset, masked_crc32c, write_tfrecords
from massface.data.verification import read_bin, read_lfw_pairs, read_pair_folders, write_bin
from massface.evaluation.ijb import _iter_aligned, read_ijb

SECRET = b"SECRET-CONTENTS-5e1f0c"  # written outside every data root: no message may ever show it
BAD_UTF8 = b"\xff\xfe\xc3\x28"
HUGE = str(10 ** 30)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(signal, "SIGALRM"),
                                reason="needs POSIX FIFOs and SIGALRM")


@pytest.fixture(autouse=True)
def deadline():
    """Fail (instead of hanging the suite) when a test runs for more than 10 s, e.g. blocked on a FIFO."""
    def expire(signum, frame):
        raise TimeoutError("hostile-input test ran past its 10 s deadline (blocked on a FIFO or device?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------------------------- fixtures
def jpeg(value: int = 0, size: int = 16, quality: int = 95) -> bytes:
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.stack([xx * 8 + value, yy * 8, np.full_like(xx, 3 * value)], -1).clip(0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])[1].tobytes()


def jpeg_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid small JPEG whose frame header (SOF0) is patched to announce width × height."""
    data = bytearray(jpeg(size=8, quality=30))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    assert len(data) < 1000
    return bytes(data)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A 1-bit grey PNG with a correct IHDR announcing width × height and a tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width // 8 + 1) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def secret_file(tmp: Path) -> Path:
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    path = outside / "secret.jpg"
    path.write_bytes(SECRET + b"\n" * 64)
    return path


def make_folder(root: Path, counts: tuple[int, ...] = (2, 2)) -> Path:
    for label, n in enumerate(counts):
        d = root / f"id{label}"
        d.mkdir(parents=True)
        for k in range(n):
            (d / f"{k:03d}.jpg").write_bytes(jpeg(10 * label + k))
    return root


def make_rec(d: Path, images: tuple[bytes, ...] = (), labels: tuple[int, ...] = (0, 0, 1, 1)) -> Path:
    imgs = images or tuple(jpeg(v) for v in range(len(labels)))
    return Path(write_records(d, list(zip(imgs, labels))).rec_path)


def idx_lines(rec: Path) -> list[list[str]]:
    return [line.split("\t") for line in rec.with_suffix(".idx").read_text().splitlines()]


def write_idx(rec: Path, rows: list[list[str]]) -> None:
    rec.with_suffix(".idx").write_text("".join("\t".join(r) + "\n" for r in rows))


def edited_rec(tmp: Path, edit: Callable[[list[list[str]], Path], object]) -> Path:
    """A small ``.rec`` whose ``.idx`` rows (line 1 = header record 0, line k+1 = image key k) ``edit`` changed."""
    rec = make_rec(tmp / "r")
    rows = idx_lines(rec)
    edit(rows, rec)
    write_idx(rec, rows)
    return rec


def idx_case(rec: Path, *says: str, read: bool = False) -> Case:
    """Opening ``rec`` (and with ``read`` reading sample 1) must fail naming its ``.idx`` and ``says``."""
    run = (lambda: RecordDataset(rec)[1]) if read else (lambda: RecordDataset(rec))
    return Case(run, DataFormatError, (str(rec.with_suffix(".idx")),) + says)


def make_tfr(d: Path, labels: tuple[int, ...] = (0, 0, 1)) -> tuple[Path, Path]:
    index = Path(write_tfrecords(d, [(jpeg(v), lab) for v, lab in enumerate(labels)]))
    return index, d / "train" / "train-00000.tfrecord"


def index_case(index: Path, root: Path, *says: str) -> Case:
    """Opening the TFRecord ``index`` must fail naming it and ``says``."""
    return Case(lambda: TFRecordIndexDataset(index, root), DataFormatError, (str(index),) + says)


def make_ijb(root: Path, names: tuple[str, ...] = ("1.jpg", "2.jpg", "3.jpg"), tid: str = "", pairs: str = "",
             lmk_value: str = "0.9") -> Path:
    meta = root / "meta"
    meta.mkdir(parents=True)
    tid = tid or "".join(f"{n} {t} {m}\n" for n, t, m in zip(names, (1, 1, 2), (5, 6, 7)))
    (meta / "ijbc_face_tid_mid.txt").write_text(tid)
    lmk = "".join(f"{n} " + " ".join(str(float(v)) for v in range(10)) + f" {lmk_value}\n" for n in names)
    (meta / "ijbc_name_5pts_score.txt").write_text(lmk)
    (meta / "ijbc_template_pair_label.txt").write_text(pairs or "1 2 0\n1 1 1\n")
    return root


def ijb_case(root: Path, meta_file: str, *says: str) -> Case:
    """Reading the IJB release at ``root`` must fail naming ``meta/<meta_file>`` and ``says``."""
    return Case(lambda: read_ijb(root), DataFormatError, (str(root / "meta" / meta_file),) + says)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` and the set of folders (symlinks recorded, not followed)."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            elif os.path.isfile(p):
                out[rel] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


# ----------------------------------------------------------------------------------------------- the table
class Case(NamedTuple):
    run: Callable[[], object]
    error: type
    says: tuple[str, ...]  # substrings the message must contain: the file and the record / line


CASES: dict[str, Callable[[Path], Case]] = {}


def case(fn: Callable[[Path], Case]) -> Callable[[Path], Case]:
    CASES[fn.__name__] = fn
    return fn


# --- identity folders
@case
def folder_fifo_image(tmp):
    root = make_folder(tmp / "f")
    os.mkfifo(root / "id0" / "x.jpg")
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "id0" / "x.jpg"), "FIFO", "identity 'id0'"))


@case
def folder_symlink_to_dev_zero(tmp):
    root = make_folder(tmp / "f")
    os.symlink("/dev/zero", root / "id1" / "z.jpg")
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "id1" / "z.jpg"), "character device",
                                                               "label 1"))


@case
def folder_self_loop_symlink(tmp):
    root = make_folder(tmp / "f")
    os.symlink("loop.jpg", root / "id0" / "loop.jpg")
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "id0" / "loop.jpg"), "symlink loop"))


@case
def folder_directory_symlink_loop(tmp):
    root = make_folder(tmp / "f")
    os.symlink(root, root / "id2")  # an "identity" that is the root again: walking it would never end
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "id2"), "same directory"))


@case
def folder_identity_symlink_eloop(tmp):
    root = make_folder(tmp / "f")
    os.symlink(root / "idz", root / "idz")
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "idz"), "symlink loop"))


@case
def folder_dangling_symlink(tmp):
    root = make_folder(tmp / "f")
    os.symlink(tmp / "nowhere.jpg", root / "id0" / "d.jpg")
    return Case(lambda: FolderDataset(root), DataFormatError, (str(root / "id0" / "d.jpg"), "dangling"))


@case
def folder_jpeg_bomb(tmp):
    root = make_folder(tmp / "f")
    (root / "id1" / "000.jpg").write_bytes(jpeg_bomb())
    return Case(lambda: FolderDataset(root)[2], DataFormatError, (str(root / "id1" / "000.jpg"), "sample 2",
                                                                  "20000×20000", "max_pixels"))


@case
def folder_png_bomb(tmp):
    root = make_folder(tmp / "f")
    (root / "id0" / "001.jpg").unlink()
    (root / "id0" / "001.png").write_bytes(png_bomb())
    return Case(lambda: FolderDataset(root)[1], DataFormatError, (str(root / "id0" / "001.png"), "sample 1",
                                                                  "30000×30000"))


@case
def folder_image_over_small_max_pixels(tmp):
    root = make_folder(tmp / "f")
    return Case(lambda: FolderDataset(root, max_pixels=100)[0], DataFormatError,
                (str(root / "id0" / "000.jpg"), "sample 0", "max_pixels=100"))


@case
def folder_truncated_jpeg(tmp):
    root = make_folder(tmp / "f")
    (root / "id0" / "000.jpg").write_bytes(jpeg()[:40])
    return Case(lambda: FolderDataset(root)[0], DataFormatError, (str(root / "id0" / "000.jpg"), "sample 0"))


@case
def folder_gif_named_jpg(tmp):
    root = make_folder(tmp / "f")
    (root / "id0" / "000.jpg").write_bytes(b"GIF89a" + b"\0" * 64)
    return Case(lambda: FolderDataset(root)[0], DataFormatError, (str(root / "id0" / "000.jpg"), "sample 0",
                                                                  "not a JPEG"))


@case
def folder_empty_image(tmp):
    root = make_folder(tmp / "f")
    (root / "id1" / "001.jpg").write_bytes(b"")
    return Case(lambda: FolderDataset(root)[3], DataFormatError, (str(root / "id1" / "001.jpg"), "sample 3"))


@case
def folder_bad_max_pixels_argument(tmp):
    root = make_folder(tmp / "f")
    return Case(lambda: FolderDataset(root, max_pixels=0), ValueError, ("max_pixels",))


# --- ffem JSON lists
def _json_case(tmp: Path, spec: object, raw: bytes = b"") -> tuple[Path, Path]:
    root = make_folder(tmp / "imgs")
    path = tmp / "list.json"
    path.write_bytes(raw or json.dumps(spec).encode())
    return path, root


BOX = {"x1": 0, "y1": 0, "x2": 8, "y2": 8}

#: JSON lists (from ``spec``, or ``raw`` bytes) that JsonListDataset must refuse, naming the file and ``says``
JSON_LISTS: dict[str, dict] = {
    "json_path_traversal": dict(spec={"../outside/secret.jpg": {"label": 0, **BOX}},
                                says=("../outside/secret.jpg", "climbs")),
    "json_absolute_path": dict(spec={"/etc/passwd": {"label": 0, **BOX}}, says=("'/etc/passwd'", "absolute")),
    "json_duplicate_key": dict(raw=b'{"id0/000.jpg": {"label": 0, "x1": 0, "y1": 0, "x2": 8, "y2": 8}, '
                                   b'"id0/000.jpg": {"label": 1}}', says=("id0/000.jpg", "more than once")),
    "json_huge_label": dict(raw=b'{"id0/000.jpg": {"label": ' + HUGE.encode() + b', "x1": 0, "y1": 0, "x2": 8, '
                                b'"y2": 8}}', says=("key 'id0/000.jpg'", "label")),
    "json_deeply_nested": dict(raw=b"[" * 200_000 + b"]" * 200_000, says=("nested too deeply",)),
    "json_not_utf8": dict(raw=b'{"id0/000.jpg": {"label": 0},\n "' + BAD_UTF8 + b'": {"label": 1}}',
                          says=("line 2", "UTF-8"), crop=False),
    "json_nul_in_key": dict(spec={"id0/000.jpg\u0000.png": {"label": 0, **BOX}}, says=("key", "NUL")),
    "json_nan_box": dict(raw=b'{"id0/000.jpg": {"label": 0, "x1": NaN, "y1": 0, "x2": 8, "y2": 8}}',
                         says=("key 'id0/000.jpg'", "finite")),
    "json_bool_label": dict(spec={"id0/000.jpg": {"label": True, **BOX}}, says=("key 'id0/000.jpg'", "label")),
}


def _json_list_case(tmp: Path, says: tuple[str, ...], spec: object = None, raw: bytes = b"",
                    crop: bool = True) -> Case:
    secret_file(tmp)  # a file outside the image root that a climbing path would reach
    path, root = _json_case(tmp, spec, raw)
    return Case(lambda: JsonListDataset(path, root, crop=crop), DataFormatError, (str(path),) + says)


for _name, _spec in JSON_LISTS.items():
    CASES[_name] = functools.partial(_json_list_case, **_spec)


@case
def json_symlink_escaping_root(tmp):
    secret = secret_file(tmp)
    path, root = _json_case(tmp, {"id0/leak.jpg": {"label": 0, **BOX}})
    os.symlink(secret, root / "id0" / "leak.jpg")
    return Case(lambda: JsonListDataset(path, root)[0], DataFormatError,
                (str(root / "id0" / "leak.jpg"), "sample 0", "outside the data root"))


@case
def json_symlink_to_dev_zero(tmp):
    path, root = _json_case(tmp, {"id0/zero.jpg": {"label": 0, **BOX}})
    os.symlink("/dev/zero", root / "id0" / "zero.jpg")
    return Case(lambda: JsonListDataset(path, root)[0], DataFormatError,
                (str(root / "id0" / "zero.jpg"), "sample 0", "/dev/zero, outside the data root"))


@case
def json_fifo_as_list(tmp):
    root = make_folder(tmp / "imgs")
    os.mkfifo(tmp / "list.json")
    return Case(lambda: JsonListDataset(tmp / "list.json", root), DataFormatError, (str(tmp / "list.json"), "FIFO"))


@case
def json_bomb_image(tmp):
    path, root = _json_case(tmp, {"id0/000.jpg": {"label": 0, **BOX}})
    (root / "id0" / "000.jpg").write_bytes(jpeg_bomb())
    return Case(lambda: JsonListDataset(path, root)[0], DataFormatError,
                (str(root / "id0" / "000.jpg"), "sample 0", "max_pixels"))


# --- insightface RecordIO
@case
def rec_idx_points_at_another_record(tmp):
    # key 2 -> the offset of key 1 (same identity: a silent duplicate before)
    rec = edited_rec(tmp, lambda rows, rec: rows[2].__setitem__(1, rows[1][1]))
    return idx_case(rec, "line 3", "IRHeader id 1", "record key 2", read=True)


@case
def rec_empty_idx(tmp):
    rec = make_rec(tmp / "r")
    rec.with_suffix(".idx").write_text("")
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.with_suffix(".idx")), "no 'key<TAB>offset'"))


@case
def rec_idx_huge_key(tmp):
    return idx_case(edited_rec(tmp, lambda rows, rec: rows[3].__setitem__(0, HUGE)), "line 4", "key")


@case
def rec_idx_huge_offset(tmp):
    return idx_case(edited_rec(tmp, lambda rows, rec: rows[2].__setitem__(1, HUGE)), "line 3", "offset")


@case
def rec_idx_negative_offset(tmp):
    return idx_case(edited_rec(tmp, lambda rows, rec: rows[1].__setitem__(1, "-8")), "line 2", "offset -8")


@case
def rec_idx_offset_past_end(tmp):
    rec = edited_rec(tmp, lambda rows, rec: rows[4].__setitem__(1, str(rec.stat().st_size + 4)))
    return idx_case(rec, "line 5", "past the end")


@case
def rec_idx_not_utf8(tmp):
    rec = make_rec(tmp / "r")
    idx = rec.with_suffix(".idx")
    idx.write_bytes(idx.read_bytes() + b"7\t" + BAD_UTF8 + b"\n")
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(idx), f"line {len(idx_lines_raw(idx))}", "UTF-8"))


def idx_lines_raw(idx: Path) -> list[bytes]:
    return idx.read_bytes().splitlines()


@case
def rec_idx_duplicate_key(tmp):
    rec = edited_rec(tmp, lambda rows, rec: rows.append(list(rows[2])))
    return idx_case(rec, f"line {len(idx_lines(rec))}", "more than once")


@case
def rec_idx_three_fields(tmp):
    return idx_case(edited_rec(tmp, lambda rows, rec: rows[1].append("9")), "line 2")


@case
def rec_property_not_utf8(tmp):
    rec = make_rec(tmp / "r")
    (rec.parent / "property").write_bytes(b"2,16," + BAD_UTF8 + b"\n")
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.parent / "property"), "line 1", "UTF-8"))


@case
def rec_property_huge_number(tmp):
    rec = make_rec(tmp / "r")
    (rec.parent / "property").write_text(f"2,{HUGE},16\n")
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.parent / "property"), "line 1", "H"))


@case
def rec_property_is_a_directory(tmp):
    rec = make_rec(tmp / "r")
    (rec.parent / "property").unlink()
    (rec.parent / "property").mkdir()
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.parent / "property"), "directory"))


@case
def rec_image_disagrees_with_property(tmp):
    rec = make_rec(tmp / "r")
    (rec.parent / "property").write_text("2,112,112\n")
    return Case(lambda: RecordDataset(rec)[0], DataFormatError,
                (str(rec), "sample 0, record key 1", "declares H,W = 112,112", "16×16"))


@case
def rec_jpeg_bomb_record(tmp):
    rec = make_rec(tmp / "r", images=(jpeg_bomb(),), labels=(0,))
    (rec.parent / "property").write_text("1,16,16\n")
    return Case(lambda: RecordDataset(rec)[0], DataFormatError, (str(rec), "sample 0, record key 1", "max_pixels"))


@case
def rec_property_declares_a_bomb(tmp):
    rec = make_rec(tmp / "r", images=(jpeg_bomb(),), labels=(0,))
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.parent / "property"), "20000,20000",
                                                              "max_pixels"))


@case
def rec_writer_refuses_mixed_sizes(tmp):
    return Case(lambda: write_records(tmp / "w", [(jpeg(1), 0), (jpeg_bomb(), 0)]), ValueError,
                ("sample 1", "differs"))


@case
def rec_truncated_file(tmp):
    rec = make_rec(tmp / "r")
    rows = idx_lines(rec)
    data = rec.read_bytes()
    rec.write_bytes(data[:int(rows[2][1]) + 40])  # key 2 loses its tail; keys after it are gone
    write_idx(rec, rows[1:3])
    return Case(lambda: RecordIOReader(rec).read(2), DataFormatError, (str(rec), "record key 2", "truncated"))


@case
def rec_header_record_claims_16m_images(tmp):
    rec = make_rec(tmp / "r")
    offset = int(idx_lines(rec)[0][1])  # header record 0: IRHeader flag 2 + label [first image-less key, end)
    data = bytearray(rec.read_bytes())
    data[offset + 8 + 24:offset + 8 + 32] = struct.pack("<ff", 16_000_000.0, 16_000_001.0)
    rec.write_bytes(bytes(data))
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec.with_suffix(".idx")), "keys 1..15999999",
                                                              "missing from the index"))


@case
def rec_file_is_a_fifo(tmp):
    rec = make_rec(tmp / "r")
    rec.unlink()
    os.mkfifo(rec)
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec), "FIFO"))


@case
def rec_symlink_to_dev_zero(tmp):
    rec = make_rec(tmp / "r")
    rec.unlink()
    os.symlink("/dev/zero", rec)
    return Case(lambda: RecordDataset(rec), DataFormatError, (str(rec), "character device"))


# --- TFace TFRecord
def _patch_length(shard: Path, offset: int, length: int) -> None:
    data = bytearray(shard.read_bytes())
    head = struct.pack("<Q", length)
    data[offset:offset + 12] = head + struct.pack("<I", masked_crc32c(head))
    shard.write_bytes(bytes(data))


@case
def tfr_length_2_pow_40(tmp):
    index, shard = make_tfr(tmp / "t")
    _patch_length(shard, 0, 2 ** 40)
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t")[0], DataFormatError,
                (str(shard), "line 1", "announces 1,099,511,627,776 bytes"))


@case
def tfr_length_past_end(tmp):
    index, shard = make_tfr(tmp / "t")
    _patch_length(shard, 0, shard.stat().st_size)
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t")[0], DataFormatError, (str(shard), "line 1",
                                                                                     "truncated"))


@case
def tfr_index_huge_offset(tmp):
    index, _ = make_tfr(tmp / "t")
    lines = index.read_text().splitlines()
    lines[1] = f"train\t0\t{HUGE}\t0"
    index.write_text("\n".join(lines) + "\n")
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t"), DataFormatError, (str(index), "line 2", "offset"))


#: TFRecord indexes ``edit(index)`` rewrote wrongly: name -> (edit, what the error says besides the index file)
TFR_INDEXES: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "tfr_index_huge_label": (lambda index: index.write_text(index.read_text().replace("\t1\n", f"\t{HUGE}\n")),
         ("line 3", "label")),
    "tfr_index_huge_shard": (lambda index: index.write_text(f"train\t{HUGE}\t0\t0\n"),
         ("line 1", "shard")),
    "tfr_index_negative_label": (lambda index: index.write_text("train\t0\t0\t-1\n"),
         ("line 1", "label -1")),
    "tfr_index_not_utf8": (lambda index: index.write_bytes(index.read_bytes() + b"tr" + BAD_UTF8 + b"\t0\t0\t0\n"),
         ("line 4", "UTF-8")),
    "tfr_index_path_traversal": (lambda index: index.write_text("../outside/secret.jpg\t0\n"),
         ("line 1", "climbs")),
    "tfr_index_absolute_path": (lambda index: index.write_text("train\t0\t0\t0\n/etc/passwd\t0\n"),
         ("line 2", "absolute")),
    "tfr_index_shard_name_traversal": (lambda index: index.write_text("../train\t0\t0\t0\n"),
         ("line 1", "single path component")),
    "tfr_index_three_fields": (lambda index: index.write_text("train\t0\t0\n"),
         ("line 1",)),
}


def _tfr_index_case(tmp: Path, edit: Callable[[Path], object], says: tuple[str, ...]) -> Case:
    secret_file(tmp)  # a file outside the data root that a climbing path would reach
    index, _ = make_tfr(tmp / "t")
    edit(index)
    return index_case(index, tmp / "t", *says)


for _name, (_edit, _says) in TFR_INDEXES.items():
    CASES[_name] = functools.partial(_tfr_index_case, edit=_edit, says=_says)


@case
def tfr_index_symlink_escaping_root(tmp):
    secret = secret_file(tmp)
    index, _ = make_tfr(tmp / "t")
    os.symlink(secret, tmp / "t" / "leak.jpg")
    index.write_text("leak.jpg\t0\n")
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t")[0], DataFormatError,
                (str(tmp / "t" / "leak.jpg"), "line 1", "outside the data root"))


@case
def tfr_shard_symlink_escaping_root(tmp):
    index, shard = make_tfr(tmp / "t")
    (tmp / "elsewhere").mkdir()
    os.replace(shard, tmp / "elsewhere" / shard.name)
    os.symlink(tmp / "elsewhere" / shard.name, shard)
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t"), DataFormatError,
                (str(shard), f"{index} line 1", "outside the data root"))


@case
def tfr_shard_is_a_fifo(tmp):
    index, shard = make_tfr(tmp / "t")
    shard.unlink()
    os.mkfifo(shard)
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t"), DataFormatError, (str(shard), "line 1", "FIFO"))


@case
def tfr_index_is_a_fifo(tmp):
    (tmp / "t").mkdir()
    os.mkfifo(tmp / "t" / "train.index")
    return Case(lambda: TFRecordIndexDataset(tmp / "t" / "train.index", tmp / "t"), DataFormatError,
                (str(tmp / "t" / "train.index"), "FIFO"))


@case
def tfr_data_crc_mismatch(tmp):
    index, shard = make_tfr(tmp / "t")
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t")[0], DataFormatError, (str(shard), "line 1",
                                                                                     "data CRC"))


@case
def tfr_jpeg_bomb_record(tmp):
    index = Path(write_tfrecords(tmp / "t", [(jpeg_bomb(), 0)]))
    return Case(lambda: TFRecordIndexDataset(index, tmp / "t")[0], DataFormatError,
                (str(tmp / "t" / "train" / "train-00000.tfrecord"), "line 1", "max_pixels"))


# --- verification sets
def _marker_pickles(marker: Path) -> list[bytes]:
    class Shell:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    class Eval:
        def __reduce__(self):
            return eval, (f"open({str(marker)!r}, 'w').close()",)

    return [pickle.dumps(([Shell(), b""], [True]), protocol=p) for p in (2, 4)] + [
        pickle.dumps(([Eval(), b""], [True]), protocol=4),
        f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),  # Python-2 style protocol 0
        f"cnumpy.testing._private.utils\nrunstring\n(S'open(\"{marker}\", \"w\")'\nS'x'\ntR.".encode(),
    ]


@case
def bin_pickle_shell(tmp):
    path = tmp / "evil.bin"
    path.write_bytes(_marker_pickles(tmp / "MARKER")[0])
    return Case(lambda: read_bin(path), DataFormatError, (str(path), "not allowed"))


@case
def bin_pickle_python2_global(tmp):
    path = tmp / "evil.bin"
    path.write_bytes(_marker_pickles(tmp / "MARKER")[3])
    return Case(lambda: read_bin(path), DataFormatError, (str(path), "'os.system' is not allowed"))


@case
def bin_jpeg_bomb(tmp):
    path = tmp / "bomb.bin"
    write_bin(path, [jpeg(1), jpeg(2), jpeg(3), jpeg_bomb()], [True, False])
    return Case(lambda: read_bin(path), DataFormatError, (str(path), "bins[3] (pair 1)", "max_pixels"))


@case
def bin_png_bomb(tmp):
    path = tmp / "bomb.bin"
    write_bin(path, [png_bomb(), jpeg(2)], [True])
    return Case(lambda: read_bin(path), DataFormatError, (str(path), "bins[0] (pair 0)", "30000×30000"))


@case
def bin_file_is_a_fifo(tmp):
    os.mkfifo(tmp / "lfw.bin")
    return Case(lambda: read_bin(tmp / "lfw.bin"), DataFormatError, (str(tmp / "lfw.bin"), "FIFO"))


def _lfw(tmp: Path, pairs: bytes) -> tuple[Path, Path]:
    root = tmp / "lfw"
    for name in ("A_a", "B_b"):
        (root / name).mkdir(parents=True)
        for i in (1, 2):
            (root / name / f"{name}_{i:04d}.jpg").write_bytes(jpeg(i))
    (tmp / "pairs.txt").write_bytes(pairs)
    return tmp / "pairs.txt", root


@case
def pairs_not_utf8(tmp):
    path, root = _lfw(tmp, b"1 1\nA_a 1 2\nB" + BAD_UTF8 + b" 1 A_a 2\n")
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 3", "UTF-8"))


@case
def pairs_huge_header(tmp):
    path, root = _lfw(tmp, f"{HUGE} 1\nA_a 1 2\nB_b 1 A_a 2\n".encode())
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 1", "header count"))


@case
def pairs_huge_image_number(tmp):
    path, root = _lfw(tmp, f"1 1\nA_a 1 {HUGE}\nB_b 1 A_a 2\n".encode())
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 2", "image number"))


@case
def pairs_name_traversal(tmp):
    secret_file(tmp)
    path, root = _lfw(tmp, b"1 1\nA_a 1 2\n.. 1 A_a 2\n")
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 3", "'..'"))


@case
def pairs_image_symlink_escaping_root(tmp):
    secret = secret_file(tmp)
    path, root = _lfw(tmp, b"1 1\nA_a 1 2\nB_b 1 A_a 2\n")
    (root / "B_b" / "B_b_0001.jpg").unlink()
    os.symlink(secret, root / "B_b" / "B_b_0001.jpg")
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 3", "outside the data root"))


@case
def pairs_image_is_a_fifo(tmp):
    path, root = _lfw(tmp, b"1 1\nA_a 1 2\nB_b 1 A_a 2\n")
    (root / "A_a" / "A_a_0002.jpg").unlink()
    os.mkfifo(root / "A_a" / "A_a_0002.jpg")
    return Case(lambda: read_lfw_pairs(path, root), DataFormatError, (str(path), "line 2", "FIFO"))


@case
def pair_folders_not_utf8(tmp):
    (tmp / "pl.txt").write_bytes(b"7 1\n" + BAD_UTF8 + b" 0\n")
    return Case(lambda: read_pair_folders(tmp / "pl.txt", tmp), DataFormatError, (str(tmp / "pl.txt"), "line 2",
                                                                                   "UTF-8"))


@case
def pair_folders_traversal(tmp):
    (tmp / "root").mkdir()
    (tmp / "pl.txt").write_text("../outside 1\n")
    return Case(lambda: read_pair_folders(tmp / "pl.txt", tmp / "root"), DataFormatError,
                (str(tmp / "pl.txt"), "line 1", "single path component"))


# --- IJB lists
@case
def ijb_tid_not_utf8(tmp):
    root = make_ijb(tmp / "IJBC")
    p = root / "meta" / "ijbc_face_tid_mid.txt"
    p.write_bytes(p.read_bytes() + b"4" + BAD_UTF8 + b".jpg 3 8\n")
    return Case(lambda: read_ijb(root), DataFormatError, (str(p), "line 4", "UTF-8"))


#: IJB releases that ``make_ijb(**release)`` writes wrongly: name -> (release, list file named, what it says)
IJB_LISTS: dict[str, tuple[dict, str, tuple[str, ...]]] = {
    "ijb_huge_template_id": (dict(tid=f"1.jpg 1 5\n2.jpg {HUGE} 6\n3.jpg 2 7\n"), "ijbc_face_tid_mid.txt",
                              ("line 2", "column 2")),
    "ijb_negative_media_id": (dict(tid="1.jpg 1 5\n2.jpg 1 6\n3.jpg 2 -7\n"), "ijbc_face_tid_mid.txt",
                               ("line 3", "non-negative")),
    "ijb_huge_pair_label": (dict(pairs=f"1 2 0\n1 1 {HUGE}\n"), "ijbc_template_pair_label.txt",
                             ("line 2", "column 3")),
    "ijb_image_path_traversal": (dict(names=("1.jpg", "../../outside/secret.jpg", "3.jpg")),
                                 "ijbc_face_tid_mid.txt", ("line 2", "climbs")),
    "ijb_absolute_image_path": (dict(names=("1.jpg", "2.jpg", "/etc/passwd")), "ijbc_face_tid_mid.txt",
                                 ("line 3", "absolute")),
    "ijb_infinite_score": (dict(lmk_value="1e400"), "ijbc_name_5pts_score.txt", ("line 1", "finite")),
}


def _ijb_list_case(tmp: Path, release: dict, meta_file: str, says: tuple[str, ...]) -> Case:
    secret_file(tmp)  # a file outside the release that a climbing path would reach
    return ijb_case(make_ijb(tmp / "IJBC", **release), meta_file, *says)


for _name, (_release, _meta_file, _says) in IJB_LISTS.items():
    CASES[_name] = functools.partial(_ijb_list_case, release=_release, meta_file=_meta_file, says=_says)


@case
def ijb_tid_list_is_a_fifo(tmp):
    root = make_ijb(tmp / "IJBC")
    p = root / "meta" / "ijbc_face_tid_mid.txt"
    p.unlink()
    os.mkfifo(p)
    return Case(lambda: read_ijb(root), DataFormatError, (str(p), "FIFO"))


@case
def ijb_1n_csv_not_utf8(tmp):
    root = make_ijb(tmp / "IJBC")
    p = root / "meta" / "ijbc_1N_gallery_G1.csv"
    p.write_bytes(b"TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,100,a.jpg\n2," + BAD_UTF8 + b",b.jpg\n")
    return Case(lambda: read_ijb(root), DataFormatError, (str(p), "line 3", "UTF-8"))


@case
def ijb_image_is_a_fifo(tmp):
    root = make_ijb(tmp / "IJBC")
    (root / "loose_crop").mkdir()
    os.mkfifo(root / "loose_crop" / "1.jpg")
    return Case(lambda: list(_iter_aligned(read_ijb(root), 0, 1, 112, DEFAULT_MAX_PIXELS)), DataFormatError,
                (str(root / "loose_crop" / "1.jpg"), "image 0", "FIFO"))


@case
def ijb_image_bomb(tmp):
    root = make_ijb(tmp / "IJBC")
    (root / "loose_crop").mkdir()
    (root / "loose_crop" / "1.jpg").write_bytes(jpeg_bomb())
    return Case(lambda: list(_iter_aligned(read_ijb(root), 0, 1, 112, DEFAULT_MAX_PIXELS)), DataFormatError,
                (str(root / "loose_crop" / "1.jpg"), "image 0", "max_pixels"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_names_file_and_record(name, tmp_path):
    case_ = CASES[name](tmp_path)
    with pytest.raises(Exception) as info:
        case_.run()
    assert type(info.value) is case_.error, f"{name}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for part in case_.says:
        assert part in message, f"{name}: {part!r} missing from {message!r}"
    assert SECRET.decode() not in message and SECRET[:4].hex() not in message
    assert not (tmp_path / "MARKER").exists()


# ----------------------------------------------------------------------------------------------- counted skips
def test_skip_mode_counts_instead_of_raising(tmp_path):
    root = make_folder(tmp_path / "f")
    os.mkfifo(root / "id0" / "x.jpg")
    os.symlink("/dev/zero", root / "id1" / "z.jpg")
    os.symlink("loop.jpg", root / "id1" / "loop.jpg")
    with pytest.warns(UserWarning, match="skipped 3 bad record"):
        ds = FolderDataset(root, on_error="skip")
    assert len(ds) == 4 and len(ds.skipped) == 3
    assert {os.path.basename(r.path) for r in ds.skipped.records} == {"x.jpg", "z.jpg", "loop.jpg"}

    rec = edited_rec(tmp_path, lambda rows, rec: rows[2].__setitem__(1, rows[1][1]))
    with pytest.warns(UserWarning, match="skipped 1"):
        rds = RecordDataset(rec, on_error="skip")  # every header is read: the duplicate is dropped up front
    assert rds.keys.tolist() == [1, 3, 4] and "line 3" in str(rds.skipped.records[0])

    index, shard = make_tfr(tmp_path / "t")
    _patch_length(shard, 0, 2 ** 40)
    tds = TFRecordIndexDataset(index, tmp_path / "t", on_error="skip")
    with pytest.warns(UserWarning, match="another of identity 0"):
        image, label = tds[0]  # replaced by the other image of identity 0, never a MemoryError
    assert label == 0 and image.shape == (16, 16, 3) and len(tds.skipped) == 1
    assert "1,099,511,627,776" in tds.skipped.records[0].reason

    index.write_text("../x.jpg\t0\ntrain\t0\t0\t0\n/etc/passwd\t1\n")
    with pytest.warns(UserWarning, match="skipped 2"):
        tds = TFRecordIndexDataset(index, tmp_path / "t", on_error="skip")
    assert len(tds) == 1 and len(tds.skipped) == 2

    path, lroot = _lfw(tmp_path / "l", b"1 1\nA_a 1 2\nB_b 1 A_a 2\n")
    (lroot / "B_b" / "B_b_0001.jpg").write_bytes(jpeg_bomb())
    with pytest.warns(UserWarning, match="skipped 1"):
        images, issame = read_lfw_pairs(path, lroot, on_error="skip")
    assert images.shape == (2, 16, 16, 3) and issame.tolist() == [True]


# ----------------------------------------------------------------------------------------------- pickles
def test_code_running_pickles_never_run_and_python2_pickles_load(tmp_path):
    marker = tmp_path / "MARKER"
    for i, payload in enumerate(_marker_pickles(marker)):
        path = tmp_path / f"evil{i}.bin"
        path.write_bytes(payload)
        with pytest.raises(DataFormatError, match=rf"evil{i}\.bin"):
            read_bin(path)
        assert not marker.exists(), f"pickle {i} ran code"
    bins, issame = [jpeg(1), jpeg(2)], [True]
    (tmp_path / "py2.bin").write_bytes(pickle.dumps((bins, issame), protocol=2))  # bytes via _codecs.encode
    images, flags = read_bin(tmp_path / "py2.bin")
    assert images.shape == (2, 16, 16, 3) and flags.tolist() == [True]


# ----------------------------------------------------------------------------------------------- convert
def _refused(argv: list[str], tmp: Path, capsys, *says: str) -> None:
    before = tree_digest(tmp)
    assert convert(argv + (["--quiet"] if argv[0] == "dataset" else [])) == 2
    err = capsys.readouterr().err
    assert "refused" in err, err
    for part in says:
        assert part in err, (part, err)
    assert tree_digest(tmp) == before  # inputs byte-identical, nothing written anywhere


def test_convert_refuses_output_overlapping_inputs(tmp_path, capsys):
    f = make_folder(tmp_path / "f")
    _refused(["dataset", str(f), str(f), "--to", "folder"], tmp_path, capsys, "is the input folder")
    _refused(["dataset", str(f), str(f / "out"), "--to", "rec"], tmp_path, capsys, "inside the input folder")
    _refused(["dataset", str(f), str(tmp_path), "--to", "folder"], tmp_path, capsys, "contains the input folder")
    os.symlink(f, tmp_path / "alias")
    _refused(["dataset", str(f), str(tmp_path / "alias"), "--to", "tfrecord"], tmp_path, capsys, "input folder")

    rec = make_rec(tmp_path / "r")
    for to in ("rec", "tfrecord", "folder"):  # same directory (same prefix for rec): would truncate train.rec
        _refused(["dataset", str(rec), str(rec.parent), "--to", to], tmp_path, capsys, str(rec))
    _refused(["dataset", str(rec), str(rec), "--to", "folder"], tmp_path, capsys, "is the input file")
    (tmp_path / "links").mkdir()
    os.link(rec, tmp_path / "links" / "train.rec")  # a hard link: same inode, other name
    _refused(["dataset", str(rec), str(tmp_path / "links"), "--to", "rec"], tmp_path, capsys, "contains the input")

    index, _ = make_tfr(tmp_path / "t")
    _refused(["dataset", str(index), str(tmp_path / "t" / "conv"), "--to", "folder"], tmp_path, capsys,
             "inside the input folder")
    (tmp_path / "l.json").write_text(json.dumps({"id0/000.jpg": {"label": 0, **BOX}}))
    _refused(["dataset", str(tmp_path / "l.json"), str(f / "al"), "--to", "folder", "--image-root", str(f)],
             tmp_path, capsys, "inside the input folder")

    path, root = _lfw(tmp_path / "lfw_set", b"1 1\nA_a 1 2\nB_b 1 A_a 2\n")
    _refused(["pairs", str(path), str(root), str(path)], tmp_path, capsys, "is the input file")
    _refused(["pairs", str(path), str(root), str(root / "lfw.bin")], tmp_path, capsys, "inside the input folder")
    # an allowed conversion still works and leaves the inputs as they were
    before = tree_digest(f)
    assert convert(["dataset", str(f), str(tmp_path / "ok"), "--to", "rec", "--quiet"]) == 0
    assert tree_digest(f) == before and len(RecordDataset(tmp_path / "ok" / "train.rec")) == 4


def test_convert_fifo_in_input_folder_never_hangs(tmp_path, capsys):
    f = make_folder(tmp_path / "f")
    os.mkfifo(f / "id1" / "x.jpg")
    assert convert(["dataset", str(f), str(tmp_path / "o1"), "--to", "rec", "--quiet"]) == 2
    assert "x.jpg" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="x.jpg"):
        assert convert(["dataset", str(f), str(tmp_path / "o2"), "--to", "folder", "--quiet", "--on-error",
                        "skip"]) == 0
    assert "skipped 1 bad record" in capsys.readouterr().out
    assert len(FolderDataset(tmp_path / "o2")) == 4


def test_convert_max_pixels_flag(tmp_path, capsys):
    f = make_folder(tmp_path / "f")
    assert convert(["dataset", str(f), str(tmp_path / "o"), "--to", "rec", "--quiet", "--max-pixels", "100"]) == 2
    err = capsys.readouterr().err
    assert "000.jpg" in err and "max_pixels=100" in err
    (f / "id0" / "001.jpg").write_bytes(jpeg_bomb())
    assert convert(["dataset", str(f), str(tmp_path / "o2"), "--to", "folder", "--quiet"]) == 2
    assert "max_pixels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert(["dataset", str(f), str(tmp_path / "o3"), "--to", "rec", "--max-pixels", "-5"])
    path, root = _lfw(tmp_path / "l", b"1 1\nA_a 1 2\nB_b 1 A_a 2\n")
    assert convert(["pairs", str(path), str(root), str(tmp_path / "p.bin"), "--max-pixels", "100"]) == 2
    assert "max_pixels=100" in capsys.readouterr().err


def test_default_readers_accept_ordinary_data(tmp_path):
    """The checks refuse nothing ordinary: every reader reads massface's own output under its defaults."""
    rec = make_rec(tmp_path / "r")
    assert len(RecordDataset(rec)) == 4 and RecordDataset(rec)[3][1] == 1
    assert read_property(rec.parent / "property") == (2, 16, 16)
    index, _ = make_tfr(tmp_path / "t")
    assert [TFRecordIndexDataset(index, tmp_path / "t")[i][1] for i in range(3)] == [0, 0, 1]
    write_folder(tmp_path / "fo", [(jpeg(1), 0), (png_bomb(8, 8), 1)])
    assert FolderDataset(tmp_path / "fo")[1][0].shape == (8, 8, 3)
