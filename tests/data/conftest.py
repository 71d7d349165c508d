"""Fixtures and helpers shared by the data tests."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from massface.data import SynthFaces


@pytest.fixture(scope="module")
def samples():
    return list(SynthFaces(3, 2, seed=0, image_size=32).iter_samples())


def flat_colour(i: int, size: int = 12) -> np.ndarray:
    return np.full((size, size, 3), ((50 * i) % 256, (90 * i + 30) % 256, 200 - 10 * i), np.uint8)


def jpeg_of(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), 100])[1].tobytes()


def folder_tree(root, counts=(2, 1, 3)) -> list[tuple[bytes, int]]:
    samples = []
    for label, n in enumerate(counts):
        d = root / f"id{label}"  # sorted names = label order
        d.mkdir(parents=True)
        for k in range(n):
            data = jpeg_of(flat_colour(3 * label + k))
            (d / f"{k:03d}.jpg").write_bytes(data)
            samples.append((data, label))
    (root / "id1" / "notes.txt").write_text("ignored")
    return samples


def digest(*arrays: np.ndarray) -> str:
    m = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        m.update(str(a.dtype).encode())
        m.update(str(a.shape).encode())
        m.update(a.tobytes())
    return m.hexdigest()[:32]


@pytest.fixture
def colour():
    """``colour(i, size=12)``: a flat RGB image whose colour is a function of ``i``."""
    return flat_colour


@pytest.fixture
def make_folder():
    """``make_folder(root, counts=(2, 1, 3))``: an image folder tree ``id<label>/<k>.jpg`` (plus a stray text file);
    returns the ``(jpeg bytes, label)`` samples in label order."""
    return folder_tree


@pytest.fixture(name="_digest")
def digest_fixture():
    """``_digest(*arrays)``: a short SHA-256 of the arrays' dtypes, shapes and bytes, for bit-identity pins."""
    return digest
