"""Backbone zoo: registry errors, parameter / MAC counts against the published figures, MAC counter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone, count_macs, get_spec, list_backbones, profile

EXPECTED_NAMES = {
    "mobilefacenet", "mobilefacenet_x2", "mobilefacenet_massface", "iresnet18", "iresnet34", "iresnet50",
    "iresnet100", "iresnet200", "ir_se50", "ir_se100", "ghostnet", "efficientnet_b0", "efficientnet_b1",
}
PUBLISHED = [n for n in sorted(EXPECTED_NAMES) if get_spec(n).published_params is not None]


def test_list_backbones_is_the_zoo() -> None:
    assert set(list_backbones()) == EXPECTED_NAMES
    assert list_backbones() == sorted(list_backbones())


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'") as info:
        build_backbone("resnet9000")
    for name in EXPECTED_NAMES:
        assert name in str(info.value)


def test_unknown_option_lists_allowed_options() -> None:
    with pytest.raises(ValueError, match="no option.*'dropot'.*allowed: .*dropout"):
        build_backbone("mobilefacenet", dropot=0.1)


@pytest.mark.parametrize("kw", [{"dropout": 1.0}, {"input_size": 100}, {"embedding_size": 0}])
def test_bad_option_values_raise(kw: dict) -> None:
    with torch.device("meta"), pytest.raises(ValueError):
        build_backbone("mobilefacenet", **kw)


def test_aliases_build_the_same_network() -> None:
    with torch.device("meta"):
        a, b = build_backbone("mbf"), build_backbone("mobilefacenet_x2")
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


@pytest.mark.parametrize("name", PUBLISHED)
def test_params_and_macs_match_published(name: str) -> None:
    spec = get_spec(name)
    with torch.device("meta"):  # no weights allocated: iresnet200 profiles in well under a second
        model = build_backbone(name)
    prof = profile(model)
    assert prof["params"] / 1e6 == pytest.approx(spec.published_params, rel=0.02)
    assert prof["macs"] / 1e9 == pytest.approx(spec.published_gmacs, rel=0.02)
    assert prof["input_size"] == 112


def test_mobilefacenet_128d_matches_the_paper() -> None:
    # MobileFaceNets paper: about 0.99 M params and 221 M MAdds with a 128-d embedding.
    with torch.device("meta"):
        prof = profile(build_backbone("mobilefacenet", embedding_size=128))
    assert prof["params"] / 1e6 == pytest.approx(1.0, rel=0.02)
    assert prof["macs"] / 1e6 == pytest.approx(221, rel=0.02)


def test_iresnet_size_and_frozen_gamma() -> None:
    with torch.device("meta"):
        prof = profile(build_backbone("iresnet50"))
    assert prof["size_mb"] == pytest.approx(166, rel=0.02)  # insightface table: r50 166 MiB fp32
    assert prof["params"] - prof["trainable_params"] == 512  # BatchNorm1d gamma fixed at 1


def test_massface_variant_has_1024d_bottleneck_with_bn() -> None:
    with torch.device("meta"):
        model = build_backbone("mobilefacenet_massface")
        plain = build_backbone("mobilefacenet_massface", fc_bn=False)
    assert model.embedding_size == 1024
    assert isinstance(model.head.bn, nn.BatchNorm1d) and model.head.bn.num_features == 1024
    assert isinstance(plain.head.bn, nn.Identity)
    assert profile(model)["params"] - profile(plain)["params"] == 2 * 1024


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
