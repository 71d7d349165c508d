"""backbones.profiling: the MAC counter on a hand-computed model, bad input sizes."""

from __future__ import annotations

import pytest
from torch import nn

from massface.backbones import count_macs, profile


def test_mac_counter_on_hand_computed_model() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 8*4*4 outputs * 3*9     = 3456
        nn.Conv2d(8, 8, 3, padding=1, groups=4),  # 8*4*4 outputs * 2*9     = 2304
        nn.BatchNorm2d(8),
        nn.Flatten(),
        nn.Linear(128, 10),  # 1280
    )
    assert count_macs(model, input_size=8) == 3456 + 2304 + 1280
    prof = profile(model, input_size=8)
    n_params = sum(p.numel() for p in model.parameters())
    assert prof["params"] == n_params
    assert prof["size_mb"] == pytest.approx((n_params + 16) * 4 / 2**20)  # + BN running mean / var
    assert model.training  # training flag restored



def test_profile_rejects_bad_input_size() -> None:
    with pytest.raises(ValueError, match="input_size"):
        profile(nn.Linear(2, 2), input_size=0)
