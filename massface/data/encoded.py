"""Encoded images: the codec, the file reads and the base dataset every format reader derives from.

* image codec: :func:`decode_image` (encoded bytes -> RGB uint8 via OpenCV, BGR->RGB, after a ``max_pixels``
  check of the header — see :mod:`massface.data._guard`) and :func:`encode_image` (RGB array -> JPEG bytes;
  already-encoded JPEG/PNG bytes pass through untouched);
* :class:`FileCache`: per-process file descriptors read with ``os.pread`` (opened lazily, keyed by pid,
  never shared across ``fork`` and dropped on pickling, so DataLoader workers each open their own);
* :class:`EncodedImageDataset`: the map-style dataset every format preset derives from; a preset only says
  how to fetch the encoded bytes of sample ``i`` and where it lives.

Long conversions show progress with :func:`massface._progress.progress_bar` (tqdm).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from massface.data._errors import DataFormatError, OnError, PathLike, SkipReport, check_on_error, raise_or_record
from massface.data._guard import DEFAULT_MAX_PIXELS, ImageError, check_max_pixels, decode_bgr, open_regular_fd

__all__ = ["EncodedImageDataset", "FileCache", "ImageLike", "MAX_READ_HINT", "apply_transform", "decode_image",
           "encode_image", "image_shape", "is_encoded_image", "size_hints"]

ImageLike = bytes | bytearray | memoryview | np.ndarray

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_BMP_MAGIC = b"BM"


# ----------------------------------------------------------------------------------------------- codec
def decode_image(buf: bytes | bytearray | memoryview | np.ndarray, path: PathLike = "<bytes>",
                 record: object = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (JPEG/PNG/BMP/WebP, as bytes or a 1-D uint8 array) to RGB uint8 (H, W, 3).

    The width and height are read from the header first and an image of more than ``max_pixels`` pixels is
    refused **before** decoding (a 600-byte JPEG can announce 20000×20000); formats whose header is not parsed
    (TIFF, GIF, JPEG 2000, …) are refused. OpenCV decodes to BGR; the channels are reversed so the result is RGB
    like ``mx.image.imdecode``. Grey images are expanded to three channels. Raises :class:`DataFormatError` naming
    ``path`` and ``record`` when the buffer is empty, too large or undecodable (the message never quotes the
    bytes). Time O(H·W), memory one output image.
    """
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise DataFormatError(path, f"encoded image must be bytes or a 1-D uint8 array, got {arr.dtype} "
                                    f"array of shape {arr.shape}", record)
    if arr.size == 0:
        raise DataFormatError(path, "empty image payload (expected encoded JPEG/PNG bytes)", record)
    try:
        img = decode_bgr(np.ascontiguousarray(arr), max_pixels)
    except ImageError as err:
        raise DataFormatError(path, str(err), record) from None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def is_encoded_image(buf: bytes | bytearray | memoryview) -> bool:
    """True when ``buf`` starts with a JPEG, PNG or BMP signature (checks the magic only)."""
    head = bytes(buf[:8])
    return head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC) or head.startswith(_BMP_MAGIC)


def encode_image(image: ImageLike, quality: int = 95, what: str = "image") -> bytes:
    """Return encoded image bytes for ``image``.

    ``image`` is either already encoded (bytes / bytearray / memoryview / 1-D uint8 array holding a JPEG,
    PNG or BMP file; passed through unchanged, no re-encoding) or an RGB uint8 array (H, W, 3) or grey
    (H, W), which is JPEG-encoded with OpenCV at ``quality`` (RGB->BGR first, so the file has true colours).
    """
    if isinstance(image, np.ndarray) and image.ndim == 1:
        image = image.tobytes() if image.dtype == np.uint8 else image
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not is_encoded_image(data):
            raise ValueError(f"{what}: {len(data)} bytes that are not an encoded JPEG/PNG/BMP file (no JPEG, PNG "
                             "or BMP signature); pass an RGB uint8 array to have it encoded")
        return data
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what}: expected encoded bytes or an RGB uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{what}: expected a uint8 array of shape (H, W, 3) RGB or (H, W), "
                         f"got {image.dtype} {image.shape}")
    bgr = image if image.ndim == 2 else np.ascontiguousarray(image[:, :, ::-1])
    ok, enc = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"{what}: OpenCV failed to JPEG-encode an array of shape {image.shape}")
    return enc.tobytes()


