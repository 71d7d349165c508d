"""data._guard: image sizes are (height, width)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("size, hw", [(112, (112, 112)), ((112, 96), (112, 96)), (np.int64(64), (64, 64))])
def test_image_hw_is_height_width(size, hw):
    from massface.data._guard import image_hw

    assert image_hw(size) == hw



@pytest.mark.parametrize("bad", [0, -3, True, (112,), (112, 0), (1.5, 2), "112", None])
def test_image_hw_refuses(bad):
    from massface.data._guard import image_hw

    with pytest.raises(ValueError, match="height, width"):
        image_hw(bad)
