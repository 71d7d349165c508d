"""TFace's training data: TFRecord shards + a text index, read and written without tensorflow or protobuf.

* TFRecord framing (TensorFlow docs): ``uint64 length | uint32 masked_crc32c(length) | data |
  uint32 masked_crc32c(data)``, little-endian, ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32)``.
* ``data`` is a serialised ``tf.train.Example`` whose feature ``image`` is a ``bytes_list`` holding one
  encoded JPEG (TFace ``img2tfrecord.py``); it is parsed here with a minimal protobuf wire-format reader.
* index lines (eval-protocols §5.2): ``tfr_name<TAB>shard<TAB>offset<TAB>label`` for a record in
  ``{data_root}/{tfr_name}/{tfr_name}-{shard:05d}.tfrecord``, or ``path<TAB>label`` for a plain image file
  under ``data_root``.

Hostile or careless input gives a :class:`DataFormatError` naming the file and the record or index line: index
numbers are range-checked, paths from the index (a shard name, a plain image path) must resolve inside
``data_root``, a record's length is checked against the shard size before anything is read (a length field of
2**40 is an error, not an allocation), only regular files are opened, both CRCs are verified, images are checked
against ``max_pixels`` from their header before decoding, and messages never quote the bytes of a data file.

CRC32C (Castagnoli, reflected polynomial 0x82F63B78) is computed by :func:`crc32c`, a table-driven numpy
implementation: the message is cut into rows of ``W`` bytes; a ``(W, 256)`` table gives every byte's
contribution to its row's CRC, so all rows are done by one gather + XOR-reduce, and the rows are chained with
a 4-lookup "advance by W bytes" step. Time O(n) vectorised + O(n/W) Python steps, memory O(n).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from massface._checks import check_int
from massface._progress import progress_bar
from massface.data._errors import DataFormatError, OnError, PathLike, raise_or_record
from massface.data._guard import (
    DEFAULT_MAX_PIXELS,
    MAX_LABEL,
    component_problem,
    max_file_bytes,
    outside_root,
    parse_int,
    parse_ints,
    read_lines,
    read_regular_file,
    real_root,
    regular_size,
    relpath_problem,
    require_regular_file,
)
from massface.data.encoded import EncodedImageDataset, FileCache, ImageLike, encode_image, size_hints

__all__ = ["crc32c", "masked_crc32c", "frame_tfrecord", "encode_example", "parse_example", "read_tfrecord_at",
           "iter_tfrecords", "TFRecordIndexDataset", "write_tfrecords"]

_POLY = 0x82F63B78
_ROW = 256  # bytes per row of the vectorised CRC
_ROWS = 256  # rows per block (64 KiB): the advance table covers 0.._ROWS rows
_MASK_DELTA = 0xA282EAD8
_MAX_SHARD = 10 ** 9 - 1  # shard numbers are printed with %05d; a billion shards is already absurd
_MAX_OFFSET = 2 ** 63 - 1
_SHARD_FIELDS = (("shard", 0, _MAX_SHARD), ("offset", 0, _MAX_OFFSET), ("label", 0, MAX_LABEL))


@functools.lru_cache(maxsize=1)
def _crc_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-only tables, built once per process (about 1.3 MB):

    * ``table`` (256,): the byte-wise CRC-32C table;
    * ``pos`` flattened (_ROW*256,): entry [j, b] is the zero-init CRC of byte b followed by ``_ROW-1-j`` zeros,
      i.e. the contribution of byte b at position j of a ``_ROW``-byte row to that row's CRC;
    * ``base`` (_ROW,): ``j * 256``, the row offsets into ``pos``;
    * ``adv`` flattened ((_ROWS+1)*4*256,): entry [q, i, v] is the register ``v << 8i`` advanced over ``q`` rows
      of zeros (q*_ROW bytes); a register c advances by XOR-ing its four bytes' entries;
    * ``shift`` (_ROWS, 4): ``(_ROWS-1-k) * 1024 + i * 256``, the advance-table offsets that move row k of a
      full block to the block's end (a block of r rows uses the last r lines).
    """
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    pos = np.empty((_ROW, 256), dtype=np.uint32)
    cur = table.copy()
    pos[_ROW - 1] = cur
    for j in range(_ROW - 2, -1, -1):
        cur = table[cur & 0xFF] ^ (cur >> 8)
        pos[j] = cur
    adv = np.empty((_ROWS + 1, 4, 256), dtype=np.uint32)
    adv[0] = np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
    for q in range(1, _ROWS + 1):  # advancing a register over one row = XOR of pos[0..3] at its 4 bytes
        prev = adv[q - 1]
        adv[q] = pos[0][prev & 0xFF] ^ pos[1][(prev >> 8) & 0xFF] ^ pos[2][(prev >> 16) & 0xFF] ^ pos[3][prev >> 24]
    base = np.arange(_ROW, dtype=np.intp) * 256
    shift = (np.arange(_ROWS - 1, -1, -1, dtype=np.intp) * 1024)[:, None] + np.arange(4, dtype=np.intp) * 256
    flat_pos, flat_adv = pos.ravel(), adv.ravel()
    for arr in (table, flat_pos, base, flat_adv, shift):
        arr.flags.writeable = False
    return table, flat_pos, base, flat_adv, shift


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli) of ``data``, as used by TFRecord, iSCSI and ext4 (``crc32c(b"123456789") == 0xE3069283``).

    Standard form: init 0xFFFFFFFF, reflected, final XOR 0xFFFFFFFF. The raw CRC is linear over GF(2), so it is
    the XOR of every byte's contribution at its distance from the end. Steps: XOR the init into the first 4
    bytes (equivalent for a reflected CRC), left-pad with zeros to whole ``_ROW``-byte rows (leading zeros do not
    change a zero register), get every row's CRC with one gather from the positional table + XOR-reduce, then
    move row k's CRC over the ``R-1-k`` rows after it with one gather from the advance table + XOR-reduce.
    Messages over ``_ROWS`` rows are done in blocks of ``_ROWS`` rows chained the same way.
    Time O(n) in vectorised numpy, memory O(n).
    """
    table, flat_pos, base, flat_adv, shift = _crc_tables()
    n = len(data)
    if n < 4:
        crc = 0xFFFFFFFF
        for b in bytes(data):
            crc = int(table[(crc ^ b) & 0xFF]) ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    pad = -n % _ROW
    buf = np.zeros(pad + n, dtype=np.uint8)
    buf[pad:] = np.frombuffer(data, dtype=np.uint8)
    buf[pad:pad + 4] ^= np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)
    rows = buf.reshape(-1, _ROW)
    row_crc = np.bitwise_xor.reduce(flat_pos.take(base + rows), axis=1).astype("<u4")
    crc = 0
    for start in range(0, row_crc.size, _ROWS):
        block = row_crc[start:start + _ROWS]
        r = block.size
        if start:  # carry the previous blocks' register over this block's r rows
            c = np.array([crc], dtype="<u4").view(np.uint8)
            crc = int(np.bitwise_xor.reduce(flat_adv.take(r * 1024 + shift[_ROWS - 1] + c)))
        crc ^= int(np.bitwise_xor.reduce(flat_adv.take(shift[_ROWS - r:] + block.view(np.uint8).reshape(r, 4)),
                                         axis=None))
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC: ``((c >> 15) | (c << 17)) + 0xa282ead8`` modulo 2**32, c = crc32c(data)."""
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def frame_tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, the data's masked CRC (len(data) + 16 bytes)."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data))


