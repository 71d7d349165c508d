"""TFace / face.evoLVe IR family: ir18 ... ir200, ir_se50 ... ir_se200 (bottleneck units for 152 / 200)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone
from massface.backbones.ir import IRBottleneck, IRBottleneckNet
from massface.backbones.iresnet import IResNet
from massface.backbones.pretrained import _detect

TFACE_NAMES = ["ir18", "ir34", "ir50", "ir100", "ir152", "ir200", "ir_se50", "ir_se100", "ir_se152", "ir_se200"]


@pytest.mark.parametrize("name", TFACE_NAMES)
def test_names_build_the_tface_layout(name: str) -> None:
    with torch.device("meta"):
        model = build_backbone(name)
    bottleneck = name.endswith(("152", "200"))
    assert type(model) is (IRBottleneckNet if bottleneck else IResNet) and model.embedding_size == 512
    units = list(model.features)[1:]
    assert isinstance(units[0].shortcut, nn.Sequential if bottleneck else nn.MaxPool2d)  # 64 -> 256 vs 64 -> 64
    kinds = [type(u.shortcut).__name__ for u in units]
    assert kinds.count("Sequential") == (4 if bottleneck else 3)  # conv1x1 + BN where the channels change
    assert kinds.count("Identity") == len(units) - 4  # every other unit: stride 1, same channels
    assert any(type(m).__name__ == "SqueezeExcite" for m in model.modules()) == name.startswith("ir_se")
    bn = model.head.bn
    assert isinstance(bn, nn.BatchNorm1d) and not bn.affine  # TFace: BatchNorm1d(512, affine=False)


def test_tface_ir200_is_not_insightface_r200() -> None:
    with torch.device("meta"):
        ours, theirs = build_backbone("ir200"), build_backbone("iresnet200")
    assert len(ours.features) - 1 == 66 and len(theirs.features) - 1 == 98


def test_aliases_follow_tface_spelling() -> None:
    with torch.device("meta"):
        assert repr(build_backbone("ir101")) == repr(build_backbone("ir100"))
        assert repr(build_backbone("IR_SE101")) == repr(build_backbone("ir_se100"))


def test_bottleneck_unit_layout_and_shapes() -> None:
    unit = IRBottleneck(256, 512, 2, se=True)
    kinds = [type(m).__name__ for m in unit.body]
    assert kinds == ["BatchNorm2d", "Conv2d", "BatchNorm2d", "PReLU", "Conv2d", "BatchNorm2d", "PReLU", "Conv2d",
                     "BatchNorm2d", "SqueezeExcite"]
    assert unit.body[1].out_channels == 128 and unit.body[7].stride == (2, 2)  # reduction 4, stride last
    assert unit.body(torch.randn(2, 256, 8, 8)).shape == (2, 512, 4, 4)
    assert isinstance(IRBottleneck(512, 512, 2, se=False).shortcut, nn.MaxPool2d)
    assert isinstance(IRBottleneck(512, 512, 1, se=False).shortcut, nn.Identity)


def test_small_bottleneck_net_forward_and_checkpointing() -> None:
    torch.manual_seed(0)
    model = IRBottleneckNet((1, 2, 1, 1), 16, se=True, input_size=16, widths=(64, 128, 128, 256))
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    model.train()
    plain = model(x)
    plain.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    torch.manual_seed(0)
    again = model(x)
    again.sum().backward()
    assert plain.shape == (3, 16) and plain.dtype == torch.float32
    assert torch.allclose(plain, again, atol=1e-6)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(grads, model.parameters()))
    with pytest.raises(ValueError, match="expects images of shape"):
        model(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("kw", [{"blocks": (1, 1, 1)}, {"blocks": (1, 0, 1, 1)}, {"widths": (64, 96, 128, 256)}])
def test_bad_arguments_are_value_errors(kw: dict) -> None:
    args = {"blocks": (1, 1, 1, 1), **kw}
    with pytest.raises(ValueError):
        IRBottleneckNet(**args, input_size=16)


@pytest.mark.parametrize("name", ["ir50", "ir152", "ir_se200"])
def test_massface_state_dicts_are_recognised(name: str) -> None:
    with torch.device("meta"):
        state = build_backbone(name, 64).state_dict()
    layout = _detect(state, "massface", "own.pt")
    assert layout.name == name
