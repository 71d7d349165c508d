"""data.occlusion: draw_occlusion is bit-identical to the renderer before the split by concern, changes pixels, rejects unknown kinds; the old names in data.synthetic warn."""

from __future__ import annotations

import numpy as np
import pytest

from massface.data.occlusion import OCCLUSION_KINDS, draw_occlusion
from massface.data.synthetic import SynthFaces


@pytest.mark.parametrize("kind, plain, placed", [
    ("hand", "54167ee24c15ce4a03b135d5ea322f8b", "c09bdd5f5b9f8d0af544592356fe8441"),
    ("mask", "f6486e42289ccad768616d20cd5b6145", "415d4b06682dd286b0b07e40c9781db0"),
    ("sunglasses", "7740a63ffc7f2c371e0ea81f82656671", "cf419af76df2de7dad125ec37e28db81"),
    ("bar", "9f4b3e3c2c482173902033388e3c6b20", "0ec73080291d52ce5fe6c3c1218fd37d"),
])
def test_draw_occlusion_is_bit_identical(kind: str, plain: str, placed: str, _digest) -> None:
    from massface.data import draw_occlusion

    img = np.full((112, 112, 3), 128, np.uint8)
    assert _digest(draw_occlusion(img, kind, np.random.default_rng(5))) == plain
    img = np.full((96, 96, 3), 60, np.uint8)
    lm = np.array([[30, 40], [66, 40], [48, 58], [34, 75], [62, 75]], float)
    assert _digest(draw_occlusion(img, kind, np.random.default_rng(9), landmarks5=lm)) == placed



def test_occlusion_names_moved_with_a_deprecation_warning() -> None:
    import massface.data.synthetic as synthetic
    from massface.data import occlusion

    for name in ("draw_occlusion", "OCCLUSION_KINDS"):
        with pytest.warns(DeprecationWarning, match="massface.data.occlusion"):
            assert getattr(synthetic, name) is getattr(occlusion, name)



def test_draw_occlusion_changes_pixels_and_rejects_unknown_kind():
    base = SynthFaces(1, 1, seed=0, difficulty=0.0).image(0, 0)
    for kind in OCCLUSION_KINDS:
        img = draw_occlusion(base.copy(), kind, np.random.default_rng(0))
        assert img.shape == base.shape and (img != base).any()
    with pytest.raises(ValueError, match="unknown kind"):
        draw_occlusion(base.copy(), "scarf", np.random.default_rng(0))
