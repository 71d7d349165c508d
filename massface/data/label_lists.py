"""The text files of identity-set cleaning: label pairs that are one person (``duplicate_pairs.txt``, read by
``loss.triplet.same_identity_pairs``) and sample indices to train on (``keep_indices.txt``, read by
``data.keep_indices``), as ``massface clean`` and ``SynthFaces.export`` write them.

Both are UTF-8 text, one record per line, ``#`` comments and blank lines skipped: a label pair is two non-negative
integers separated by whitespace or a comma, an index one non-negative integer. Readers accept regular files of
at most :data:`MAX_LIST_BYTES` and name the file and line of the first bad record (:class:`DataFormatError`).
Cost: O(file size).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator

import numpy as np

from ._errors import DataFormatError

__all__ = ["MAX_LIST_BYTES", "read_label_pairs", "write_label_pairs", "read_indices", "write_indices"]

MAX_LIST_BYTES = 1 << 30
"""A list file larger than this (1 GiB, ~10^8 records) is refused before it is read."""

_INTEGER = re.compile(r"[0-9]{1,12}")
MAX_LABEL = 2**31 - 1


def _records(path: str | os.PathLike[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-empty line, comments removed, commas read as spaces."""
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except OSError as err:
        raise DataFormatError(path, f"cannot be read: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataFormatError(path, "is not a regular file")
    if info.st_size > MAX_LIST_BYTES:
        raise DataFormatError(path, f"is {info.st_size} bytes; list files are limited to {MAX_LIST_BYTES} bytes")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                fields = raw.decode("utf-8").split("#", 1)[0].replace(",", " ").split()
            except UnicodeDecodeError:
                raise DataFormatError(path, "is not UTF-8 text", record=f"line {number}") from None
            if fields:
                yield number, fields


def _integers(path: str | os.PathLike[str], fields: list[str], count: int, what: str, number: int) -> list[int]:
    if len(fields) != count or not all(_INTEGER.fullmatch(f) for f in fields):
        got = f"{len(fields)} field(s)" if len(fields) != count else "fields that are not non-negative integers"
        raise DataFormatError(path, f"expected {what}, got {got}", record=f"line {number}")
    return [int(f) for f in fields]


def read_label_pairs(path: str | os.PathLike[str]) -> np.ndarray:
    """The (S, 2) int64 label pairs of a ``duplicate_pairs.txt``. DataFormatError naming the file and line for a
    line without exactly two non-negative integer labels (each < 2**31), undecodable bytes, or a file that is
    not regular or too large."""
    pairs: list[list[int]] = []
    for number, fields in _records(path):
        a, b = _integers(path, fields, 2, "two non-negative integer labels", number)
        if max(a, b) > MAX_LABEL:
            raise DataFormatError(os.fspath(path), "a label is >= 2**31", record=f"line {number}")
        pairs.append([a, b])
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def write_label_pairs(path: str | os.PathLike[str], pairs: object, header: str = "") -> None:
    """Write (S, 2) integer label pairs as :func:`read_label_pairs` reads them (``header`` as ``#`` lines)."""
    array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    _write(path, header, (f"{a} {b}" for a, b in array.tolist()))


def read_indices(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """The sorted unique sample indices of a ``keep_indices.txt``, each in [0, ``size``). DataFormatError naming
    the file and line for a line that is not one non-negative integer or an index out of range, and for a file
    with no index at all (training on nothing is never what was meant)."""
    out: list[int] = []
    for number, fields in _records(path):
        (value,) = _integers(path, fields, 1, "one non-negative integer sample index", number)
        if value >= size:
            raise DataFormatError(os.fspath(path), f"sample index {value} is out of range for {size} samples",
                                  record=f"line {number}")
        out.append(value)
    if not out:
        raise DataFormatError(os.fspath(path), "holds no sample index")
    return np.unique(np.asarray(out, dtype=np.int64))


def write_indices(path: str | os.PathLike[str], indices: object, header: str = "") -> None:
    """Write sample indices as :func:`read_indices` reads them (``header`` as ``#`` lines)."""
    _write(path, header, (str(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1).tolist()))


def _write(path: str | os.PathLike[str], header: str, lines: Iterator[str]) -> None:
    text = [f"# {line}" for line in header.splitlines()] + list(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(text) + ("\n" if text else ""))
