"""MXNet indexed RecordIO (insightface's ``train.rec`` / ``train.idx`` / ``property``) without mxnet.

Format (dmlc-core ``recordio.h``, mxnet ``recordio.py``; eval-protocols §5.1), little-endian:

* ``.rec`` record part: ``uint32 magic 0xCED7230A | uint32 lrec | payload | zero pad to 4 bytes`` with
  ``lrec = cflag << 29 | length``. A payload holding the magic word at a 4-aligned offset is split there
  (the 4 bytes dropped) into parts with cflag 1 (first), 2 (middle), 3 (last); readers re-insert them.
* payload: IRHeader ``'<IfQQ'`` = (flag, label, id, id2), 24 bytes; if flag > 0 the next ``flag`` float32
  are the label array; the rest is the encoded image.
* ``.idx``: text lines ``key<TAB>offset``; the IRHeader ``id`` of the record at ``offset`` is ``key``.
* insightface layout: image keys 1..N grouped by identity (labels 0..C-1 ascending), identity records
  N+1..N+C with empty images and label ``[first_key, end_key)``, header record 0 with label
  ``[N+1, N+1+C]``; ``property`` holds ``C,H,W``.

Hostile or careless input gives a :class:`DataFormatError` naming the file and the record or line: every number of
the ``.idx`` is range-checked (keys in [0, 2**63), offsets inside the ``.rec``), an empty ``.idx`` next to a non-empty
``.rec`` is refused, the record id of each entry is verified when the record is read (an ``.idx`` line pointing at
another record would silently duplicate an image), record lengths are checked against the file size before
anything is read, only regular files are opened, and images are checked against ``property``'s H,W and
``max_pixels`` from their header before decoding.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from massface._progress import progress_bar
from massface.data._errors import DataFormatError, LazyText, OnError, PathLike, raise_or_record
from massface.data._guard import (
    DEFAULT_MAX_PIXELS,
    MAX_LABEL,
    ImageError,
    create_temp,
    image_header,
    parse_int,
    parse_ints,
    read_lines,
    require_regular_file,
)
from massface.data.encoded import EncodedImageDataset, FileCache, ImageLike, encode_image, size_hints

__all__ = ["RECORDIO_MAGIC", "IRHeader", "RecordIOReader", "RecordDataset", "RecordWriteResult", "frame_record",
           "pack_payload", "unpack_payload", "write_records", "read_property"]

RECORDIO_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
_LEN_MASK = (1 << 29) - 1
_IR = struct.Struct("<IfQQ")
_FLOAT_EXACT = 1 << 24  # float32 holds every integer below 2**24 exactly
_HEADER_PEEK = 8 + _IR.size + 4 * 8
_MAX_KEY = 2 ** 63 - 1  # keys are IRHeader ids (uint64) held in int64 arrays
_MAX_SIDE = 2 ** 31 - 1
_IDX_FIELDS = (("key", 0, _MAX_KEY), ("offset", 0, _MAX_KEY))


class IRHeader(NamedTuple):
    """mxnet's image-record header; ``label`` is a float, or a tuple of floats when ``flag > 0``."""

    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int


# ----------------------------------------------------------------------------------------------- payloads
def pack_payload(label: float | Iterable[float], image: bytes = b"", id: int = 0, id2: int = 0) -> bytes:
    """IRHeader + label floats + image bytes, as ``mx.recordio.pack`` builds it."""
    if isinstance(label, (int, float, np.integer, np.floating)):
        return _IR.pack(0, float(label), int(id), int(id2)) + bytes(image)
    values = np.asarray(list(label), dtype="<f4")
    return _IR.pack(values.size, 0.0, int(id), int(id2)) + values.tobytes() + bytes(image)


