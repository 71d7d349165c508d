"""Image-file datasets: MassFace's folder per identity and ffem's JSON list with bounding boxes.

* :class:`FolderDataset` — ``root/<identity>/<image>``; labels are the indices of the **sorted** identity folder
  names (MassFace, torchvision ``ImageFolder``), images sorted by file name within a folder.
* :class:`JsonListDataset` — ffem's ``{"rel/path.jpg": {"label": 0, "x1": .., "y1": .., "x2": .., "y2": ..}}``
  relative to an image root; each image is cropped to its box (optionally resized).
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from massface._progress import progress_bar
from massface.data._errors import DataFormatError, OnError, PathLike, raise_or_record
from massface.data._guard import (
    DEFAULT_MAX_PIXELS,
    MAX_LABEL,
    _kind,
    max_file_bytes,
    read_regular_file,
    read_text,
    real_root,
    relpath_problem,
)
from massface.data.encoded import EncodedImageDataset, ImageLike, encode_image

__all__ = ["FolderDataset", "JsonListDataset", "write_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class _FileDataset(EncodedImageDataset):
    """Samples stored one per file: ``self.paths[i]`` with label ``self._labels[i]``.

    Only regular files are read (a FIFO or device gives a DataFormatError, never a hang), files larger than
    ``8 · max_pixels + 1 MiB`` bytes are refused unread, and with ``self._root_real`` set a path must resolve
    (through symlinks) inside that root.
    """

    paths: list[str]
    _root_real: str | None = None

    def read_encoded(self, index: int) -> bytes:
        return read_regular_file(self.paths[index], f"sample {index}", max_bytes=max_file_bytes(self.max_pixels),
                                 root=self._root_real)

    def location(self, index: int) -> tuple[str, str]:
        return self.paths[index], f"sample {index} (label {int(self._labels[index])})"

    def input_paths(self) -> tuple[list[str], list[str]]:
        return self._list_files() + list(self.paths), [self._data_dir()]

    def _list_files(self) -> list[str]:
        """Files read besides the images (the JSON list)."""
        return []

    def _data_dir(self) -> str:
        """The folder the images are read from."""
        raise NotImplementedError


def _scan(path: str, what: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as err:
        raise DataFormatError(path, f"cannot list {what} ({err.strerror or type(err).__name__})") from None


def _entry_problem(entry: os.DirEntry, want_dir: bool) -> tuple[bool, str | None, os.stat_result | None]:
    """(is the wanted kind, why it cannot be used, its stat when a symlink was followed) without blocking.

    The reason is a phrase such as "a FIFO (named pipe), not a regular file" or "a symlink loop (…)"."""
    try:
        ok = entry.is_dir() if want_dir else entry.is_file()
        if ok:
            return True, None, (os.stat(entry.path) if want_dir and entry.is_symlink() else None)
        if entry.is_symlink():
            st = os.stat(entry.path)  # a symlink to something else: say what
            return False, f"a symlink to {_kind(st.st_mode)}", st
        if want_dir:
            return False, None, None
        return False, f"{_kind(entry.stat(follow_symlinks=False).st_mode)}, not a regular file", None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return False, "a symlink loop (too many levels of symbolic links)", None
        if err.errno == errno.ENOENT and entry.is_symlink():
            return False, "a dangling symlink", None
        return False, f"cannot stat ({err.strerror or type(err).__name__})", None


class FolderDataset(_FileDataset):
    """Folder per identity: ``ds[i] -> (RGB uint8 (H, W, 3) or transform(x), label)``.

    ``classes`` are the sorted sub-folder names of ``root`` (hidden ones ignored); label = index in that list,
    so folder names should sort in the intended order (zero-padded numbers). Files whose suffix is in
    ``extensions`` (case-insensitive) are taken in sorted order. Listing reads the directories (``stat`` only for
    symlinks); nothing is decoded until accessed.

    Careless trees are reported, not followed: an image-suffixed entry that is not a regular file (FIFO, socket,
    device, directory, dangling or looping symlink) and an identity folder that is the same directory as ``root``
    or as another identity (a symlink loop or duplicate) raise :class:`DataFormatError`, or with
    ``on_error="skip"`` are left out and counted in :attr:`skipped` (a left-out identity folder is not in
    ``classes``). Images of more than ``max_pixels`` pixels are refused from their header, before decoding.
    """

    def __init__(self, root: PathLike, transform: Callable[..., Any] | None = None, *,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, on_error: OnError = "raise",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__(transform, on_error, max_pixels)
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"image folder root not found: {self.root}")
        exts = tuple(e.lower() for e in extensions)
        root_st = os.stat(self.root)
        seen: dict[tuple[int, int], str] = {(root_st.st_dev, root_st.st_ino): self.root}
        classes: list[str] = []
        for e in sorted(_scan(self.root, "the identity folders"), key=lambda d: d.name):
            if e.name.startswith("."):
                continue
            is_dir, problem, st = _entry_problem(e, want_dir=True)
            if problem is not None and (is_dir or e.is_symlink()):
                raise_or_record(DataFormatError(e.path, f"identity folder entry cannot be used: {problem}"),
                                self.on_error, self.skipped)
                continue
            if not is_dir:
                continue
            key = (st.st_dev, st.st_ino) if st is not None else (root_st.st_dev, e.inode())
            if key in seen:
                raise_or_record(DataFormatError(e.path, f"identity folder is the same directory as {seen[key]} "
                                                        "(a symlink loop or a duplicated identity); refused"),
                                self.on_error, self.skipped)
                continue
            seen[key] = e.path
            classes.append(e.name)
        self.classes = classes
        if not self.classes:
            raise DataFormatError(self.root, "no identity sub-folders (expected root/<identity>/<image files>)")
        paths: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            folder = os.path.join(self.root, name)
            try:
                entries = _scan(folder, "the identity folder")
            except DataFormatError as err:
                raise_or_record(err, self.on_error, self.skipped)
                continue
            files = []
            for e in entries:
                if e.name.startswith(".") or not e.name.lower().endswith(exts):
                    continue
                regular, problem, _ = _entry_problem(e, want_dir=False)
                if regular:
                    files.append(e.name)
                else:
                    raise_or_record(DataFormatError(e.path, f"image entry cannot be read: {problem}; only "
                                                            "regular files are read",
                                                    f"identity {name!r} (label {label})"),
                                    self.on_error, self.skipped)
            files.sort()
            paths.extend(os.path.join(folder, f) for f in files)
            labels.extend([label] * len(files))
        if not paths:
            raise DataFormatError(self.root, f"no image files with suffix in {exts} under the identity folders")
        self.paths = paths
        self._labels = np.asarray(labels, dtype=np.int64)
        self.skipped.warn(f"FolderDataset({self.root})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _data_dir(self) -> str:
        return self.root


def _no_duplicates(path: str) -> Callable[[list[tuple[str, Any]]], dict]:
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise DataFormatError(path, f"key {key!r:.80} appears more than once (keys must be unique: a later "
                                            "entry would silently replace the earlier one)")
            out[key] = value
        return out
    return hook


class JsonListDataset(_FileDataset):
    """ffem's JSON list: ``{"rel/path.jpg": {"label": int, "x1", "y1", "x2", "y2": box in pixels}, ...}``.

    Images are read from ``image_root/rel/path.jpg`` in the JSON's order; with ``crop=True`` each is cropped to
    ``[floor(x1), ceil(x2)) × [floor(y1), ceil(y2))`` clipped to the image, then resized to ``output_size``
    (H, W) when given. Entries are validated when the list is loaded (label an integer in [0, 2**31), box numbers
    with x1 < x2, y1 < y2, a relative path that stays inside ``image_root``); a box that falls outside its image
    raises at read time, as does a path that resolves through a symlink outside ``image_root``. The file must be
    strict UTF-8 JSON without duplicate keys; with ``on_error="skip"`` only bad entries are dropped (counted).
    """

    def __init__(self, json_path: PathLike, image_root: PathLike, transform: Callable[..., Any] | None = None, *,
                 crop: bool = True, output_size: tuple[int, int] | None = None,
                 on_error: OnError = "raise", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__(transform, on_error, max_pixels)
        self.json_path, self.image_root = os.fspath(json_path), os.fspath(image_root)
        self.crop, self.output_size = crop, output_size
        self._root_real = real_root(self.image_root)
        text = read_text(self.json_path)
        try:
            entries = json.loads(text, object_pairs_hook=_no_duplicates(self.json_path))
        except json.JSONDecodeError as err:
            raise DataFormatError(self.json_path, f"invalid JSON ({err.msg} at line {err.lineno} column "
                                                  f"{err.colno})") from None
        except RecursionError:
            raise DataFormatError(self.json_path, "JSON nested too deeply (expected a flat object of entries)") \
                from None
        except ValueError as err:  # e.g. an integer of more than 4300 digits
            raise DataFormatError(self.json_path, f"invalid JSON ({str(err)[:120]})") from None
        if not isinstance(entries, dict):
            raise DataFormatError(self.json_path, "expected a JSON object mapping image paths to "
                                                  "{'label', 'x1', 'y1', 'x2', 'y2'}")
        paths: list[str] = []
        labels: list[int] = []
        boxes: list[tuple[float, float, float, float]] = []
        for rel, entry in entries.items():
            try:
                problem = relpath_problem(rel)
                if problem is not None:
                    raise DataFormatError(self.json_path, f"{problem}; refused", f"key {rel!r:.80}")
                label, box = self._parse_entry(entry, rel)
            except DataFormatError as err:
                raise_or_record(err, self.on_error, self.skipped)
                continue
            paths.append(os.path.join(self.image_root, rel))
            labels.append(label)
            boxes.append(box)
        self.paths = paths
        self.keys = [os.path.relpath(p, self.image_root) for p in paths]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.skipped.warn(f"JsonListDataset({self.json_path})")

    def _list_files(self) -> list[str]:
        return [self.json_path]

    def _data_dir(self) -> str:
        return self.image_root

    def _parse_entry(self, entry: Any, key: str = "") -> tuple[int, tuple[float, float, float, float]]:
        where = f"key {key!r:.80}"
        if not isinstance(entry, dict) or "label" not in entry:
            raise DataFormatError(self.json_path, "each value must be an object with 'label' (and a box)", where)
        label = entry["label"]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= MAX_LABEL:
            raise DataFormatError(self.json_path, f"'label' must be an integer in [0, 2**31), got {label!r:.40}",
                                  where)
        if not self.crop:
            return label, (math.nan,) * 4  # type: ignore[return-value]
        try:
            box = tuple(float(entry[k]) for k in ("x1", "y1", "x2", "y2"))
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(self.json_path, "box needs numeric 'x1', 'y1', 'x2', 'y2'", where) from None
        if not all(map(math.isfinite, box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise DataFormatError(self.json_path, f"box {box} must be finite with x1 < x2 and y1 < y2", where)
        return label, box  # type: ignore[return-value]

    def postprocess(self, index: int, image: np.ndarray) -> np.ndarray:
        if self.crop:
            x1, y1, x2, y2 = self.boxes[index]
            h, w = image.shape[:2]
            c0, r0 = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
            c1, r1 = min(int(math.ceil(x2)), w), min(int(math.ceil(y2)), h)
            if c1 <= c0 or r1 <= r0:
                raise DataFormatError(self.paths[index], f"box ({x1}, {y1}, {x2}, {y2}) lies outside the "
                                                         f"{w}×{h} image", f"sample {index}")
            image = image[r0:r1, c0:c1]
        if self.output_size is not None and image.shape[:2] != tuple(self.output_size):
            h, w = self.output_size
            interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
            image = cv2.resize(image, (w, h), interpolation=interp)
        return np.ascontiguousarray(image)


def write_folder(directory: PathLike, samples: Iterable[tuple[ImageLike, int]], *, quality: int = 95,
                 num_classes: int | None = None, progress: bool = False, total: int | None = None) -> int:
    """Write ``(image, label)`` samples as ``directory/<label>/<n>.<ext>`` readable by :class:`FolderDataset`.

    Label folders are zero-padded to ``len(str(num_classes - 1))`` digits (7 without ``num_classes``) so that
    their sorted order is the label order; a label outside ``[0, num_classes)`` raises. Encoded JPEG/PNG bytes are
    written untouched (suffix from their signature), arrays are JPEG-encoded. Returns the number written.
    """
    directory = os.fspath(directory)
    digits = len(str(num_classes - 1)) if num_classes else 7
    limit = num_classes if num_classes else 10 ** digits
    bar = progress_bar(total=total, desc=f"write {directory}", unit="img", enabled=progress)
    n = 0
    made: set[int] = set()
    for n, (image, label) in enumerate(samples, 1):
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
                or not 0 <= label < limit:
            raise ValueError(f"sample {n - 1}: label {label!r} must be an integer in [0, {limit})")
        data = encode_image(image, quality, what=f"sample {n - 1}")
        ext = ".png" if data.startswith(b"\x89PNG") else ".bmp" if data.startswith(b"BM") else ".jpg"
        folder = os.path.join(directory, f"{int(label):0{digits}d}")
        if int(label) not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(int(label))
        with open(os.path.join(folder, f"{n - 1:08d}{ext}"), "wb") as f:
            f.write(data)
        bar.update()
    bar.close()
    return n
