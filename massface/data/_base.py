"""Deprecated location: the encoded-image machinery now lives in :mod:`massface.data.encoded` (issue 13).

A plain re-export kept for one release; import from ``massface.data.encoded`` instead.
"""

from massface.data.encoded import (  # noqa: F401
    MAX_READ_HINT,
    EncodedImageDataset,
    FileCache,
    ImageLike,
    apply_transform,
    decode_image,
    encode_image,
    image_shape,
    is_encoded_image,
    size_hints,
)
