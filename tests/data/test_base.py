"""data._base: the old module still exports the encoded-image machinery."""

from __future__ import annotations


def test_base_module_still_exports_the_encoded_machinery():
    from massface.data import _base, encoded

    for name in ("EncodedImageDataset", "FileCache", "decode_image", "encode_image", "size_hints"):
        assert getattr(_base, name) is getattr(encoded, name)