def image_shape(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(H, W) of a raw array or of encoded bytes (decodes the bytes once, after the ``max_pixels`` header check)."""
    if isinstance(image, np.ndarray) and image.ndim >= 2:
        return int(image.shape[0]), int(image.shape[1])
    arr = decode_image(image if isinstance(image, np.ndarray) else bytes(image), max_pixels=max_pixels)
    return int(arr.shape[0]), int(arr.shape[1])


def apply_transform(transform: Callable[..., Any] | None, image: np.ndarray) -> Any:
    """Apply a transform: albumentations pipelines are called as ``t(image=x)["image"]``, others as ``t(x)``."""
    if transform is None:
        return image
    if type(transform).__module__.split(".")[0] == "albumentations":
        return transform(image=image)["image"]
    return transform(image)


# ----------------------------------------------------------------------------------------------- files
class FileCache:
    """Read-only file descriptors opened lazily in the current process and read with ``os.pread``.

    The cache is keyed by ``os.getpid()``: after a ``fork`` (DataLoader workers) the child closes its
    inherited copies and opens its own, and pickling (spawn workers) drops the descriptors. ``pread``
    keeps no file position, so threads may share a descriptor. Only regular files are opened (stat first,
    then ``O_NONBLOCK`` and ``fstat``: a FIFO or device raises :class:`DataFormatError` instead of blocking),
    and a read never asks for more bytes than the file holds (no allocation driven by a corrupt length field).
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._fds: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def fd(self, path: str, record: object = None) -> int:
        pid = os.getpid()
        if pid != self._pid:
            for fd in self._fds.values():  # this process's inherited copies; the parent keeps its own
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds, self._sizes = {}, {}
            self._pid = pid
        fd = self._fds.get(path)
        if fd is None:
            fd, size = open_regular_fd(path, record)
            self._fds[path] = fd
            self._sizes[path] = size
        return fd

    def size(self, path: str, record: object = None, refresh: bool = False) -> int:
        """Size of ``path`` in bytes (as of opening or the last read past it; ``refresh=True`` asks ``fstat``)."""
        fd = self.fd(path, record)
        if refresh:
            self._sizes[path] = os.fstat(fd).st_size
        return self._sizes[path]

    def read(self, path: str, offset: int, size: int, record: object = None) -> bytes:
        """Up to ``size`` bytes of ``path`` at ``offset`` (short only at end of file; never more than it holds)."""
        fd = self.fd(path, record)
        if offset < 0 or size < 0:
            raise DataFormatError(path, f"negative read (offset {offset}, {size} bytes)", record)
        if offset + size > self._sizes[path]:  # the file may have grown: refresh, then clamp to its end
            self._sizes[path] = os.fstat(fd).st_size
            size = max(0, min(size, self._sizes[path] - offset))
        if hasattr(os, "pread"):
            return os.pread(fd, size, offset)
        os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - platforms without pread
        return os.read(fd, size)

    def close(self) -> None:
        if self._pid == os.getpid():
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds, self._sizes = {}, {}

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


#: A record read is first tried with one ``pread`` of at most this many bytes (larger records take a second read).
MAX_READ_HINT = 1 << 22


def size_hints(offsets: np.ndarray, file_ids: np.ndarray, file_sizes: np.ndarray) -> np.ndarray:
    """Bytes from each record offset to the next record start in the same file (or to its end), at most
    :data:`MAX_READ_HINT`.

    Lets a reader fetch a whole record with one ``pread``. Vectorised: O(n log n) time, O(n) memory.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    file_ids = np.asarray(file_ids, dtype=np.int64)
    n = offsets.size
    hints = np.zeros(n, dtype=np.int64)
    if n == 0:
        return hints
    order = np.lexsort((offsets, file_ids))
    so, sf = offsets[order], file_ids[order]
    new = np.ones(n, dtype=bool)  # first of each distinct (file, offset); duplicates share a record
    new[1:] = (so[1:] != so[:-1]) | (sf[1:] != sf[:-1])
    group = np.cumsum(new) - 1
    uo, uf = so[new], sf[new]
    unext = np.empty(uo.size, dtype=np.int64)
    unext[:-1] = uo[1:]
    ulast = np.ones(uo.size, dtype=bool)
    ulast[:-1] = uf[1:] != uf[:-1]
    unext[ulast] = np.asarray(file_sizes, dtype=np.int64)[uf[ulast]]
    hints[order] = np.minimum(unext[group] - so, MAX_READ_HINT)
    return hints


# ----------------------------------------------------------------------------------------------- dataset
class EncodedImageDataset:
    """Map-style dataset of encoded images with int64 labels; subclasses implement the storage.

    ``ds[i]`` returns ``(image, label)``: ``image`` is RGB uint8 (H, W, 3) or ``transform(image)``;
    ``label`` a Python int. A subclass sets ``self._labels`` and implements :meth:`read_encoded` and
    :meth:`location`. Images of more than ``max_pixels`` pixels (read from the header, before decoding) are
    refused like undecodable ones. Bad samples raise :class:`DataFormatError`; with ``on_error="skip"`` a sample
    that fails at read time is replaced by the next readable sample **of the same identity** (so the
    label is always right), recorded in :attr:`skipped` (per process) and warned about once per record.
    Works with ``torch.utils.data.DataLoader`` (any number of workers, fork or spawn).
    """

    _labels: np.ndarray
    #: (H, W) every image must have, checked from its header before decoding (None: any size); a subclass sets it.
    expected_hw: tuple[int, int] | None = None
    #: Who declared :attr:`expected_hw`, for error messages (e.g. the path of RecordIO's ``property`` file).
    expected_hw_source: str = "the dataset"

    def __init__(self, transform: Callable[..., Any] | None = None, on_error: OnError = "raise",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.transform = transform
        self.on_error: OnError = check_on_error(on_error)
        self.max_pixels = check_max_pixels(max_pixels)
        self.skipped = SkipReport()
        self._files = FileCache()

    # --- to implement
    def read_encoded(self, index: int) -> bytes:
        """Encoded image bytes of sample ``index`` (raises DataFormatError when the record is bad)."""
        raise NotImplementedError

    def location(self, index: int) -> tuple[str, str]:
        """(file, record description) of sample ``index``, used in error messages."""
        raise NotImplementedError

    def postprocess(self, index: int, image: np.ndarray) -> np.ndarray:
        """Hook applied to the decoded RGB image (e.g. a crop); identity by default."""
        return image

    def input_paths(self) -> tuple[list[str], list[str]]:
        """``(files, folders)`` this dataset reads, so that a writer can refuse to overwrite them (``convert``)."""
        raise NotImplementedError

    def check_decoded(self, index: int, image: np.ndarray) -> None:
        """Hook to validate the decoded RGB image (e.g. against a declared size); raises DataFormatError."""

    # --- common API
    @property
    def labels(self) -> np.ndarray:
        """int64 array (N,) of labels, known without decoding any image."""
        view = self._labels.view()
        view.flags.writeable = False
        return view

    @property
    def num_classes(self) -> int:
        return int(self._labels.max()) + 1 if self._labels.size else 0

    def __len__(self) -> int:
        return int(self._labels.size)

    def _check_index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index {index} out of range for {n} samples")
        return i

    def decode_encoded(self, index: int, buf: bytes | np.ndarray) -> np.ndarray:
        """Decode the encoded bytes of sample ``index`` to RGB, then :meth:`check_decoded`.

        The header is checked first (at most ``max_pixels`` pixels and, when :attr:`expected_hw` is set, exactly
        that size), so a refused image is never decoded. Raises :class:`DataFormatError` naming the sample's file
        and record (built only on failure).
        """
        try:
            if not len(buf):
                raise ImageError("empty image payload (expected encoded JPEG/PNG bytes)")
            img = decode_bgr(np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf,
                             self.max_pixels, self.expected_hw, self.expected_hw_source)
        except ImageError as err:
            path, record = self.location(index)
            raise DataFormatError(path, str(err), record) from None
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        self.check_decoded(index, img)
        return img

    def load_image(self, index: int) -> np.ndarray:
        """Decoded RGB uint8 image of sample ``index`` (no transform, no skip substitution)."""
        index = self._check_index(index)
        return self.postprocess(index, self.decode_encoded(index, self.read_encoded(index)))

    def __getitem__(self, index: int) -> tuple[Any, int]:
        index = self._check_index(index)
        try:
            image = self.load_image(index)
        except DataFormatError as err:
            raise_or_record(err, self.on_error, self.skipped)
            image = self._substitute(index, err)
        return apply_transform(self.transform, image), int(self._labels[index])

    def _substitute(self, index: int, err: DataFormatError) -> np.ndarray:
        """Another readable sample of the identity of ``index`` (``err``, already recorded, is why)."""
        self.skipped.warn(f"{type(self).__name__}: replacing a bad sample by another of identity "
                          f"{int(self._labels[index])}", stacklevel=4)
        same = np.flatnonzero(self._labels == self._labels[index])
        start = int(np.searchsorted(same, index))
        for j in np.roll(same, -start)[1:]:
            try:
                return self.load_image(int(j))
            except DataFormatError as other:
                self.skipped.add(other)
        raise DataFormatError(err.path, f"{err.reason}; and no other readable sample of identity "
                                        f"{int(self._labels[index])} is left to replace it", err.record)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = FileCache()
        return state
