"""Image-file datasets: MassFace's folder per identity and ffem's JSON list with bounding boxes.

* :class:`FolderDataset` — ``root/<identity>/<image>``; labels are the indices of the **sorted** identity folder
  names (MassFace, torchvision ``ImageFolder``), images sorted by file name within a folder.
* :class:`JsonListDataset` — ffem's ``{"rel/path.jpg": {"label": 0, "x1": .., "y1": .., "x2": .., "y2": ..}}``
  relative to an image root; each image is cropped to its box (optionally resized).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Iterable, Optional, Sequence

import cv2
import numpy as np

from massface.data._base import EncodedImageDataset, ImageLike, Progress, encode_image
from massface.data._errors import DataFormatError, OnError, PathLike

__all__ = ["FolderDataset", "JsonListDataset", "write_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class _FileDataset(EncodedImageDataset):
    """Samples stored one per file: ``self.paths[i]`` with label ``self._labels[i]``."""

    paths: list[str]

    def read_encoded(self, index: int) -> bytes:
        path = self.paths[index]
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as err:
            raise DataFormatError(path, f"cannot read image file ({err.strerror})", f"sample {index}") from None

    def location(self, index: int) -> tuple[str, str]:
        return self.paths[index], f"sample {index} (label {int(self._labels[index])})"


class FolderDataset(_FileDataset):
    """Folder per identity: ``ds[i] -> (RGB uint8 (H, W, 3) or transform(x), label)``.

    ``classes`` are the sorted sub-folder names of ``root`` (hidden ones ignored); label = index in that list,
    so folder names should sort in the intended order (zero-padded numbers). Files whose suffix is in
    ``extensions`` (case-insensitive) are taken in sorted order. Listing is O(N) ``stat``-free directory reads;
    nothing is decoded until accessed.
    """

    def __init__(self, root: PathLike, transform: Optional[Callable[..., Any]] = None, *,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, on_error: OnError = "raise") -> None:
        super().__init__(transform, on_error)
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"image folder root not found: {self.root}")
        exts = tuple(e.lower() for e in extensions)
        with os.scandir(self.root) as it:
            self.classes = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise DataFormatError(self.root, "no identity sub-folders (expected root/<identity>/<image files>)")
        paths: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            folder = os.path.join(self.root, name)
            with os.scandir(folder) as it:
                files = sorted(e.name for e in it if e.name.lower().endswith(exts) and not e.name.startswith("."))
            paths.extend(os.path.join(folder, f) for f in files)
            labels.extend([label] * len(files))
        if not paths:
            raise DataFormatError(self.root, f"no image files with suffix in {exts} under the identity folders")
        self.paths = paths
        self._labels = np.asarray(labels, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class JsonListDataset(_FileDataset):
    """ffem's JSON list: ``{"rel/path.jpg": {"label": int, "x1", "y1", "x2", "y2": box in pixels}, ...}``.

    Images are read from ``image_root/rel/path.jpg`` in the JSON's order; with ``crop=True`` each is cropped to
    ``[floor(x1), ceil(x2)) × [floor(y1), ceil(y2))`` clipped to the image, then resized to ``output_size``
    (H, W) when given. Entries are validated when the list is loaded (label a non-negative int, box numbers
    with x1 < x2, y1 < y2); a box that falls outside its image raises at read time.
    """

    def __init__(self, json_path: PathLike, image_root: PathLike, transform: Optional[Callable[..., Any]] = None, *,
                 crop: bool = True, output_size: Optional[tuple[int, int]] = None,
                 on_error: OnError = "raise") -> None:
        super().__init__(transform, on_error)
        self.json_path, self.image_root = os.fspath(json_path), os.fspath(image_root)
        self.crop, self.output_size = crop, output_size
        try:
            with open(self.json_path, encoding="utf-8") as f:
                entries = json.load(f)
        except json.JSONDecodeError as err:
            raise DataFormatError(self.json_path, f"invalid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(entries, dict):
            raise DataFormatError(self.json_path, "expected a JSON object mapping image paths to "
                                                  "{'label', 'x1', 'y1', 'x2', 'y2'}")
        paths: list[str] = []
        labels: list[int] = []
        boxes: list[tuple[float, float, float, float]] = []
        for rel, entry in entries.items():
            try:
                label, box = self._parse_entry(entry)
            except DataFormatError as err:
                if self.on_error == "raise":
                    raise
                self.skipped.add(err)
                continue
            paths.append(os.path.join(self.image_root, rel))
            labels.append(label)
            boxes.append(box)
        self.paths = paths
        self.keys = [os.path.relpath(p, self.image_root) for p in paths]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.skipped.warn(f"JsonListDataset({self.json_path})")

    def _parse_entry(self, entry: Any) -> tuple[int, tuple[float, float, float, float]]:
        where = f"entry {entry!r:.60}"
        if not isinstance(entry, dict) or "label" not in entry:
            raise DataFormatError(self.json_path, "each value must be an object with 'label' (and a box)", where)
        label = entry["label"]
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DataFormatError(self.json_path, f"'label' must be a non-negative integer, got {label!r}", where)
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
                 num_classes: Optional[int] = None, progress: bool = False, total: Optional[int] = None) -> int:
    """Write ``(image, label)`` samples as ``directory/<label>/<n>.<ext>`` readable by :class:`FolderDataset`.

    Label folders are zero-padded to ``len(str(num_classes - 1))`` digits (7 without ``num_classes``) so that
    their sorted order is the label order; a label outside ``[0, num_classes)`` raises. Encoded JPEG/PNG bytes are
    written untouched (suffix from their signature), arrays are JPEG-encoded. Returns the number written.
    """
    directory = os.fspath(directory)
    digits = len(str(num_classes - 1)) if num_classes else 7
    limit = num_classes if num_classes else 10 ** digits
    bar = Progress(total, f"write {directory}", enabled=progress)
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
