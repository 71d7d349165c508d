"""Verification pair sets: insightface ``.bin`` files, LFW ``pairs.txt`` (View 2) and MassFace pair folders.

A ``.bin`` (eval-protocols §1.1) is one pickle of ``(bins, issame_list)``: 2N encoded images (bytes, or 1-D uint8
arrays from ``cv2.imencode``) where pair k is ``bins[2k], bins[2k+1]``, and N booleans. Many were written by
Python 2. :func:`read_bin` loads them with a **restricted unpickler**: the only globals it resolves are the numpy
reconstructors of uint8 / bool arrays and scalars and ``_codecs.encode(str, 'latin1')`` — each wrapped so that it
checks its arguments — and the loaded object must have exactly the shape above. A ``.bin`` from the internet can
therefore not run code (``os.system``, ``eval``, … are refused before they are looked up).

All readers return ``(images, issame)``: RGB uint8 ``(2N, H, W, 3)`` (or the list of encoded buffers with
``decode=False``) and bool ``(N,)``. Every image's width and height are read from its header and an image of more
than ``max_pixels`` pixels is refused before decoding; only regular files are read; text lists must be strict
UTF-8 with range-checked numbers, and the names in them must stay inside the image root.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np

from massface.data._errors import DataFormatError, OnError, PathLike, SkipReport, check_on_error, raise_or_record
from massface.data._guard import (
    DEFAULT_MAX_PIXELS,
    check_max_pixels,
    component_problem,
    create_temp,
    max_file_bytes,
    parse_int,
    read_lines,
    read_regular_file,
    real_root,
)
from massface.data.encoded import ImageLike, decode_image, encode_image

__all__ = ["read_bin", "write_bin", "read_lfw_pairs", "read_pair_folders", "load_bin_pickle"]

_ALLOWED_DTYPES = {"u1": np.dtype(np.uint8), "|u1": np.dtype(np.uint8), "uint8": np.dtype(np.uint8),
                   "b1": np.dtype(np.bool_), "|b1": np.dtype(np.bool_), "bool": np.dtype(np.bool_)}


def _numpy_attr(submodule: str, name: str) -> Any:
    for base in ("numpy._core", "numpy.core"):
        try:
            module = __import__(f"{base}.{submodule}", fromlist=[name])
            return getattr(module, name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this numpy has no {submodule}.{name}")  # pragma: no cover


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, (bytes, bytearray)) else value


def _safe_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    key = _text(obj)
    if not isinstance(key, str) or key not in _ALLOWED_DTYPES:
        raise pickle.UnpicklingError(f"dtype {obj!r} is not allowed in a .bin (only uint8 and bool)")
    return _ALLOWED_DTYPES[key]


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise pickle.UnpicklingError(f"array dtype {dtype!r} is not allowed in a .bin (only uint8 and bool)")
    return dtype


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside the pickle; only the array reconstructor accepts it."""


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')`` placeholder; the real dtype/data arrive via ``__setstate__``
    with a dtype that only :func:`_safe_dtype` can have made (uint8 or bool)."""
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("array reconstruction of a class other than numpy.ndarray is not allowed")
    if tuple(shape) != (0,) or _text(dtype) != "b":
        raise pickle.UnpicklingError(f"unexpected array reconstruction arguments {shape!r}, {dtype!r}")
    return _numpy_attr("multiarray", "_reconstruct")(np.ndarray, (0,), b"b")


def _safe_scalar(dtype: Any, data: Any = None) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype != np.dtype(np.bool_):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not allowed in a .bin (only bool)")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 1:
        raise pickle.UnpicklingError("numpy bool scalar must carry exactly one byte")
    return np.bool_(raw[0] != 0)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    _check_dtype(dtype)
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=_text(order))


def _safe_codecs_encode(obj: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(obj, str) or _text(encoding) not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as encode(str, 'latin1') (pickled bytes)")
    return obj.encode("latin1")


def _safe_bytearray(obj: Any = b"", encoding: Any = None) -> bytearray:
    if isinstance(obj, str) and _text(encoding) in ("latin1", "latin-1"):
        return bytearray(obj.encode("latin1"))
    if isinstance(obj, (bytes, bytearray)) and encoding is None:
        return bytearray(obj)
    raise pickle.UnpicklingError("bytearray is only allowed from bytes or (str, 'latin1')")


_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType({
    **{(f"{base}.multiarray", "_reconstruct"): _safe_reconstruct for base in ("numpy.core", "numpy._core")},
    **{(f"{base}.multiarray", "scalar"): _safe_scalar for base in ("numpy.core", "numpy._core")},
    **{(f"{base}.numeric", "_frombuffer"): _safe_frombuffer for base in ("numpy.core", "numpy._core")},
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_codecs_encode, ("builtins", "bytearray"): _safe_bytearray,
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a .bin verification set "
                                         "(only numpy uint8/bool arrays, bytes, bools, lists and tuples)")
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a .bin verification set")


def load_bin_pickle(data: bytes, path: PathLike = "<bytes>") -> tuple[list[bytes | np.ndarray], np.ndarray]:
    """Restricted-unpickle and validate a ``.bin`` payload -> (list of 2N encoded buffers, bool (N,))."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise DataFormatError(path, f"rejected pickle: {err}") from None
    except MemoryError:  # a length field in the stream far beyond the file: refused before anything is read
        raise DataFormatError(path, f"not a readable pickle: a length field announces more data than the "
                                    f"{len(data):,}-byte file holds") from None
    except Exception as err:  # truncated / corrupt stream
        raise DataFormatError(path, f"not a readable pickle ({type(err).__name__}: {err})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataFormatError(path, f"expected a pickled 2-tuple (bins, issame_list), got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)):
        raise DataFormatError(path, f"bins must be a list of encoded images, got {type(bins).__name__}")
    buffers: list[bytes | np.ndarray] = []
    for i, b in enumerate(bins):
        if isinstance(b, (bytes, bytearray)):
            buffers.append(bytes(b))
        elif isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.ndim == 1:
            buffers.append(b)
        else:
            what = f"{b.dtype} array {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
            raise DataFormatError(path, f"must be encoded image bytes or a 1-D uint8 array, got {what}", f"bins[{i}]")
    if isinstance(issame, np.ndarray):
        if issame.dtype != np.bool_ or issame.ndim != 1:
            raise DataFormatError(path, f"issame_list must be 1-D bool, got {issame.dtype} {issame.shape}")
        flags = issame.copy()
    elif isinstance(issame, (list, tuple)):
        for i, v in enumerate(issame):
            if not isinstance(v, (bool, np.bool_)) and not (type(v) is int and v in (0, 1)):
                raise DataFormatError(path, f"must be a bool, got {type(v).__name__} {v!r}", f"issame_list[{i}]")
        flags = np.array([bool(v) for v in issame], dtype=bool)
    else:
        raise DataFormatError(path, f"issame_list must be a list of bools, got {type(issame).__name__}")
    if len(buffers) != 2 * flags.size:
        raise DataFormatError(path, f"{len(buffers)} images for {flags.size} pairs (expected 2 images per pair)")
    return buffers, flags


