"""The backbone registry: names, aliases, options, and parameter / MAC counts against the published figures."""

from __future__ import annotations

import pytest
import torch

from massface.backbones import build_backbone, get_spec, list_backbones, profile

EXPECTED_NAMES = {
    "mobilefacenet", "mobilefacenet_x2", "mobilefacenet_massface", "iresnet18", "iresnet34", "iresnet50",
    "iresnet100", "iresnet200", "ir_se50", "ir_se100", "ir18", "ir34", "ir50", "ir100", "ir152", "ir200",
    "ir_se152", "ir_se200", "ghostnet", "efficientnet_b0", "efficientnet_b1",
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