def unpack_payload(payload: bytes, path: PathLike = "<payload>", record: object = None) -> tuple[IRHeader, bytes]:
    """Split a record payload into its :class:`IRHeader` and the image bytes (``mx.recordio.unpack``)."""
    if len(payload) < _IR.size:
        raise DataFormatError(path, f"payload of {len(payload)} bytes is shorter than the 24-byte IRHeader "
                                    "('<IfQQ' flag, label, id, id2)", record)
    flag, label, id_, id2 = _IR.unpack_from(payload)
    if flag == 0:
        return IRHeader(0, label, id_, id2), payload[_IR.size:]
    end = _IR.size + 4 * flag
    if end > len(payload):
        raise DataFormatError(path, f"IRHeader flag {flag} announces {flag} label floats but the payload has "
                                    f"only {len(payload) - _IR.size} bytes after the header", record)
    labels = tuple(float(v) for v in np.frombuffer(payload, dtype="<f4", count=flag, offset=_IR.size))
    return IRHeader(flag, labels, id_, id2), payload[end:]


def _as_int(value: float, path: PathLike, record: object, what: str) -> int:
    if not math.isfinite(value) or value != int(value) or not 0 <= value < _FLOAT_EXACT:
        raise DataFormatError(path, f"{what} {value!r} is not an integer in [0, 2**24) "
                                    "(float32 labels are exact only there)", record)
    return int(value)


def _image_label(header: IRHeader, path: PathLike, record: object) -> int:
    value = header.label if header.flag == 0 else header.label[0]
    return _as_int(value, path, record, "label")


