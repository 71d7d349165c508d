"""One map from a training source's format to its reader: :func:`open_dataset` (used by ``massface convert`` and
the trainer).

=============  =====================================  ==========================================================
format         path                                   reader
=============  =====================================  ==========================================================
``folder``     a directory of identity folders        :class:`~massface.data.folder.FolderDataset`
``rec``        insightface ``train.rec`` (+ ``.idx``)  :class:`~massface.data.recordio.RecordDataset`
``tfrecord``   a TFace ``.index``                     :class:`~massface.data.tfrecord.TFRecordIndexDataset`
``json``       an ffem JSON list                      :class:`~massface.data.folder.JsonListDataset` (crops)
=============  =====================================  ==========================================================

``format="auto"`` tells them apart by the suffix (``.rec``, ``.index``, ``.json``) or a directory. Readers are
imported on call, so opening one format never imports the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from massface.data._errors import OnError, PathLike
from massface.data._guard import DEFAULT_MAX_PIXELS, image_hw
from massface.data.encoded import EncodedImageDataset

__all__ = ["DATASET_FORMATS", "open_dataset", "detect_format"]

#: The formats :func:`open_dataset` reads (besides ``"auto"``).
DATASET_FORMATS = ("folder", "rec", "tfrecord", "json")
_SUFFIXES = {".rec": "rec", ".index": "tfrecord", ".json": "json"}


def detect_format(path: PathLike) -> str:
    """The format of ``path`` from its suffix (``.rec``, ``.index``, ``.json``) or ``"folder"`` for a directory."""
    text = os.fspath(path)
    fmt = _SUFFIXES.get(os.path.splitext(text)[1].lower(), "folder" if os.path.isdir(text) else "")
    if not fmt:
        raise ValueError(f"cannot tell the format of {text!r}: pass format= (--from) one of "
                         f"{', '.join(DATASET_FORMATS)}")
    return fmt


def open_dataset(path: PathLike, format: str = "auto", *, image_root: PathLike | None = None,
                 size: int | tuple[int, int] | None = None, on_error: OnError = "raise",
                 max_pixels: int = DEFAULT_MAX_PIXELS, require_property: bool = True,
                 transform: Callable[..., Any] | None = None) -> EncodedImageDataset:
    """Open the training source ``path`` of ``format`` (see the module table) with one set of defaults.

    ``image_root``: the shard root of a TFace index (default: the index's directory) or the image root of a JSON
    list (required). ``size`` = (height, width) or an int: the size JSON crops are resized to (other formats ignore
    it). ``require_property``: a ``.rec`` needs its insightface ``property`` file (``massface convert`` passes
    False). ``on_error``, ``max_pixels`` and ``transform`` are passed to the reader. Raises ValueError for an
    unknown format.
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "folder":
        from massface.data.folder import FolderDataset
        return FolderDataset(path, transform, on_error=on_error, max_pixels=max_pixels)
    if fmt == "rec":
        from massface.data.recordio import RecordDataset
        return RecordDataset(path, transform, on_error=on_error, require_property=require_property,
                             max_pixels=max_pixels)
    if fmt == "tfrecord":
        from massface.data.tfrecord import TFRecordIndexDataset
        root = image_root if image_root is not None else os.path.dirname(os.path.abspath(os.fspath(path)))
        return TFRecordIndexDataset(path, root, transform, on_error=on_error, max_pixels=max_pixels)
    if fmt == "json":
        from massface.data.folder import JsonListDataset
        if image_root is None:
            raise ValueError("a JSON list needs image_root (the folder its paths are relative to; --image-root)")
        return JsonListDataset(path, image_root, transform, output_size=None if size is None else image_hw(size, "size"),
                               on_error=on_error, max_pixels=max_pixels)
    raise ValueError(f"unknown source format {fmt!r} (allowed: auto, {', '.join(DATASET_FORMATS)})")
