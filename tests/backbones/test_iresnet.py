"""IResNet / IR-SE: deep variants, 112-pixel input, gradient checkpointing, SE blocks, size and frozen gamma."""

from __future__ import annotations

import pytest
import torch

from massface.backbones import IResNet, build_backbone, profile

DEEP = ["iresnet100", "iresnet200", "ir_se100"]



@pytest.mark.parametrize("name", DEEP)
def test_deep_nets_build_and_run_in_eval(name: str, _build, _images) -> None:
    model = _build(name, input_size=32).eval()
    with torch.no_grad():
        out = model(_images(1, 32))
    assert out.shape == (1, 512) and out.dtype == torch.float32 and torch.isfinite(out).all()



def test_iresnet18_runs_at_112(_build, _images) -> None:
    model = _build("iresnet18").eval()
    with torch.no_grad():
        out = model(_images(1, 112))
    assert out.shape == (1, 512) and torch.isfinite(out).all()



def test_gradient_checkpointing_gives_the_same_gradients(_images) -> None:
    x = _images(2, 32)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)  # a narrow IResNet: same mechanism as iresnet100/200, a fraction of the cost
        model = IResNet((2, 2, 2, 2), 64, input_size=32, widths=(8, 16, 32, 64), gradient_checkpointing=ckpt)
        assert model.gradient_checkpointing is ckpt
        calls = []
        model.features[1].register_forward_pre_hook(lambda *_: calls.append(1))
        model(x).square().sum().backward()
        assert len(calls) == (2 if ckpt else 1)  # checkpointed blocks run again in the backward pass
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1, rtol=1e-4, atol=1e-5)
    model.gradient_checkpointing = False
    assert not model.features.gradient_checkpointing
    with torch.device("meta"):
        assert build_backbone("iresnet200", gradient_checkpointing=True).gradient_checkpointing



def test_ir_se_uses_se_blocks_and_pool_shortcut() -> None:
    with torch.device("meta"):
        model = build_backbone("ir_se50")
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"SqueezeExcite", "MaxPool2d"} <= kinds
    assert not model.head.bn.affine



def test_iresnet_size_and_frozen_gamma() -> None:
    with torch.device("meta"):
        prof = profile(build_backbone("iresnet50"))
    assert prof["size_mb"] == pytest.approx(166, rel=0.02)  # insightface table: r50 166 MiB fp32
    assert prof["params"] - prof["trainable_params"] == 512  # BatchNorm1d gamma fixed at 1
