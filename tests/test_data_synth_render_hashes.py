"""SynthFaces, draw_occlusion and the occlusion train preset are bit-identical to the renderer before the
split of ``SynthFaces._render`` by concern (issue 13): the hashes below were computed with that code."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from massface.data.synthetic import SynthFaces


def _digest(*arrays: np.ndarray) -> str:
    m = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        m.update(str(a.dtype).encode())
        m.update(str(a.shape).encode())
        m.update(a.tobytes())
    return m.hexdigest()[:32]


@pytest.mark.parametrize("n, m, seed, difficulty, size, split, images, landmarks", [
    (40, 3, 0, 0.5, 112, "train", "49a2102494ae8b0291bcc4b402fb472b", "b6699abb6f44271a0f58e9084368ef65"),
    (30, 4, 7, 1.0, 64, "heldout", "b46551fda487f9fb67e551e617c670a9", "106d49a14043fc9245fccb0e38492439"),
    (25, 2, 123, 0.0, 150, "train", "dba08c69bb4970011d69a42f3eb6f255", "fa5e987aa0d3df0b0b2a2d53577e2a47"),
])
def test_render_is_bit_identical(n: int, m: int, seed: int, difficulty: float, size: int, split: str,
                                 images: str, landmarks: str) -> None:
    ds = SynthFaces(n, m, seed=seed, difficulty=difficulty, image_size=size, split=split)  # type: ignore[arg-type]
    rendered = [ds.render(i, j) for i in range(n) for j in range(m)]
    assert _digest(np.stack([r[0] for r in rendered])) == images
    assert _digest(np.stack([r[1] for r in rendered])) == landmarks


@pytest.mark.parametrize("kind, plain, placed", [
    ("hand", "54167ee24c15ce4a03b135d5ea322f8b", "c09bdd5f5b9f8d0af544592356fe8441"),
    ("mask", "f6486e42289ccad768616d20cd5b6145", "415d4b06682dd286b0b07e40c9781db0"),
    ("sunglasses", "7740a63ffc7f2c371e0ea81f82656671", "cf419af76df2de7dad125ec37e28db81"),
    ("bar", "9f4b3e3c2c482173902033388e3c6b20", "0ec73080291d52ce5fe6c3c1218fd37d"),
])
def test_draw_occlusion_is_bit_identical(kind: str, plain: str, placed: str) -> None:
    from massface.data import draw_occlusion

    img = np.full((112, 112, 3), 128, np.uint8)
    assert _digest(draw_occlusion(img, kind, np.random.default_rng(5))) == plain
    img = np.full((96, 96, 3), 60, np.uint8)
    lm = np.array([[30, 40], [66, 40], [48, 58], [34, 75], [62, 75]], float)
    assert _digest(draw_occlusion(img, kind, np.random.default_rng(9), landmarks5=lm)) == placed


def test_verification_pairs_are_bit_identical() -> None:
    images, issame = SynthFaces(4, 2, seed=1).verification_pairs(2, 5, identities_per_fold=4, images_per_identity=3)
    assert _digest(images, issame) == "3cc554950a238ac695c822c4412747d0"


def test_transforms_are_bit_identical() -> None:
    from massface.data.transforms import build_eval_transform, build_train_transform

    img = SynthFaces(1, 1, seed=2).image(0, 0)
    t = build_train_transform("occlusion", seed=0, occlusion_p=1.0)
    assert _digest(np.stack([t(img).numpy() for _ in range(6)])) == "623406e81325bb4dc5537e7f9b740824"
    # (height, width) = (112, 96): the SphereFace crop; before issue 13 this was written (96, 112) (width first)
    out = build_eval_transform((112, 96))(img)
    assert tuple(out.shape) == (3, 112, 96)
    assert _digest(out.numpy()) == "eb47d57cfbb5d744882116c9ba9ee99e"


def test_occlusion_names_moved_with_a_deprecation_warning() -> None:
    import massface.data.synthetic as synthetic
    from massface.data import occlusion

    for name in ("draw_occlusion", "OCCLUSION_KINDS"):
        with pytest.warns(DeprecationWarning, match="massface.data.occlusion"):
            assert getattr(synthetic, name) is getattr(occlusion, name)
