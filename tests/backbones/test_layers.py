"""The shared backbone contract (layers.EmbeddingNet) for every family: forward/backward, shapes, dtypes, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone

# Mobile nets are cheap at the real 112x112 resolution; residual nets are run at 32x32 (same body, the head
# flattens 512*2*2) to keep the suite within its time budget on a shared CPU.
SMALL = {
    "mobilefacenet": 112,
    "mobilefacenet_x2": 112,
    "mobilefacenet_massface": 112,
    "ghostnet": 112,
    "efficientnet_b0": 112,
    "efficientnet_b1": 112,
    "iresnet18": 32,
    "iresnet34": 32,
    "iresnet50": 32,
    "ir_se50": 32,
}



@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_backward_shape_dtype_determinism_roundtrip(name: str, _build, _images) -> None:
    size = SMALL[name]
    model = _build(name, input_size=size)
    dim = model.embedding_size
    x = _images(2, size)
    out = model(x)
    assert out.shape == (2, dim) and out.dtype == torch.float32
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()

    other = _build(name, seed=123, input_size=size).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), a)
    missing = other.load_state_dict(model.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    with torch.no_grad():
        assert torch.equal(other(x), a)



def test_dropout_option_acts_in_training_only(_build, _images) -> None:
    model = _build("mobilefacenet", dropout=0.5)
    assert model.head.dropout.p == 0.5
    x = _images(4, 112)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))



@pytest.mark.parametrize("name", ["mobilefacenet", "ghostnet", "efficientnet_b0", "iresnet18", "ir_se50"])
def test_fc_bn_option_is_shared_by_every_family(name: str) -> None:
    with torch.device("meta"):
        plain = build_backbone(name, fc_bn=False)
        with_bn = build_backbone(name, fc_bn=True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    assert isinstance(with_bn.head.bn, nn.BatchNorm1d)



def test_embedding_size_option(_build, _images) -> None:
    model = _build("mobilefacenet", embedding_size=128).eval()
    with torch.no_grad():
        assert model(_images(3, 112)).shape == (3, 128)



def test_embeddings_are_float32_under_autocast(_build, _images) -> None:
    model = _build("mobilefacenet").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_images(2, 112))
    assert out.dtype == torch.float32



@pytest.mark.parametrize("shape", [(2, 3, 96, 96), (2, 1, 112, 112), (3, 112, 112)])
def test_wrong_input_shape_is_named(shape: tuple[int, ...], _build) -> None:
    model = _build("mobilefacenet")
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, 112, 112\)"):
        model(torch.zeros(shape))


@pytest.mark.parametrize(("name", "groups"), [("mobilefacenet", 4), ("iresnet18", 5), ("ir_se50", 5), ("ir152", 5),
                                              ("ghostnet", 5), ("efficientnet_b0", 5)])
def test_stages_chain_to_the_body_one_resolution_each(name, groups):
    """stages(): the stem, then one group per resolution; chained, the units are the body's forward."""
    from massface.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone(name, 8, input_size=32).eval()
    stages = model.stages()
    assert len(stages) == groups
    x = torch.randn(2, 3, 32, 32)
    sides = []
    y = x
    with torch.no_grad():
        for group in stages:
            for unit in group:
                y = unit(y)
            sides.append(y.shape[-1])
        assert torch.equal(y, model.features(x))
    assert sides == sorted(set(sides), reverse=True), "each group ends at a smaller resolution"
    assert {id(m) for g in stages for m in g} <= {id(m) for m in model.features.modules()}