def _decode_pairs(buffers: Sequence[Any], issame: np.ndarray, sources: Sequence[tuple[str, str]],
                  image_size: tuple[int, int] | None, on_error: OnError, skipped: SkipReport,
                  max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode 2N buffers into one (2N', H, W, 3) array, dropping whole pairs on error in skip mode (each image's
    header is checked against ``max_pixels`` before it is decoded)."""
    images: np.ndarray | None = None
    keep = np.ones(issame.size, dtype=bool)
    out_i = 0
    for k in range(issame.size):
        try:
            pair = []
            for j in (2 * k, 2 * k + 1):
                path, record = sources[j]
                img = decode_image(buffers[j], path, record, max_pixels=max_pixels)
                if image_size is not None and img.shape[:2] != tuple(image_size):
                    img = cv2.resize(img, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA
                                     if img.shape[0] > image_size[0] else cv2.INTER_LINEAR)
                pair.append(img)
        except DataFormatError as err:
            raise_or_record(err, on_error, skipped)
            keep[k] = False
            continue
        if images is None:
            images = np.empty((2 * issame.size,) + pair[0].shape, dtype=np.uint8)
        for j, img in enumerate(pair):
            if img.shape != images.shape[1:]:
                path, record = sources[2 * k + j]
                raise DataFormatError(path, f"image of shape {img.shape} differs from the first image's "
                                            f"{images.shape[1:]} (pass image_size=(H, W) to resize)", record)
            images[out_i] = img
            out_i += 1
    if images is None:
        images = np.empty((0, 0, 0, 3), dtype=np.uint8)
    return images[:out_i], issame[keep]


def read_bin(path: PathLike, *, decode: bool = True, image_size: tuple[int, int] | None = None,
             on_error: OnError = "raise", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray | list,
                                                                                          np.ndarray]:
    """Read an insightface verification ``.bin`` (lfw, cfp_fp, agedb_30, …) safely.

    Returns ``(images, issame)``: RGB uint8 (2N, H, W, 3) decoded with OpenCV (BGR->RGB), pair k being rows
    2k and 2k+1, and bool (N,). ``decode=False`` returns the encoded buffers instead. ``image_size=(H, W)``
    resizes images of another size (insightface resizes when the width is not 112). ``on_error="skip"`` drops
    pairs with an undecodable image, or one of more than ``max_pixels`` pixels (checked from its header before
    decoding), warned and counted. The file must be a regular file; it is unpickled by the restricted unpickler
    (:func:`load_bin_pickle`). Time O(N·H·W), memory the decoded array.
    """
    path = os.fspath(path)
    on_error = check_on_error(on_error)
    max_pixels = check_max_pixels(max_pixels)
    buffers, issame = load_bin_pickle(read_regular_file(path), path)
    if not decode:
        return buffers, issame
    sources = [(path, f"bins[{i}] (pair {i // 2})") for i in range(len(buffers))]
    skipped = SkipReport()
    images, issame = _decode_pairs(buffers, issame, sources, image_size, on_error, skipped, max_pixels)
    skipped.warn(f"read_bin({path}): dropped the pairs of", stacklevel=3)
    return images, issame


def write_bin(path: PathLike, images: np.ndarray | Sequence[ImageLike], issame: Sequence[bool], *,
              quality: int = 95) -> None:
    """Write an insightface-compatible ``.bin``: pickle of ``(list of 2N JPEG bytes, list of N bools)``.

    ``images`` is an RGB uint8 array (2N, H, W, 3) (JPEG-encoded at ``quality``) or a sequence of encoded
    buffers / RGB arrays (encoded bytes are stored untouched). Pickle protocol 4 (readable by insightface's
    ``pickle.load`` under Python 3). Written to a temporary file and renamed over ``path``, so a killed write
    leaves no partial ``.bin`` and an existing ``path`` (or a file hard-linked to it) is never written into.
    """
    flags = np.asarray(issame)
    if flags.ndim != 1 or not (flags.dtype == np.bool_ or np.isin(flags, (0, 1)).all()):
        raise ValueError(f"issame must be a 1-D sequence of bools, got {flags.dtype} {flags.shape}")
    if isinstance(images, np.ndarray) and images.ndim == 4:
        items: Sequence[Any] = list(images)
    else:
        items = images
    if len(items) != 2 * flags.size:
        raise ValueError(f"{len(items)} images for {flags.size} pairs (expected 2 images per pair)")
    bins = [encode_image(img, quality, what=f"images[{i}]") for i, img in enumerate(items)]
    path = os.fspath(path)
    fd, tmp = create_temp(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.", ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump((bins, [bool(v) for v in flags]), f, protocol=4)
        os.replace(tmp, path)  # a new file: never writes through a link into an existing one
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------------------------------------- LFW
def _read_files(paths: Sequence[str], record_names: Sequence[str], issame: np.ndarray, on_error: OnError,
                skipped: SkipReport, pairs_path: str, root: str,
                max_pixels: int) -> tuple[list[bytes], np.ndarray, list[tuple[str, str]]]:
    """Read the two image files of every pair (regular files of at most :func:`max_file_bytes` bytes that resolve
    inside ``root``); a pair with an unreadable image raises, or is dropped and counted in skip mode."""
    buffers: list[bytes] = []
    sources: list[tuple[str, str]] = []
    keep = np.ones(issame.size, dtype=bool)
    root_real, limit = real_root(root), max_file_bytes(max_pixels)
    for k in range(issame.size):
        try:
            pair = []
            for j in (2 * k, 2 * k + 1):
                try:
                    pair.append(read_regular_file(paths[j], record_names[k], max_bytes=limit, root=root_real))
                except DataFormatError as err:
                    raise DataFormatError(pairs_path, f"image {paths[j]}: {err.reason}", record_names[k]) from None
        except DataFormatError as err:
            raise_or_record(err, on_error, skipped)
            keep[k] = False
            continue
        buffers.extend(pair)
        sources.extend((paths[j], record_names[k]) for j in (2 * k, 2 * k + 1))
    return buffers, issame[keep], sources


def _finish_pairs(buffers: list[bytes], issame: np.ndarray, sources: list[tuple[str, str]], decode: bool,
                  image_size: tuple[int, int] | None, on_error: OnError, skipped: SkipReport,
                  what: str, max_pixels: int) -> tuple[np.ndarray | list, np.ndarray]:
    if decode:
        images, issame = _decode_pairs(buffers, issame, sources, image_size, on_error, skipped, max_pixels)
    else:
        images = buffers
    skipped.warn(f"{what}: dropped the pairs of", stacklevel=4)
    return images, issame


def _name(value: str, path: str, record: str) -> str:
    """A person / pair-folder name from a list, refused unless it is one path component."""
    problem = component_problem(value)
    if problem is not None:
        raise DataFormatError(path, f"name {value[:80]!r}: {problem}; refused", record)
    return value


#: Largest count in a pairs.txt header and largest image number in a line.
_MAX_COUNT = 10 ** 7


def read_lfw_pairs(pairs_path: PathLike, image_root: PathLike, *, ext: str = "jpg", decode: bool = True,
                   image_size: tuple[int, int] | None = None, on_error: OnError = "raise",
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray | list, np.ndarray]:
    """LFW ``pairs.txt`` + an image root (``root/name/name_%04d.<ext>``, usually a pre-aligned 112×112 copy)
    -> ``(images, issame)`` in file order, like insightface's ``lfw2pack.py``.

    The first line is ``sets pairs_per_set`` (View 2: ``10 300``); then each set has ``pairs_per_set`` same lines
    ``name i j`` and as many different lines ``name1 i name2 j`` (a one-number header means that many of each).
    Line counts and kinds are checked. Missing or unreadable images raise, or with ``on_error="skip"`` drop the
    pair (lfw2pack drops missing pairs silently; here they are counted and warned). ``decode=False`` returns
    the raw file bytes (for packing a ``.bin`` without re-encoding).

    The file must be strict UTF-8; counts and image numbers are integers below 10**7, names single path components
    (no ``/`` or ``..``), and image files regular files that resolve inside ``image_root``; images of more than
    ``max_pixels`` pixels are refused from their header.
    """
    pairs_path, root = os.fspath(pairs_path), os.fspath(image_root)
    on_error = check_on_error(on_error)
    max_pixels = check_max_pixels(max_pixels)
    lines = [(n, line.split()) for n, line in enumerate(read_lines(pairs_path), 1) if line.strip()]
    if not lines:
        raise DataFormatError(pairs_path, "empty file (expected a header line 'sets pairs_per_set')")
    head_line, header = lines[0]
    if len(header) not in (1, 2):
        raise DataFormatError(pairs_path, f"header must be 'sets pairs_per_set' (e.g. '10 300'), got {header}",
                              f"line {head_line}")
    counts = [parse_int(v, pairs_path, f"line {head_line}", "header count", 1, _MAX_COUNT) for v in header]
    n_sets, per_set = (counts[0], counts[1]) if len(counts) == 2 else (1, counts[0])
    body = lines[1:]
    if len(body) != 2 * n_sets * per_set:
        raise DataFormatError(pairs_path, f"header announces {n_sets} sets × 2 × {per_set} pairs = "
                                          f"{2 * n_sets * per_set} lines, found {len(body)}")
    paths: list[str] = []
    names: list[str] = []
    flags = np.empty(len(body), dtype=bool)
    for k, (lineno, fields) in enumerate(body):
        expect_same = (k % (2 * per_set)) < per_set
        where = f"line {lineno}"
        if len(fields) not in (3, 4):
            raise DataFormatError(pairs_path, f"expected 'name i j' or 'name1 i name2 j', got "
                                              f"{' '.join(fields)[:120]!r}", where)
        names_nums = (fields[0], fields[1], fields[0], fields[2]) if len(fields) == 3 else fields
        pair = tuple((_name(names_nums[2 * t], pairs_path, where),
                      parse_int(names_nums[2 * t + 1], pairs_path, where, "image number", 0, _MAX_COUNT))
                     for t in (0, 1))
        if (len(fields) == 3) != expect_same:
            raise DataFormatError(pairs_path, f"expected a {'same' if expect_same else 'different'} pair here "
                                              f"(each set is {per_set} same lines then {per_set} different lines)",
                                  f"line {lineno}")
        flags[k] = len(fields) == 3
        names.append(f"line {lineno}")
        paths.extend(os.path.join(root, name, f"{name}_{num:04d}.{ext}") for name, num in pair)
    skipped = SkipReport()
    buffers, flags, sources = _read_files(paths, names, flags, on_error, skipped, pairs_path, root, max_pixels)
    return _finish_pairs(buffers, flags, sources, decode, image_size, on_error, skipped,
                         f"read_lfw_pairs({pairs_path})", max_pixels)


def read_pair_folders(pair_list: PathLike, image_root: PathLike, *, decode: bool = True,
                      image_size: tuple[int, int] | None = None, on_error: OnError = "raise",
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray | list, np.ndarray]:
    """MassFace's pair layout: ``image_root/<pair_id>/`` holds the two images of a pair, ``pair_list`` has lines
    ``pair_id same`` (same = 1/0 or true/false) -> ``(images, issame)``.

    Unlike MassFace's ``os.listdir`` walk (eval-protocols §5.3), the pair order is the list's line order and
    the two images are taken in sorted file-name order, so the folds are deterministic. The list must be strict
    UTF-8 and each ``pair_id`` one path component; images are read as in :func:`read_lfw_pairs`.
    """
    list_path, root = os.fspath(pair_list), os.fspath(image_root)
    on_error = check_on_error(on_error)
    max_pixels = check_max_pixels(max_pixels)
    paths: list[str] = []
    names: list[str] = []
    flags: list[bool] = []
    rows = [(n, line.split()) for n, line in enumerate(read_lines(list_path), 1) if line.strip()]
    skipped = SkipReport()
    for lineno, fields in rows:
        where = f"line {lineno}"
        if len(fields) != 2 or fields[1].lower() not in ("0", "1", "true", "false"):
            raise DataFormatError(list_path, f"expected 'pair_id same' with same in 0/1/true/false, got "
                                             f"{' '.join(fields)[:120]!r}", where)
        folder = os.path.join(root, _name(fields[0], list_path, where))
        try:
            files = sorted(e for e in os.listdir(folder) if not e.startswith(".")) if os.path.isdir(folder) else []
        except OSError as err:
            raise DataFormatError(list_path, f"cannot list pair folder {folder} ({err.strerror})", where) from None
        if len(files) != 2:
            err = DataFormatError(list_path, f"pair folder {folder} must hold exactly 2 images, found {len(files)}",
                                  where)
            raise_or_record(err, on_error, skipped)
            continue
        flags.append(fields[1].lower() in ("1", "true"))
        names.append(where)
        paths.extend(os.path.join(folder, name) for name in files)
    buffers, issame, sources = _read_files(paths, names, np.array(flags, dtype=bool), on_error, skipped, list_path,
                                           root, max_pixels)
    return _finish_pairs(buffers, issame, sources, decode, image_size, on_error, skipped,
                         f"read_pair_folders({list_path})", max_pixels)