# ----------------------------------------------------------------------------------------------- framing
def frame_record(payload: bytes) -> bytes:
    """Frame ``payload`` as one logical RecordIO record (split at 4-aligned magic words, 4-byte padding).

    Follows dmlc ``RecordIOWriter::WriteRecord``. Time O(len(payload)).
    """
    n = len(payload)
    aligned = np.frombuffer(payload, dtype="<u4", count=n // 4)
    cuts = (np.flatnonzero(aligned == RECORDIO_MAGIC) * 4).tolist()
    out = []
    start = 0
    for cut in cuts:
        out.append(struct.pack("<II", RECORDIO_MAGIC, ((1 if start == 0 else 2) << 29) | (cut - start)))
        out.append(payload[start:cut])
        start = cut + 4
    length = n - start
    out.append(struct.pack("<II", RECORDIO_MAGIC, ((3 if cuts else 0) << 29) | length))
    out.append(payload[start:])
    out.append(b"\0" * (-length % 4))
    return b"".join(out)


def _read_record(files: FileCache, path: str, offset: int, hint: int, record: object) -> bytes:
    """Read the logical record starting at ``offset`` (one ``pread`` of ``hint`` bytes when it suffices)."""
    parts: list[bytes] = []
    pos = offset
    buf = files.read(path, offset, max(hint, 8))
    at = 0
    while True:
        if len(buf) - at < 8:
            buf, at = files.read(path, pos, 8), 0
            if len(buf) < 8:
                raise DataFormatError(path, f"truncated: record part header at byte {pos} needs 8 bytes, "
                                            f"the file ends after {len(buf)}", record)
        magic, lrec = struct.unpack_from("<II", buf, at)
        if magic != RECORDIO_MAGIC:
            raise DataFormatError(path, f"bad magic at byte {pos} (expected the RecordIO magic 0x{RECORDIO_MAGIC:08x}; "
                                        "is the .idx offset right and the file a RecordIO .rec?)", record)
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        padded = (length + 3) & ~3
        if len(buf) - at < 8 + length:
            remaining = files.size(path, record) - pos - 8
            if length > remaining:
                remaining = files.size(path, record, refresh=True) - pos - 8
            if length > remaining:  # checked before reading: a corrupt length never drives an allocation
                raise DataFormatError(path, f"truncated: record part at byte {pos} announces {length} payload "
                                            f"bytes, only {max(remaining, 0)} remain", record)
            buf, at = files.read(path, pos, 8 + padded), 0
            if len(buf) < 8 + length:
                raise DataFormatError(path, f"truncated: record part at byte {pos} announces {length} payload "
                                            f"bytes, only {max(len(buf) - 8, 0)} remain", record)
        if cflag > 3 or (cflag in (1,) and parts) or (cflag in (2, 3) and not parts) or (cflag == 0 and parts):
            raise DataFormatError(path, f"bad continuation flag {cflag} at byte {pos} (part {len(parts) + 1}: "
                                        "expected 0 or 1 for a first part, 2 or 3 after it)", record)
        parts.append(buf[at + 8:at + 8 + length])
        pos += 8 + padded
        at += 8 + padded
        if cflag in (0, 3):
            return parts[0] if len(parts) == 1 else _MAGIC_BYTES.join(parts)


# ----------------------------------------------------------------------------------------------- reader
def read_property(path: PathLike) -> tuple[int, int, int]:
    """Parse insightface's ``property`` file: one line ``num_classes,H,W`` of positive integers.

    The file must be a regular strict-UTF-8 text file; each number is range-checked (num_classes at most 2**31,
    H and W below 2**31). Raises :class:`DataFormatError` naming the file and line.
    """
    path = os.fspath(path)
    rows = [(n, line.strip()) for n, line in enumerate(read_lines(path), 1) if line.strip()]
    if len(rows) != 1 or len(rows[0][1].split(",")) != 3:
        got = rows[0][1][:80] if rows else ""
        raise DataFormatError(path, f"expected one line 'num_classes,H,W' of positive integers, got {got!r}"
                                    + (f" and {len(rows) - 1} more line(s)" if len(rows) > 1 else ""),
                              f"line {rows[0][0]}" if rows else None)
    lineno, text = rows[0]
    return tuple(parse_int(field, path, f"line {lineno}", what, 1, hi)  # type: ignore[return-value]
                 for field, what, hi in zip(text.split(","), ("num_classes", "H", "W"),
                                            (MAX_LABEL + 1, _MAX_SIDE, _MAX_SIDE)))


class RecordIOReader:
    """Random access to an indexed RecordIO file (``.rec`` + ``.idx``), like ``mx.recordio.MXIndexedRecordIO``.

    ``keys`` keeps the ``.idx`` order (``lines`` holds each entry's line number); ``read(key)`` returns the
    payload. Reads use per-process descriptors (:class:`FileCache`), so a reader may be shared with forked
    DataLoader workers. Opening parses the ``.idx`` (O(#keys) time and memory); a read costs one ``pread``.

    Both files must be regular files (a missing one raises FileNotFoundError, a FIFO or device DataFormatError).
    The ``.idx`` must be strict UTF-8 with unique keys in [0, 2**63) and offsets inside the ``.rec``; an ``.idx``
    without entries next to a non-empty ``.rec`` is refused. With ``check_ids=True`` (the default; every
    mxnet / insightface writer stores the key as the IRHeader ``id``) each read verifies that the record at the
    entry's offset has ``id == key`` — an entry pointing at another record raises :class:`DataFormatError` naming
    the ``.idx`` line instead of returning that other record.
    """

    def __init__(self, rec_path: PathLike, idx_path: PathLike | None = None, *, check_ids: bool = True) -> None:
        self.rec_path = os.fspath(rec_path)
        self.idx_path = os.fspath(idx_path) if idx_path is not None else os.path.splitext(self.rec_path)[0] + ".idx"
        self.file_size = require_regular_file(self.rec_path, "RecordIO file")
        require_regular_file(self.idx_path, "RecordIO index (.idx)")
        self.check_ids = bool(check_ids)
        self.keys, self.offsets, self.lines = self._parse_idx()
        if self.keys.size == 0 and self.file_size > 0:
            raise DataFormatError(self.idx_path, f"the index has no 'key<TAB>offset' entries but {self.rec_path} holds "
                                                 f"{self.file_size:,} bytes of records (an empty or truncated .idx "
                                                 "would read as an empty dataset); rebuild the index")
        order = np.argsort(self.keys, kind="stable")
        same = np.flatnonzero(np.diff(self.keys[order]) == 0)
        if same.size:
            a, b = order[same[0]], order[same[0] + 1]
            raise DataFormatError(self.idx_path, f"key {self.keys[a]} appears more than once (also on line "
                                                 f"{self.lines[a]}; keys must be unique)", f"line {self.lines[b]}")
        self._pos = {int(k): i for i, k in enumerate(self.keys.tolist())}
        self.hints = size_hints(self.offsets, np.zeros(self.keys.size, np.int64), np.array([self.file_size]))
        self._files = FileCache()

    def _parse_idx(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys, offsets, line numbers) of the ``.idx`` entries; every number range-checked before it is stored."""
        path, last = self.idx_path, self.file_size - 8  # a record needs at least its 8-byte part header
        lines = read_lines(path)
        keys = np.empty(len(lines), dtype=np.int64)
        offsets = np.empty(len(lines), dtype=np.int64)
        linenos = np.empty(len(lines), dtype=np.int64)
        n = 0
        for lineno, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataFormatError(path, f"expected 'key<TAB>offset' with two integers, got {line[:60]!r}",
                                      f"line {lineno}")
            try:  # hot loop (millions of lines): plain int() first, parse_ints names the culprit otherwise
                key, offset = int(fields[0]), int(fields[1])
            except ValueError:
                key = offset = -1
            if not (0 <= key <= _MAX_KEY and 0 <= offset <= last):
                key, offset = parse_ints(fields, _IDX_FIELDS, path, f"line {lineno}")
                if offset > last:
                    raise DataFormatError(path, f"offset {offset} is past the end of {self.rec_path} "
                                                f"({self.file_size:,} bytes; a record needs at least 8)",
                                          f"line {lineno}")
            keys[n], offsets[n], linenos[n] = key, offset, lineno
            n += 1
        return keys[:n], offsets[:n], linenos[:n]

    def __contains__(self, key: int) -> bool:
        return int(key) in self._pos

    def describe(self, key: int) -> str:
        i = self._pos.get(int(key))
        return f"record key {key}" + (f" (offset {self.offsets[i]})" if i is not None else "")

    def _entry(self, key: int) -> int:
        i = self._pos.get(int(key))
        if i is None:
            raise DataFormatError(self.idx_path, "key is not in the index", f"record key {key}")
        return i

    def _check_id(self, i: int, record_id: int, where: object) -> None:
        """Refuse the record read for entry ``i`` when its IRHeader id is not the entry's key."""
        key = int(self.keys[i])
        if self.check_ids and record_id != key:
            raise DataFormatError(self.idx_path, f"this entry says record key {key} is at byte {self.offsets[i]} of "
                                                 f"{self.rec_path}, but the record there has IRHeader id {record_id} "
                                                 "(the index points at another record; open with check_ids=False "
                                                 "only if this .rec's writer did not store keys as ids)",
                                  f"line {self.lines[i]} ({where})")

    def read(self, key: int, where: object = None) -> bytes:
        """Payload of record ``key``; DataFormatError names the file, key and offset (or ``where``) when bad."""
        i = self._entry(key)
        where = where if where is not None else LazyText(self.describe, key)
        payload = _read_record(self._files, self.rec_path, int(self.offsets[i]), int(self.hints[i]), where)
        if self.check_ids and len(payload) >= 16:  # shorter payloads are refused by unpack_payload
            self._check_id(i, struct.unpack_from("<Q", payload, 8)[0], where)
        return payload

    def read_header(self, key: int) -> IRHeader:
        """IRHeader of record ``key`` from a short read (the whole record only when it is split)."""
        i = self._entry(key)
        offset, where = int(self.offsets[i]), self.describe(key)
        peek = min(int(self.hints[i]), _HEADER_PEEK)
        buf = self._files.read(self.rec_path, offset, max(peek, 8), where)
        if len(buf) < 8:
            return unpack_payload(self.read(key), self.rec_path, where)[0]  # raises "truncated"
        magic, lrec = struct.unpack_from("<II", buf)
        flag = struct.unpack_from("<I", buf, 8)[0] if len(buf) >= 12 else 0
        if magic == RECORDIO_MAGIC and lrec >> 29 == 0 and len(buf) >= 8 + _IR.size + 4 * flag \
                and (lrec & _LEN_MASK) >= _IR.size + 4 * flag:
            header = unpack_payload(buf[8:8 + (lrec & _LEN_MASK)], self.rec_path, where)[0]
            self._check_id(i, header.id, where)
            return header
        return unpack_payload(self.read(key), self.rec_path, where)[0]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = FileCache()
        return state


class RecordDataset(EncodedImageDataset):
    """insightface ``train.rec`` as a map-style dataset: ``ds[i] -> (RGB uint8 (H, W, 3) or transform(x), label)``.

    Sample order follows arcface_torch's ``MXFaceDataset``: when header record 0 has a label array,
    the images are keys ``1 .. label[0]-1``; otherwise every ``.idx`` key. A label is the record's
    scalar label or ``label[0]`` of its label array.

    ``.labels`` (int64) is computed without decoding images: from the identity records (C short reads,
    each checked against the header of that identity's first image) when header record 0 describes
    them, else — or when ``scan_labels=True`` or ``on_error="skip"`` — from every image record's
    header (N short reads). ``__getitem__`` checks the record's own label against ``.labels`` and
    raises on disagreement: a wrong label is never returned. With ``on_error="skip"`` records with a
    bad frame or header are dropped at construction (see :attr:`skipped`), and an undecodable image is
    replaced at read time by another image of the same identity.

    ``property`` (``C,H,W``) next to the ``.rec`` is required unless ``require_property=False``;
    ``num_classes`` and ``image_size`` come from it, and every image must be H×W: its header is checked before
    decoding (a mismatch raises :class:`DataFormatError` naming the ``.rec`` and the record, or is skipped).
    Images of more than ``max_pixels`` pixels are refused from their header. ``check_ids`` is passed to
    :class:`RecordIOReader` (each ``.idx`` entry's record id is verified on read).
    """

    def __init__(self, rec_path: PathLike, transform: Callable[..., Any] | None = None, *,
                 idx_path: PathLike | None = None, on_error: OnError = "raise", scan_labels: bool = False,
                 require_property: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS, check_ids: bool = True) -> None:
        super().__init__(transform, on_error, max_pixels)
        self.reader = RecordIOReader(rec_path, idx_path, check_ids=check_ids)
        self.rec_path = self.reader.rec_path
        prop = os.path.join(os.path.dirname(os.path.abspath(self.rec_path)), "property")
        self.property: tuple[int, int, int] | None = None
        if os.path.lexists(prop):  # a FIFO or directory named property is an error, not a missing file
            self.property = read_property(prop)
            _, h, w = self.property
            if h * w > self.max_pixels:
                raise DataFormatError(prop, f"declares images of H,W = {h},{w} = {h * w:,} pixels, more than "
                                            f"max_pixels={self.max_pixels:,} (pass a larger max_pixels to read them)")
            self.expected_hw, self.expected_hw_source = (h, w), prop
        elif require_property:
            raise FileNotFoundError(f"insightface 'property' file (one line 'num_classes,H,W') not found: {prop}; "
                                    "pass require_property=False to read a .rec without it")
        image_keys, id_keys = self._layout()
        labels = None
        if id_keys is not None and self.on_error == "raise" and not scan_labels:
            labels = self._labels_from_identities(image_keys, id_keys)
        if labels is None:
            image_keys, labels = self._scan_labels(image_keys)
        self._keys = image_keys
        self._labels = labels
        if self.property is not None and labels.size and int(labels.max()) >= self.property[0]:
            raise DataFormatError(prop, f"num_classes {self.property[0]} but the records hold label "
                                        f"{int(labels.max())}")
        self.skipped.warn(f"RecordDataset({self.rec_path})")

    @property
    def num_classes(self) -> int:
        return self.property[0] if self.property is not None else super().num_classes

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) from ``property``, or None without one."""
        return None if self.property is None else (self.property[1], self.property[2])

    @property
    def keys(self) -> np.ndarray:
        """RecordIO key of each sample."""
        return self._keys

    def _layout(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(image keys, identity keys or None) from header record 0; the ranges it announces are checked against
        the ``.idx`` before any array of that size is made (a corrupt header cannot drive an allocation)."""
        reader = self.reader
        if 0 not in reader:
            return reader.keys.copy(), None
        header = reader.read_header(0)
        if header.flag == 0:
            return reader.keys.copy(), None
        where = reader.describe(0)
        first_id = _as_int(header.label[0], self.rec_path, where, "header record 0 label[0]")
        id_keys = None
        if header.flag >= 2:
            end_id = _as_int(header.label[1], self.rec_path, where, "header record 0 label[1]")
            if end_id < first_id:
                raise DataFormatError(self.rec_path, f"identity key range [{first_id}, {end_id}) is empty/reversed",
                                      where)
            if end_id - first_id <= reader.keys.size:  # else they cannot all be indexed: labels come from a scan
                id_keys = np.arange(first_id, end_id, dtype=np.int64)
        keys = reader.keys
        image_keys = np.sort(keys[(keys >= 1) & (keys < first_id)])  # unique: the reader refuses duplicates
        n_missing = first_id - 1 - image_keys.size
        if n_missing:
            gaps = np.flatnonzero(image_keys != np.arange(1, image_keys.size + 1))
            first_missing = int(gaps[0]) + 1 if gaps.size else image_keys.size + 1
            err = DataFormatError(reader.idx_path, f"header record 0 says images are keys 1..{first_id - 1} but "
                                                   f"{n_missing} are missing from the index (first: {first_missing})")
            raise_or_record(err, self.on_error, self.skipped)
        return image_keys, id_keys

    def _labels_from_identities(self, image_keys: np.ndarray, id_keys: np.ndarray) -> np.ndarray | None:
        """Labels from identity records ``[first, end)``; None when they do not partition the image keys."""
        reader = self.reader
        if image_keys.size == 0 or not np.array_equal(image_keys, np.arange(1, image_keys.size + 1)):
            return None
        counts = np.empty(id_keys.size, dtype=np.int64)
        expected_start = 1
        for j, key in enumerate(id_keys.tolist()):
            if key not in reader:
                return None
            h = reader.read_header(key)
            if h.flag < 2:
                return None
            a, b = h.label[0], h.label[1]
            if a != expected_start or b < a:
                return None
            counts[j] = int(b) - int(a)
            if b > a:
                first = reader.read_header(int(a))
                if _image_label(first, self.rec_path, reader.describe(int(a))) != j:
                    return None
            expected_start = int(b)
        if expected_start != image_keys.size + 1:
            return None
        return np.repeat(np.arange(id_keys.size, dtype=np.int64), counts)

    def _scan_labels(self, image_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reader = self.reader
        keep = np.ones(image_keys.size, dtype=bool)
        labels = np.zeros(image_keys.size, dtype=np.int64)
        for i, key in enumerate(image_keys.tolist()):
            try:
                labels[i] = _image_label(reader.read_header(key), self.rec_path, reader.describe(key))
            except DataFormatError as err:
                raise_or_record(err, self.on_error, self.skipped)
                keep[i] = False
        return image_keys[keep], labels[keep]

    # --- EncodedImageDataset
    def input_paths(self) -> tuple[list[str], list[str]]:
        prop = os.path.join(os.path.dirname(os.path.abspath(self.rec_path)), "property")
        return [self.rec_path, self.reader.idx_path] + ([prop] if self.property is not None else []), []

    def location(self, index: int) -> tuple[str, str]:
        return self.rec_path, self._where(index)

    def _where(self, index: int) -> str:
        return f"sample {index}, {self.reader.describe(int(self._keys[index]))}"

    def read_encoded(self, index: int) -> bytes:
        key = int(self._keys[index])
        where = LazyText(self._where, index)
        header, image = unpack_payload(self.reader.read(key, where), self.rec_path, where)
        label = _image_label(header, self.rec_path, where)
        if label != self._labels[index]:
            raise DataFormatError(self.rec_path, f"record label {label} disagrees with label {self._labels[index]} "
                                                 "derived from the identity records of header record 0 (open "
                                                 "with scan_labels=True to trust per-record labels)", where)
        return image


# ----------------------------------------------------------------------------------------------- writer
@dataclass(frozen=True)
class RecordWriteResult:
    """What :func:`write_records` wrote."""

    rec_path: str
    idx_path: str
    property_path: str
    num_images: int
    num_classes: int
    image_size: tuple[int, int]


def _check_label(label: Any, n: int) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
            and not (isinstance(label, (float, np.floating)) and float(label).is_integer()):
        raise ValueError(f"sample {n}: label must be an integer, got {label!r}")
    value = int(label)
    if not 0 <= value < _FLOAT_EXACT:
        raise ValueError(f"sample {n}: label {value} outside [0, 2**24) (RecordIO stores labels as float32)")
    return value


def _sample_hw(image: ImageLike, data: bytes, n: int) -> tuple[int, int]:
    """(H, W) of a sample: an array's shape, or read from the encoded header (nothing is decoded)."""
    if isinstance(image, np.ndarray) and image.ndim >= 2:
        return int(image.shape[0]), int(image.shape[1])
    try:
        _, w, h = image_header(data)
    except ImageError as err:
        raise ValueError(f"sample {n}: {err}") from None
    return int(h), int(w)


def write_records(directory: PathLike, samples: Iterable[tuple[ImageLike, int]], *, quality: int = 95,
                  label_array: bool = False, prefix: str = "train", progress: bool = False,
                  total: int | None = None) -> RecordWriteResult:
    """Write ``samples`` — ``(image, label)`` with encoded JPEG/PNG bytes or an RGB uint8 array — as insightface's
    ``{prefix}.rec``, ``{prefix}.idx`` and ``property`` in ``directory``.

    Layout: image keys 1..N grouped by label (stable within a label), identity records N+1..N+C with label
    ``[first_key, end_key)``, header record 0 with label ``[N+1, N+1+C]``, ``property`` = ``C,H,W`` (H, W of
    the first image). Image records carry a scalar label (RecBuilder) or, with ``label_array=True``, the array
    ``[label, 1.0]`` (face2rec2). Labels must be 0..C-1 with every identity present and every image of one H,W (read
from the header of encoded bytes). Arrays are JPEG-encoded at
    ``quality``; encoded bytes are stored untouched. Input already grouped by label streams in one pass;
    otherwise records are spooled and rewritten in grouped order. Time O(N) encodes + I/O, memory O(N) ints.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    rec_path = os.path.join(directory, f"{prefix}.rec")
    idx_path = os.path.join(directory, f"{prefix}.idx")
    prop_path = os.path.join(directory, "property")
    labels: list[int] = []
    offsets: list[int] = []
    grouped = True
    shape: tuple[int, int] | None = None
    bar = progress_bar(total=total, desc=f"write {rec_path}", unit="img", enabled=progress)
    fd, spool = create_temp(directory, f".{prefix}.", ".rec.part")
    try:
        with os.fdopen(fd, "wb") as out:
            pos = 0
            for n, sample in enumerate(samples):
                try:
                    image, label = sample
                except (TypeError, ValueError):
                    raise ValueError(f"sample {n}: expected an (image, label) pair, got {type(sample).__name__}")
                label = _check_label(label, n)
                data = encode_image(image, quality, what=f"sample {n}")
                hw = _sample_hw(image, data, n)
                if shape is None:
                    shape = hw
                elif hw != shape:
                    raise ValueError(f"sample {n}: image of H,W {hw} differs from the first image's {shape} "
                                     "(property records one H,W for the whole set; resize the images first)")
                if labels and label < labels[-1]:
                    grouped = False
                key = n + 1
                frame = frame_record(pack_payload([label, 1.0] if label_array else label, data, key))
                out.write(frame)
                offsets.append(pos)
                pos += len(frame)
                labels.append(label)
                bar.update()
            bar.close()
            n_img = len(labels)
            if n_img == 0:
                raise ValueError("write_records: no samples given")
            lab = np.asarray(labels, dtype=np.int64)
            counts = np.bincount(lab)
            if (counts == 0).any():
                missing = np.flatnonzero(counts == 0)
                raise ValueError(f"labels must be 0..C-1 with every identity present; label(s) "
                                 f"{missing[:5].tolist()} have no image (remap the labels first)")
            n_cls = counts.size
            if n_img + n_cls + 1 >= _FLOAT_EXACT:
                raise ValueError(f"{n_img} images + {n_cls} identities exceed the 2**24 keys that float32 "
                                 "identity ranges can address")
        if not grouped:
            offsets = _regroup(spool, lab, offsets)
        with open(spool, "ab") as out:
            pos = os.path.getsize(spool)
            starts = np.concatenate([[1], 1 + np.cumsum(counts)])
            for j in range(n_cls):
                frame = frame_record(pack_payload([float(starts[j]), float(starts[j + 1])], b"", n_img + 1 + j))
                out.write(frame)
                offsets.append(pos)
                pos += len(frame)
            frame = frame_record(pack_payload([float(n_img + 1), float(n_img + 1 + n_cls)], b"", 0))
            out.write(frame)
            header_offset = pos
        with open(idx_path, "w", encoding="ascii") as f:
            f.write(f"0\t{header_offset}\n")
            f.writelines(f"{k}\t{off}\n" for k, off in enumerate(offsets, 1))
        with open(prop_path, "w", encoding="ascii") as f:
            f.write(f"{n_cls},{shape[0]},{shape[1]}\n")  # type: ignore[index]
        os.replace(spool, rec_path)
    except BaseException:
        if os.path.exists(spool):
            os.remove(spool)
        raise
    return RecordWriteResult(rec_path, idx_path, prop_path, n_img, n_cls, shape)  # type: ignore[arg-type]


def _regroup(spool: str, labels: np.ndarray, offsets: list[int]) -> list[int]:
    """Rewrite the spooled image records in stable label order with keys 1..N; return their new offsets."""
    files = FileCache()
    size = os.path.getsize(spool)
    hints = size_hints(np.asarray(offsets), np.zeros(len(offsets), np.int64), np.array([size]))
    order = np.argsort(labels, kind="stable")
    new_offsets: list[int] = []
    tmp = spool + ".sorted"
    try:
        with open(tmp, "wb") as out:
            pos = 0
            for new_key, old in enumerate(order.tolist(), 1):
                payload = _read_record(files, spool, offsets[old], int(hints[old]), f"spooled sample {old}")
                header, image = unpack_payload(payload, spool, f"spooled sample {old}")
                label = header.label if header.flag == 0 else list(header.label)
                frame = frame_record(pack_payload(label, image, new_key, header.id2))
                out.write(frame)
                new_offsets.append(pos)
                pos += len(frame)
        files.close()
        os.replace(tmp, spool)
    finally:
        files.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return new_offsets
