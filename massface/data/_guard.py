"""Defences of massface's readers against hostile and careless input.

* **Image bombs.** :func:`image_header` reads the width and height of a JPEG (SOF marker), PNG (IHDR), BMP
  (DIB header) or WebP (VP8 / VP8L / VP8X) from its first bytes, so :func:`decode_bgr` can refuse an image of
  more than ``max_pixels`` pixels **before** OpenCV allocates anything. Other formats are refused: their size
  cannot be checked without decoding them. The default bound is :data:`DEFAULT_MAX_PIXELS` (40 MP); every
  reader takes ``max_pixels=``.
* **Only regular files.** :func:`read_regular_file`, :func:`open_regular_fd` and :func:`iter_text_lines` stat the
  path first and open it ``O_NONBLOCK`` (then ``fstat`` the descriptor), so a FIFO, socket, device or a symlink to
  ``/dev/zero`` gives an error instead of a hang or an endless read.
* **Paths from data files stay inside their root.** :func:`relpath_problem` refuses absolute paths, ``..`` that
  climbs out, NUL bytes and empty names (lexically); :func:`outside_root` resolves symlinks (``realpath``) and
  refuses a target outside the root. Error messages name paths, never the contents of the files they point at.
* **Text files.** :func:`iter_text_lines` / :func:`read_text` decode strict UTF-8 and name the line and byte
  offset of an invalid byte.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from massface._checks import check_int
from massface.data._errors import DataFormatError, PathLike

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_LABEL", "check_max_pixels", "max_file_bytes", "image_header",
           "check_image_size", "decode_bgr", "ImageError", "read_regular_file", "open_regular_fd", "file_problem",
           "regular_size", "require_regular_file", "iter_text_lines", "read_text", "read_lines", "parse_int", "parse_ints",
           "relpath_problem", "outside_root", "real_root", "component_problem", "is_within", "overlap_problem",
           "create_temp"]

#: Default bound on the pixels (width × height) of one image, checked from its header before decoding.
DEFAULT_MAX_PIXELS = 40_000_000

#: Largest label accepted from a JSON list or an index file (labels index a classifier's rows).
MAX_LABEL = 2 ** 31 - 1

_SOF_MARKERS = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_O_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
            | getattr(os, "O_BINARY", 0))


class ImageError(ValueError):
    """An encoded image was refused; callers turn it into a DataFormatError naming the file and record."""


def check_max_pixels(max_pixels: object) -> int:
    """Validate a ``max_pixels`` argument: a positive integer."""
    return check_int("max_pixels", max_pixels)


def image_hw(image_size: object, what: str = "image_size") -> tuple[int, int]:
    """``(height, width)`` of an image-size argument: an int S (a square S×S) or a ``(height, width)`` pair of
    positive ints — the one convention of massface.data (``read_bin``, ``JsonListDataset``, ``align``,
    ``transforms``), like numpy's ``shape[:2]``. Raises ValueError otherwise."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        pair: tuple[object, ...] = (image_size, image_size)
    else:
        try:
            pair = tuple(image_size)  # type: ignore[call-overload]
        except TypeError:
            pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in pair):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair of positive ints, "
                         f"got {image_size!r}")
    return int(pair[0]), int(pair[1])  # type: ignore[call-overload]


def max_file_bytes(max_pixels: int) -> int:
    """Largest encoded image file read whole: 8 bytes per allowed pixel (16-bit RGBA stored raw) + 1 MiB."""
    return 8 * int(max_pixels) + (1 << 20)