# ----------------------------------------------------------------------------------------------- protobuf
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: dict[str, bytes | int | list[int]]) -> bytes:
    """Serialise a ``tf.train.Example`` holding bytes features (one value) or int64 features (a list)."""
    entries = []
    for key, value in features.items():
        if isinstance(value, (bytes, bytearray)):
            feature = _field(1, _field(1, bytes(value)))  # Feature.bytes_list{value}
        else:
            ints = [value] if isinstance(value, (int, np.integer)) else list(value)
            packed = b"".join(_varint(int(v) & 0xFFFFFFFFFFFFFFFF) for v in ints)
            feature = _field(3, _field(1, packed))  # Feature.int64_list{packed value}
        entries.append(_field(1, _field(1, key.encode("utf-8")) + _field(2, feature)))
    return _field(1, b"".join(entries))  # Example.features{feature map}


def _fields(buf: bytes, start: int, end: int, where: str) -> Iterable[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values as ``(start, end)`` spans."""
    i = start
    while i < end:
        key, i = _read_varint(buf, i, end, where)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i, end, where)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _read_varint(buf, i, end, where)
            value, i = (i, i + length), i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"{where}: unsupported protobuf wire type {wire}")
        if i > end:
            raise ValueError(f"{where}: protobuf field {number} runs past the end of its message")
        yield number, wire, value


def _read_varint(buf: bytes, i: int, end: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise ValueError(f"{where}: truncated or overlong protobuf varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def parse_example(data: bytes, key: str = "image") -> bytes:
    """First value of the ``bytes_list`` feature ``key`` of a serialised ``tf.train.Example``.

    Walks the wire format: Example.features (1) -> Features.feature (1, map entries) -> entry key (1) /
    value (2) -> Feature.bytes_list (1) -> BytesList.value (1). Raises ValueError when absent or malformed.
    """
    want = key.encode("utf-8")
    n = len(data)
    for num, wire, span in _fields(data, 0, n, "Example"):
        if num != 1 or wire != 2:
            continue
        for fnum, fwire, entry in _fields(data, span[0], span[1], "Features"):
            if fnum != 1 or fwire != 2:
                continue
            name, feature = None, None
            for enum, ewire, val in _fields(data, entry[0], entry[1], "feature map entry"):
                if enum == 1 and ewire == 2:
                    name = data[val[0]:val[1]]
                elif enum == 2 and ewire == 2:
                    feature = val
            if name != want:
                continue
            if feature is None:
                raise ValueError(f"feature {key!r} has no value")
            for knum, kwire, lst in _fields(data, feature[0], feature[1], f"feature {key!r}"):
                if knum != 1 or kwire != 2:
                    raise ValueError(f"feature {key!r} is not a bytes_list (field {knum})")
                for vnum, vwire, v in _fields(data, lst[0], lst[1], f"feature {key!r} bytes_list"):
                    if vnum == 1 and vwire == 2:
                        return data[v[0]:v[1]]
            raise ValueError(f"feature {key!r} bytes_list is empty")
    raise ValueError(f"the Example has no feature {key!r}")


# ----------------------------------------------------------------------------------------------- reading
def _read_tfrecord(files: FileCache, path: str, offset: int, hint: int, verify_crc: bool, record: object) -> bytes:
    """Data of the TFRecord at ``offset``: length CRC checked, then the length checked against the bytes left in
    the file **before** they are read, then (``verify_crc``) the data CRC. DataFormatError naming ``path`` and
    ``record``; messages never quote the file's bytes."""
    buf = files.read(path, offset, max(hint, 12), record)
    if len(buf) < 12:
        raise DataFormatError(path, f"truncated: record header at byte {offset} needs 12 bytes, the file ends "
                                    f"after {len(buf)}", record)
    (length,) = struct.unpack_from("<Q", buf)
    (len_crc,) = struct.unpack_from("<I", buf, 8)
    if masked_crc32c(buf[:8]) != len_crc:
        raise DataFormatError(path, f"length CRC mismatch at byte {offset}: corrupt file or wrong index offset",
                              record)
    if len(buf) < 16 + length:
        remaining = files.size(path, record) - offset - 16
        if length > remaining:
            remaining = files.size(path, record, refresh=True) - offset - 16
        if length > remaining:
            raise DataFormatError(path, f"truncated: record at byte {offset} announces {length:,} bytes, only "
                                        f"{max(remaining, 0):,} remain in the file", record)
        buf = files.read(path, offset, 16 + length, record)
        if len(buf) < 16 + length:  # pragma: no cover - the file shrank between fstat and pread
            raise DataFormatError(path, f"truncated: record at byte {offset} announces {length:,} bytes, only "
                                        f"{max(len(buf) - 16, 0):,} remain", record)
    data = buf[12:12 + length]
    if verify_crc:
        (data_crc,) = struct.unpack_from("<I", buf, 12 + length)
        if masked_crc32c(data) != data_crc:
            raise DataFormatError(path, f"data CRC mismatch for the record at byte {offset} (corrupt data)", record)
    return data


def read_tfrecord_at(path: PathLike, offset: int, verify_crc: bool = True) -> bytes:
    """Data of the TFRecord starting at byte ``offset`` of ``path`` (CRCs checked; regular files only)."""
    files = FileCache()
    try:
        return _read_tfrecord(files, os.fspath(path), int(offset), 0, verify_crc, f"record at offset {offset}")
    finally:
        files.close()


def iter_tfrecords(path: PathLike, verify_crc: bool = True) -> Iterable[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for every record of a TFRecord file, in order (regular files only)."""
    path = os.fspath(path)
    files = FileCache()
    offset, n = 0, 0
    try:
        size = files.size(path)
        while offset < size:
            data = _read_tfrecord(files, path, offset, 0, verify_crc, f"record {n} (offset {offset})")
            yield offset, data
            offset += len(data) + 16
            n += 1
    finally:
        files.close()


class TFRecordIndexDataset(EncodedImageDataset):
    """TFace's index + TFRecord shards as a dataset: ``ds[i] -> (RGB uint8 (H, W, 3) or transform(x), label)``.

    ``index_file`` lines are ``tfr_name\\tshard\\toffset\\tlabel`` (record in
    ``{data_root}/{tfr_name}/{tfr_name}-{shard:05d}.tfrecord``) or ``path\\tlabel`` (image file under
    ``data_root``); both kinds may be mixed. Labels come from the index (no record is read to build
    ``.labels``); ``num_classes = max(label) + 1`` as in TFace. Records are checked on read: both CRCs (the
    data CRC can be skipped with ``verify_crc=False``), the length against the shard size, and the Example's
    ``image`` feature; images of more than ``max_pixels`` pixels are refused from their header.

    The index must be strict UTF-8 with integers in range (shard < 10**9, offset < 2**63, label < 2**31); a
    malformed line raises :class:`DataFormatError` naming the index and line. ``tfr_name`` must be one path
    component and ``path`` relative without ``..`` climbing out; shards and image files must resolve (through
    symlinks) inside ``data_root`` (a symlinked ``data_root`` itself is fine). Entries that break these rules, or
    whose file is missing or not a regular file, or whose offset lies past the end of the shard, are rejected
    at construction — raised, or dropped and counted in :attr:`skipped` with ``on_error="skip"``; an image file
    that resolves outside ``data_root`` through a symlink is refused when read.
    """

    def __init__(self, index_file: PathLike, data_root: PathLike, transform: Callable[..., Any] | None = None, *,
                 on_error: OnError = "raise", verify_crc: bool = True, feature: str = "image",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__(transform, on_error, max_pixels)
        self.index_file, self.data_root = os.fspath(index_file), os.fspath(data_root)
        self.verify_crc, self.feature = verify_crc, feature
        self._root_real = real_root(self.data_root)
        require_regular_file(self.index_file, "TFRecord index")
        files: dict[str, int] = {}
        file_ids: list[int] = []
        offsets: list[int] = []
        labels: list[int] = []
        lines: list[int] = []
        shards: set[str] = set()
        shard_paths: dict[tuple[str, int], str] = {}
        for lineno, line in enumerate(read_lines(self.index_file), 1):
            if not line.strip():
                continue
            try:
                path, offset, label = self._parse_line(line, f"line {lineno}", shard_paths)
            except _EntryRefused as refused:
                raise_or_record(refused.error, self.on_error, self.skipped)
                continue
            file_ids.append(files.setdefault(path, len(files)))
            if offset >= 0:
                shards.add(path)
            offsets.append(offset)
            labels.append(label)
            lines.append(lineno)
        self._paths = list(files)
        problems = [self._file_problem(p, p in shards) for p in self._paths]
        sizes = np.array([size for size, _ in problems], dtype=np.int64)
        fid = np.asarray(file_ids, dtype=np.int64)
        off = np.asarray(offsets, dtype=np.int64)
        bad = (sizes[fid] < 0) | ((off + 16 > sizes[fid]) & (off >= 0))
        keep = np.ones(fid.size, dtype=bool)
        for i in np.flatnonzero(bad).tolist():
            path = self._paths[fid[i]]
            reason = problems[fid[i]][1] if sizes[fid[i]] < 0 else \
                f"offset {off[i]} is past the end of the shard ({sizes[fid[i]]} bytes)"
            raise_or_record(DataFormatError(path, reason, f"{self.index_file} line {lines[i]}"), self.on_error,
                            self.skipped)
            keep[i] = False
        self._file_ids, self._offsets = fid[keep], off[keep]
        self._lines = np.asarray(lines, dtype=np.int64)[keep]
        self._labels = np.asarray(labels, dtype=np.int64)[keep]
        self._hints = size_hints(self._offsets, self._file_ids, np.maximum(sizes, 0))
        self.skipped.warn(f"TFRecordIndexDataset({self.index_file})")

    def _parse_line(self, line: str, where: str, shard_paths: dict[tuple[str, int], str]) -> tuple[str, int, int]:
        """(file path, offset or -1 for a plain image file, label) of one index line.

        Malformed numbers raise DataFormatError; a path that is refused raises :class:`_EntryRefused` (a per-entry
        problem, subject to ``on_error``). ``shard_paths`` caches the accepted ``(tfr_name, shard)`` paths.
        """
        index = self.index_file
        fields = line.split("\t")
        if len(fields) == 4:
            shard, offset, label = parse_ints(fields[1:], _SHARD_FIELDS, index, where)
            path = shard_paths.get((fields[0], shard))
            if path is None:
                name = fields[0]
                problem = component_problem(name)
                if problem is not None:
                    raise _EntryRefused(DataFormatError(index, f"tfr_name {name[:80]!r}: {problem}; refused", where))
                path = shard_paths[name, shard] = os.path.join(self.data_root, name, f"{name}-{shard:05d}.tfrecord")
            return path, offset, label
        if len(fields) != 2:
            raise DataFormatError(index, "expected 'tfr_name<TAB>shard<TAB>offset<TAB>label' or 'path<TAB>label', "
                                         f"got {len(fields)} tab-separated field(s)", where)
        label = parse_int(fields[1], index, where, "label", 0, MAX_LABEL)
        rel = fields[0]
        problem = relpath_problem(rel)
        if problem is not None:
            raise _EntryRefused(DataFormatError(index, f"image path {rel[:80]!r}: {problem}; refused", where))
        return os.path.join(self.data_root, rel), -1, label

    def _file_problem(self, path: str, is_shard: bool) -> tuple[int, str | None]:
        """(size, None) for a usable file, (-1, why not) otherwise: a regular file (stat only), and for a shard one
        that resolves inside ``data_root`` (plain image files are resolved when read: one ``realpath`` per shard
        here, none per image)."""
        size, problem = regular_size(path)
        if problem is None and is_shard:
            problem = outside_root(path, self._root_real)
        return (-1, problem) if problem is not None else (int(size), None)  # type: ignore[arg-type]

    def input_paths(self) -> tuple[list[str], list[str]]:
        return [self.index_file] + list(self._paths), [self.data_root]

    def location(self, index: int) -> tuple[str, str]:
        path = self._paths[self._file_ids[index]]
        off = int(self._offsets[index])
        rec = f"sample {index} ({self.index_file} line {self._lines[index]}"
        return path, rec + (f", offset {off})" if off >= 0 else ")")

    def read_encoded(self, index: int) -> bytes:
        path, where = self.location(index)
        off = int(self._offsets[index])
        if off < 0:
            return read_regular_file(path, where, max_bytes=max_file_bytes(self.max_pixels), root=self._root_real)
        data = _read_tfrecord(self._files, path, off, int(self._hints[index]), self.verify_crc, where)
        try:
            return parse_example(data, self.feature)
        except ValueError as err:
            raise DataFormatError(path, f"bad tf.train.Example: {err}", where) from None


class _EntryRefused(Exception):
    """An index entry refused for its path (carries the DataFormatError; subject to ``on_error``)."""

    def __init__(self, error: DataFormatError) -> None:
        super().__init__(str(error))
        self.error = error


def write_tfrecords(directory: PathLike, samples: Iterable[tuple[ImageLike, int]], *, name: str = "train",
                    shard_size: int = 500_000, quality: int = 95, progress: bool = False,
                    total: int | None = None) -> str:
    """Write ``samples`` (``(image, label)``, encoded bytes or RGB uint8 arrays) as TFace shards + index.

    Records go to ``{directory}/{name}/{name}-%05d.tfrecord`` (a new shard every ``shard_size`` records), each an
    Example with the single bytes feature ``image``; the index ``{directory}/{name}.index`` gets one
    ``name\\tshard\\toffset\\tlabel`` line per record. Returns the index path. Time O(N) + encoding.
    """
    check_int("shard_size", shard_size, "write_tfrecords")
    directory = os.fspath(directory)
    shard_dir = os.path.join(directory, name)
    os.makedirs(shard_dir, exist_ok=True)
    index_path = os.path.join(directory, f"{name}.index")
    bar = progress_bar(total=total, desc=f"write {shard_dir}", unit="img", enabled=progress)
    out = None
    try:
        with open(index_path, "w", encoding="utf-8") as index:
            offset = 0
            for n, sample in enumerate(samples):
                image, label = sample
                if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or label < 0:
                    raise ValueError(f"sample {n}: label must be a non-negative integer, got {label!r}")
                shard = n // shard_size
                if n % shard_size == 0:
                    if out is not None:
                        out.close()
                    out = open(os.path.join(shard_dir, f"{name}-{shard:05d}.tfrecord"), "wb")
                    offset = 0
                frame = frame_tfrecord(encode_example({"image": encode_image(image, quality, f"sample {n}")}))
                out.write(frame)  # type: ignore[union-attr]
                index.write(f"{name}\t{shard}\t{offset}\t{int(label)}\n")
                offset += len(frame)
                bar.update()
    finally:
        if out is not None:
            out.close()
        bar.close()
    return index_path
