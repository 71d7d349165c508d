"""Aligned face crops of an IJB release: each ``loose_crop/`` image read safely (a regular file inside the
crop directory, its header checked against ``max_pixels`` before decoding) and warped to the ArcFace template
by its detector landmarks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from massface.evaluation.ijb.release import IJBMeta

__all__ = ["aligned_crops"]


def aligned_crops(meta: IJBMeta, start: int, stop: int, image_size: int | Sequence[int],
                  max_pixels: int) -> Iterator[np.ndarray]:
    """Aligned RGB crops ``(H, W, 3)`` uint8 of images ``start..stop-1``: each a regular file that resolves
    inside ``loose_crop/``, header-checked against ``max_pixels`` before decoding (DataFormatError naming the
    file and image). ``image_size``: ``(H, W)`` or a square side."""
    from massface.data._guard import image_hw, max_file_bytes, read_regular_file, real_root
    from massface.data.align import align_face
    from massface.data.encoded import decode_image

    size = image_hw(image_size)
    crops = meta.root / "loose_crop"
    root_real, limit = real_root(crops), max_file_bytes(max_pixels)
    for i in range(start, stop):
        path = crops / meta.image_names[i]
        where = f"image {i} of the tid_mid list"
        data = read_regular_file(path, where, max_bytes=limit, root=root_real)
        rgb = decode_image(data, path, where, max_pixels=max_pixels)
        yield align_face(rgb, meta.landmarks[i], image_size=size)


_iter_aligned = aligned_crops  # the old private name (tests and callers of massface.evaluation.ijb)