# ----------------------------------------------------------------------------------------------- image headers
def _jpeg_size(b: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF marker, walking the marker segments like libjpeg's read_markers."""
    n, i = len(b), 2
    while True:
        j = b.find(b"\xff", i)  # libjpeg skips stray bytes between markers
        if j < 0:
            raise ImageError("undecodable image: JPEG ends before its frame header (SOF marker)")
        i = j
        while i < n and b[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise ImageError("undecodable image: JPEG ends before its frame header (SOF marker)")
        marker = b[i]
        i += 1
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # stuffed byte, TEM, RSTn, SOI: no length
            continue
        if marker in (0xD9, 0xDA):
            raise ImageError("undecodable image: JPEG has no frame header (SOF marker) before its image data")
        if i + 2 > n:
            raise ImageError("undecodable image: JPEG marker segment truncated")
        length = (b[i] << 8) | b[i + 1]
        if length < 2:
            raise ImageError(f"undecodable image: JPEG marker 0xFF{marker:02X} has an invalid length {length}")
        if marker in _SOF_MARKERS:
            if i + 7 > n or length < 8:
                raise ImageError("undecodable image: JPEG frame header (SOF) truncated")
            height = (b[i + 3] << 8) | b[i + 4]
            width = (b[i + 5] << 8) | b[i + 6]
            return width, height
        i += length


def _webp_size(b: bytes) -> tuple[int, int]:
    if len(b) < 30:
        raise ImageError("undecodable image: WebP header truncated")
    chunk = b[12:16]
    if chunk == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise ImageError("undecodable image: WebP VP8 frame has no start code")
        w, h = struct.unpack_from("<HH", b, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if b[20] != 0x2F:
            raise ImageError("undecodable image: WebP VP8L stream has no signature byte")
        (bits,) = struct.unpack_from("<I", b, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(b[24:27], "little") + 1
        h = int.from_bytes(b[27:30], "little") + 1
        return w, h
    raise ImageError("undecodable image: WebP with an unknown first chunk")


def image_header(buf: bytes | bytearray | memoryview | np.ndarray) -> tuple[str, int, int]:
    """``(format, width, height)`` of an encoded JPEG, PNG, BMP or WebP, read from its header only.

    Raises :class:`ImageError` for other formats and for headers that are truncated or malformed. O(header) time.
    """
    b = buf if isinstance(buf, bytes) else bytes(buf)
    if b.startswith(b"\xff\xd8\xff"):
        return ("JPEG",) + _jpeg_size(b)
    if b.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(b) < 24:
            raise ImageError("undecodable image: PNG header truncated")
        if b[12:16] != b"IHDR":
            raise ImageError("undecodable image: PNG does not start with an IHDR chunk")
        w, h = struct.unpack_from(">II", b, 16)
        return "PNG", w, h
    if b.startswith(b"BM"):
        if len(b) < 26:
            raise ImageError("undecodable image: BMP header truncated")
        (size,) = struct.unpack_from("<I", b, 14)
        if size == 12:  # BITMAPCOREHEADER
            w, h = struct.unpack_from("<HH", b, 18)
        elif size >= 16:
            w, h = struct.unpack_from("<ii", b, 18)
            if w < 0:
                raise ImageError(f"undecodable image: BMP width {w} is negative")
            h = abs(h)  # negative height = top-down rows
        else:
            raise ImageError(f"undecodable image: BMP info header of {size} bytes is not a known kind")
        return "BMP", w, h
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return ("WebP",) + _webp_size(b)
    raise ImageError("undecodable image: not a JPEG, PNG, BMP or WebP file (other formats are refused: their "
                     "size cannot be checked before decoding)")


def check_image_size(buf: bytes | bytearray | memoryview | np.ndarray, max_pixels: int,
                     expected_hw: tuple[int, int] | None = None,
                     declared_by: str = "the dataset") -> tuple[str, int, int]:
    """:func:`image_header`, then refuse empty images, images of more than ``max_pixels`` pixels and — with
    ``expected_hw=(H, W)`` — images of another size (``declared_by`` names who declared it, for the message)."""
    fmt, w, h = image_header(buf)
    if w <= 0 or h <= 0:
        raise ImageError(f"undecodable image: {fmt} header says {w}×{h} pixels")
    if w * h > max_pixels:
        raise ImageError(f"{fmt} header says {w}×{h} = {w * h:,} pixels, more than max_pixels={max_pixels:,} "
                         "(a decompression bomb?); refused before decoding — pass a larger max_pixels to read it")
    if expected_hw is not None and (h, w) != tuple(expected_hw):
        raise ImageError(f"{fmt} header says {w}×{h} (W×H) but {declared_by} declares H,W = "
                         f"{expected_hw[0]},{expected_hw[1]}; refused before decoding")
    return fmt, w, h


def decode_bgr(arr: np.ndarray, max_pixels: int, expected_hw: tuple[int, int] | None = None,
               declared_by: str = "the dataset") -> np.ndarray:
    """Header check (:func:`check_image_size`), then ``cv2.imdecode`` to BGR uint8 (H, W, 3); ImageError on failure.

    Nothing is decoded unless the header passes; the decoded size is checked again (belt and braces).
    """
    import cv2

    fmt, w, h = check_image_size(arr, max_pixels, expected_hw, declared_by)
    try:
        img = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    except cv2.error as err:
        first = str(err).strip().splitlines()[-1][:120] if str(err).strip() else "error"
        raise ImageError(f"undecodable {fmt} image of {w}×{h} ({arr.size} bytes; OpenCV: {first})") from None
    if img is None:
        raise ImageError(f"undecodable {fmt} image ({arr.size} bytes; header says {w}×{h} but the data is corrupt "
                         "or truncated)")
    if img.shape[0] * img.shape[1] > max_pixels:  # belt and braces: never hand out more than allowed
        raise ImageError(f"decoded image of {img.shape[1]}×{img.shape[0]} pixels exceeds max_pixels={max_pixels:,}")
    if expected_hw is not None and img.shape[:2] != tuple(expected_hw):
        raise ImageError(f"decoded image of {img.shape[1]}×{img.shape[0]} (W×H) but {declared_by} declares H,W = "
                         f"{expected_hw[0]},{expected_hw[1]}")
    return img


# ----------------------------------------------------------------------------------------------- files
def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _stat_problem(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "cannot read: symlink loop (too many levels of symbolic links)"
        return f"cannot read ({err.strerror or type(err).__name__})"
    except ValueError:  # embedded NUL byte
        return "cannot read: the path contains a NUL byte"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file (only regular files are read)"
    return None


def file_problem(path: PathLike) -> str | None:
    """Why ``path`` cannot be read as a regular file (missing, a FIFO, a device, a loop, …), or None. Never blocks."""
    return _stat_problem(os.fspath(path))


def regular_size(path: PathLike) -> tuple[int | None, str | None]:
    """``(size, None)`` for a regular file, ``(None, why not)`` otherwise (stat only: never opens, never blocks)."""
    try:
        st = os.stat(os.fspath(path))
    except (OSError, ValueError):
        return None, _stat_problem(os.fspath(path))
    if not stat.S_ISREG(st.st_mode):
        return None, f"is {_kind(st.st_mode)}, not a regular file (only regular files are read)"
    return int(st.st_size), None


def require_regular_file(path: PathLike, what: str) -> int:
    """Size of the regular file ``path``; FileNotFoundError (naming ``what``) when nothing is there, DataFormatError
    when it is something else (FIFO, device, socket, directory, symlink loop)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    size, problem = regular_size(path)
    if problem is not None:
        raise DataFormatError(path, f"{what}: {problem}")
    return size  # type: ignore[return-value]


def open_regular_fd(path: str, record: object = None) -> tuple[int, int]:
    """Open a regular file read-only without blocking: ``(fd, size)``; DataFormatError for anything else.

    The path is stat-ed first (a FIFO, socket or device is never opened) and the descriptor ``fstat``-ed after
    ``open(O_NONBLOCK | O_NOCTTY)`` (the path may have been swapped in between).
    """
    problem = _stat_problem(path)
    if problem is not None:
        raise DataFormatError(path, problem, record)
    try:
        fd = os.open(path, _O_FLAGS)
    except OSError as err:
        raise DataFormatError(path, f"cannot open ({err.strerror or type(err).__name__})", record) from None
    try:
        st = os.fstat(fd)
    except OSError as err:  # pragma: no cover - fstat of an open descriptor
        os.close(fd)
        raise DataFormatError(path, f"cannot stat ({err.strerror})", record) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DataFormatError(path, f"is {_kind(st.st_mode)}, not a regular file (only regular files are read)",
                              record)
    return fd, int(st.st_size)


def read_regular_file(path: PathLike, record: object = None, *, max_bytes: int | None = None,
                      root: str | None = None) -> bytes:
    """Whole contents of a regular file; DataFormatError (naming ``path`` and ``record``) when it is not one,
    is larger than ``max_bytes``, or — with ``root`` (a :func:`real_root`) — resolves outside ``root``."""
    path = os.fspath(path)
    if root is not None:
        problem = outside_root(path, root)
        if problem is not None:
            raise DataFormatError(path, problem, record)
    fd, size = open_regular_fd(path, record)
    with open(fd, "rb", closefd=True) as f:
        if max_bytes is not None and size > max_bytes:
            raise DataFormatError(path, f"file of {size:,} bytes is larger than the {max_bytes:,} bytes allowed "
                                        "for one image (raise max_pixels to allow it)", record)
        try:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except OSError as err:
            raise DataFormatError(path, f"cannot read ({err.strerror})", record) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise DataFormatError(path, f"file grew past the {max_bytes:,} bytes allowed for one image", record)
    return data


def _utf8_error(path: str, data: bytes, err: UnicodeDecodeError, first_line: int = 1, base: int = 0) -> DataFormatError:
    start = err.start
    line = first_line + data.count(b"\n", 0, start)
    return DataFormatError(path, f"not valid UTF-8 text (invalid byte at byte offset {base + start})", f"line {line}")


def read_text(path: PathLike) -> str:
    """A regular text file decoded as strict UTF-8 (DataFormatError naming the line and byte offset)."""
    path = os.fspath(path)
    data = read_regular_file(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _utf8_error(path, data, err) from None


def read_lines(path: PathLike) -> list[str]:
    """The lines of a regular strict-UTF-8 text file (line ``n`` is element ``n - 1``), split at ``\\n`` only, a
    trailing ``\\r`` dropped. Reads the whole file at once (fast for index files of millions of lines); invalid
    UTF-8 raises DataFormatError naming the line and byte offset."""
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_int(text: str, path: PathLike, record: object, what: str, lo: int, hi: int) -> int:
    """``text`` as an integer in ``[lo, hi]``: ASCII digits with an optional sign only, range-checked before any
    use (10**30 or -1 give a DataFormatError naming ``path``, ``record`` and ``what``, never an OverflowError).

    At most 19 significant digits are converted (``int`` of a 5000-digit string is never attempted).
    """
    s = text.strip()
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        raise DataFormatError(path, f"{what} must be an integer in [{lo}, {hi}], got {s[:40]!r}", record)
    if len(body) > 19 and len(body.lstrip("0")) > 19:
        raise DataFormatError(path, f"{what} {s[:40]}{'…' if len(s) > 40 else ''} is outside [{lo}, {hi}]", record)
    value = int(s)
    if not lo <= value <= hi:
        raise DataFormatError(path, f"{what} {value} is outside [{lo}, {hi}]", record)
    return value


def parse_ints(fields: Sequence[str], bounds: Sequence[tuple[str, int, int]], path: PathLike,
               record: object) -> list[int]:
    """Several integer fields at once, ``bounds[k] = (what, lo, hi)`` for ``fields[k]``: a fast ``int`` pass for
    the common case, then :func:`parse_int` on each field (which names the culprit) when any is unusual."""
    try:
        values = [int(f) for f in fields]
    except ValueError:
        values = []
    if len(values) == len(bounds):
        for v, (_, lo, hi) in zip(values, bounds):
            if not lo <= v <= hi:
                break
        else:
            return values
    return [parse_int(f, path, record, what, lo, hi) for f, (what, lo, hi) in zip(fields, bounds)]


def iter_text_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, line without its line break)`` of a regular UTF-8 text file, streamed.

    Lines end at ``\\n`` (a ``\\r`` before it is dropped). An invalid UTF-8 byte raises DataFormatError naming the
    file, the line and the byte offset.
    """
    path = os.fspath(path)
    fd, _ = open_regular_fd(path)
    with open(fd, "rb", closefd=True) as f:
        offset = 0
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _utf8_error(path, raw, err, lineno, offset) from None
            offset += len(raw)
            yield lineno, line.rstrip("\r\n")


# ----------------------------------------------------------------------------------------------- paths
def relpath_problem(rel: str) -> str | None:
    """Why ``rel`` (a path read from a data file) may not be joined to its root, or None when it may.

    Refused: empty, NUL bytes, absolute paths (also ``\\\\``/drive forms on Windows), and ``..`` that climbs above
    the root after lexical normalisation.
    """
    if not rel:
        return "empty path"
    if "\0" in rel:
        return "path contains a NUL byte"
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or os.path.splitdrive(rel)[0]:
        return "absolute path (paths in a data file must be relative to its root)"
    norm = os.path.normpath(rel)
    if norm == os.pardir or norm.startswith(os.pardir + os.sep) or norm == ".":
        return "path climbs out of its root ('..')" if norm != "." else "path names the root itself"
    return None


def component_problem(name: str) -> str | None:
    """Why ``name`` may not be used as one path component (a folder or file name from a data file), or None."""
    if not name:
        return "empty name"
    if "\0" in name:
        return "name contains a NUL byte"
    if name in (os.curdir, os.pardir) or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "name must be a single path component (no '/', '.' or '..')"
    return None


def real_root(root: PathLike) -> str:
    """``realpath`` of a data root, as :func:`outside_root` wants it."""
    return os.path.realpath(os.fspath(root))


def is_within(real: str, root_real: str) -> bool:
    """True when the resolved path ``real`` is ``root_real`` or lies under it (both already ``realpath``-ed)."""
    prefix = root_real if root_real.endswith(os.sep) else root_real + os.sep
    return real == root_real or real.startswith(prefix)


def outside_root(path: str, root_real: str) -> str | None:
    """Why ``path`` does not resolve (through symlinks) inside ``root_real``, or None when it does."""
    real = os.path.realpath(path)
    if is_within(real, root_real):
        return None
    return f"resolves (through a symlink) to {real}, outside the data root {root_real}; refused"


def _inodes_under(path: str) -> set[tuple[int, int]]:
    """(device, inode) of ``path`` and of everything under it, symlinks followed for files (a writer opening such a
    name would write through the link) but never descended into."""
    found: set[tuple[int, int]] = set()

    def add(p: str) -> None:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            return
        found.add((st.st_dev, st.st_ino))

    add(path)
    if os.path.isdir(path):
        for folder, dirs, files in os.walk(path, followlinks=False):
            for name in dirs + files:
                add(os.path.join(folder, name))
    return found


def overlap_problem(output: PathLike, files: Iterable[PathLike], dirs: Iterable[PathLike]) -> str | None:
    """Why writing ``output`` (a file or folder) could touch an input, or None when it cannot.

    Refused: ``output`` that is, contains or lies inside one of the input folders ``dirs`` (compared by
    ``realpath``), and ``output`` that is, or holds, one of the input ``files`` — compared by (device, inode), so
    symlinks and hard links count. Only stats and a walk of ``output`` (when it exists); never opens a file.
    """
    out = os.fspath(output)
    out_real = os.path.realpath(out)
    for d in dirs:
        d = os.fspath(d)
        d_real = os.path.realpath(d)
        if out_real == d_real:
            return f"the output {out} is the input folder {d}"
        if is_within(out_real, d_real):
            return f"the output {out} lies inside the input folder {d}"
        if is_within(d_real, out_real):
            return f"the output {out} contains the input folder {d}"
    if not os.path.lexists(out):
        return None  # nothing exists under a path that does not exist
    inodes = _inodes_under(out)
    for f in files:
        f = os.fspath(f)
        try:
            st = os.stat(f)
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) in inodes:
            return f"the output {out} {'is' if os.path.realpath(f) == out_real else 'contains'} the input file {f}"
    return None


def create_temp(directory: str, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a new, unique file in ``directory`` for writing: ``(fd, path)``.

    Like ``tempfile.mkstemp`` (``O_EXCL``, never an existing file or a link) but with the permissions of an
    ordinary new file (``0o666`` less the umask), so a temporary renamed into place keeps normal permissions.
    """
    import uuid

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{uuid.uuid4().hex[:12]}{suffix}")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:  # pragma: no cover - a 48-bit collision
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")  # pragma: no cover
