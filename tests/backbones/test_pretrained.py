"""load_pretrained / export_pretrained: arcface_torch, TFace, AdaFace, MagFace and massface checkpoints in and out.

The arcface_torch layouts below are written by hand from the facts of its format (insightface
``recognition/arcface_torch/backbones/iresnet.py`` and ``mobilefacenet.py``: module names, the order
``torch.nn.Module.state_dict`` lists them in, and their shapes), not from the loader's key map. Their weights are
filled deterministically from each key's name, so ``data/arcface_torch_embeddings.pt`` could be recorded by
running arcface_torch's own networks (outside massface) on those weights: the test compares our forward with
theirs without shipping a 90 MB checkpoint.
"""

from __future__ import annotations

import functools
import math
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from massface.backbones import build_backbone, export_pretrained, load_pretrained
from massface.backbones.ghostnet import TFACE_GHOSTNET
from massface.backbones.ir import IRBottleneckNet
from massface.backbones.iresnet import IResNet
from massface.backbones.pretrained import _detect, load_class_centres
from massface.serialization import CheckpointError, load_checkpoint

DATA = Path(__file__).parent / "data"
Layout = dict[str, tuple[int, ...]]
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}


def _bn(layout: Layout, prefix: str, channels: int) -> None:
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        layout[f"{prefix}.{leaf}"] = (channels,)
    layout[f"{prefix}.num_batches_tracked"] = ()


def arcface_iresnet_layout(blocks: tuple[int, ...], embedding_size: int = 512, side: int = 7) -> Layout:
    """arcface_torch ``IResNet(IBasicBlock, blocks, num_features=D)``'s state dict: names and shapes, in order."""
    layout: Layout = {"conv1.weight": (64, 3, 3, 3)}
    _bn(layout, "bn1", 64)
    layout["prelu.weight"] = (64,)
    inplanes = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(n):
            p, cin = f"layer{stage}.{i}", inplanes if i == 0 else planes
            _bn(layout, f"{p}.bn1", cin)
            layout[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            _bn(layout, f"{p}.bn2", planes)
            layout[f"{p}.prelu.weight"] = (planes,)
            layout[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _bn(layout, f"{p}.bn3", planes)
            if i == 0:  # every stage starts with stride 2: conv1x1 + BN downsample
                layout[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
                _bn(layout, f"{p}.downsample.1", planes)
        inplanes = planes
    _bn(layout, "bn2", 512)
    layout["fc.weight"] = (embedding_size, 512 * side * side)
    layout["fc.bias"] = (embedding_size,)
    _bn(layout, "features", embedding_size)
    return layout


def arcface_mbf_layout(embedding_size: int = 512, residuals: tuple[int, int, int] = (4, 6, 2)) -> Layout:
    """arcface_torch ``get_mbf(fp16, D)`` (scale 2, blocks (1, *residuals))'s state dict, in order."""
    layout: Layout = {}
    c = 128

    def block(p: str, cin: int, cout: int, k: int, groups: int = 1, prelu: bool = True) -> None:
        layout[f"{p}.layers.0.weight"] = (cout, cin // groups, k, k)
        _bn(layout, f"{p}.layers.1", cout)
        if prelu:
            layout[f"{p}.layers.2.weight"] = (cout,)

    def depthwise(p: str, cin: int, cout: int, groups: int) -> None:
        block(f"{p}.layers.0", cin, groups, 1)
        block(f"{p}.layers.1", groups, groups, 3, groups)
        block(f"{p}.layers.2", groups, cout, 1, prelu=False)

    block("layers.0", 3, c, 3)
    block("layers.1", c, c, 3, groups=64)
    for down, res, cin, cout, groups, res_groups, n in ((2, 3, c, c, 128, 128, residuals[0]),
                                                        (4, 5, c, 2 * c, 256, 256, residuals[1]),
                                                        (6, 7, 2 * c, 2 * c, 512, 256, residuals[2])):
        depthwise(f"layers.{down}", cin, cout, groups)
        for r in range(n):
            depthwise(f"layers.{res}.layers.{r}", cout, cout, res_groups)
    block("conv_sep", 2 * c, 512, 1)
    block("features.layers.0", 512, 512, 7, groups=512, prelu=False)
    layout["features.layers.2.weight"] = (embedding_size, 512)
    _bn(layout, "features.layers.3", embedding_size)
    return layout


def _tface_layout(blocks: tuple[int, ...], widths: tuple[int, ...], unit: Callable[[Layout, str, int, int], None],
                  se: bool, embedding_size: int, side: int) -> Layout:
    """The frame TFace's two unit kinds share, in ``__init__`` order: ``input_layer`` (conv3x3, BN, PReLU), then
    ``output_layer`` (BN2d, Dropout, Flatten, Linear, BatchNorm1d(affine=False)), then ``body``; a unit assigns
    ``shortcut_layer`` (MaxPool2d(1, stride) -- no tensors -- when the channel count is unchanged, else conv1x1 +
    BN) before ``res_layer`` (``unit`` adds its layers; IR-SE ends it with ``se_block``: bias-free ``fc1`` / ``fc2``
    1x1 convs, reduction 16)."""
    layout: Layout = {"input_layer.0.weight": (64, 3, 3, 3)}
    _bn(layout, "input_layer.1", 64)
    layout["input_layer.2.weight"] = (64,)
    _bn(layout, "output_layer.0", widths[-1])
    layout["output_layer.3.weight"] = (embedding_size, widths[-1] * side * side)
    layout["output_layer.3.bias"] = (embedding_size,)
    layout["output_layer.4.running_mean"] = layout["output_layer.4.running_var"] = (embedding_size,)
    layout["output_layer.4.num_batches_tracked"] = ()
    j, cin = 0, 64
    for depth, n in zip(widths, blocks):
        for _ in range(n):
            p = f"body.{j}"
            if cin != depth:
                layout[f"{p}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
                _bn(layout, f"{p}.shortcut_layer.1", depth)
            unit(layout, f"{p}.res_layer", cin, depth)
            if se:
                layout[f"{p}.res_layer.se_block.fc1.weight"] = (depth // 16, depth, 1, 1)
                layout[f"{p}.res_layer.se_block.fc2.weight"] = (depth, depth // 16, 1, 1)
            j, cin = j + 1, depth
    return layout


def _basic_unit(layout: Layout, p: str, cin: int, depth: int) -> None:
    """``bottleneck_IR``'s ``res_layer``: BN, conv3x3, BN, PReLU, conv3x3(stride), BN."""
    _bn(layout, f"{p}.0", cin)
    layout[f"{p}.1.weight"] = (depth, cin, 3, 3)
    _bn(layout, f"{p}.2", depth)
    layout[f"{p}.3.weight"] = (depth,)
    layout[f"{p}.4.weight"] = (depth, depth, 3, 3)
    _bn(layout, f"{p}.5", depth)


def _bottleneck_unit(layout: Layout, p: str, cin: int, depth: int) -> None:
    """``BottleneckIR``'s ``res_layer``: BN, conv1x1 (c/4), BN, PReLU, conv3x3, BN, PReLU, conv1x1 (c, stride), BN."""
    r = depth // 4
    _bn(layout, f"{p}.0", cin)
    layout[f"{p}.1.weight"] = (r, cin, 1, 1)
    _bn(layout, f"{p}.2", r)
    layout[f"{p}.3.weight"] = (r,)
    layout[f"{p}.4.weight"] = (r, r, 3, 3)
    _bn(layout, f"{p}.5", r)
    layout[f"{p}.6.weight"] = (r,)
    layout[f"{p}.7.weight"] = (depth, r, 1, 1)
    _bn(layout, f"{p}.8", depth)


def tface_ir_layout(blocks: tuple[int, ...], se: bool = False, embedding_size: int = 512, side: int = 7) -> Layout:
    """TFace torchkit ``Backbone(input_size, num_layers, mode='ir' | 'ir_se')``'s state dict, in order
    (``recognition/torchkit/backbone/model_irse.py``): basic units, stages of 64 / 128 / 256 / 512 channels."""
    return _tface_layout(blocks, (64, 128, 256, 512), _basic_unit, se, embedding_size, side)


def tface_bottleneck_layout(blocks: tuple[int, ...], se: bool = False, embedding_size: int = 512,
                            side: int = 7) -> Layout:
    """TFace ``Backbone(num_layers=152 | 200)``: ``BottleneckIR(SE)`` units, stages of 256 / 512 / 1024 / 2048
    channels, the first unit of every stage with a conv1x1 + BN shortcut."""
    return _tface_layout(blocks, (256, 512, 1024, 2048), _bottleneck_unit, se, embedding_size, side)


def fill(layout: Layout, seed: int = 0) -> dict[str, Tensor]:
    """Weights from each key's name alone (order-free): BN statistics near 0 / 1, fan-in scaled convs."""
    state: dict[str, Tensor] = {}
    for key, shape in layout.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()) ^ seed)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:  # BN gamma or PReLU slope
            state[key] = torch.rand(shape, generator=g) * 0.75 + 0.25
        else:
            fan_in = 1
            for n in shape[1:]:
                fan_in *= n
            state[key] = torch.randn(shape, generator=g) / fan_in ** 0.5
    return state


def face_batch(n: int = 2, size: int = 112, seed: int = 5) -> Tensor:
    """RGB uint8-valued pixels normalised as arcface_torch and massface do: (x / 255 - 0.5) / 0.5."""
    pixels = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed)).float()
    return (pixels / 255 - 0.5) / 0.5


def _meta(layout: Layout) -> dict[str, Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in layout.items()}


def _save(state: dict[str, Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def _calibrated(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, so that a wrong mapping cannot hide behind 0 / 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.affine:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


# ------------------------------------------------------------------------------ equality with arcface_torch
@pytest.mark.parametrize("network", ["r18", "mbf"])
def test_forward_equals_recorded_arcface_torch_embeddings(network: str, tmp_path: Path) -> None:
    layout = arcface_iresnet_layout(DEPTHS[18]) if network == "r18" else arcface_mbf_layout()
    model = load_pretrained(_save(fill(layout), tmp_path / "model.pt"))
    recorded = load_checkpoint(DATA / "arcface_torch_embeddings.pt")
    with torch.no_grad():
        ours = model(face_batch())  # the recording's input: RGB (x / 255 - 0.5) / 0.5, 112x112
    theirs = recorded[network]
    assert not model.training
    assert ours.shape == theirs.shape == (2, 512)
    assert ((ours - theirs).abs().max() / theirs.abs().max()).item() <= 1e-4


# ------------------------------------------------------------------------------ detection
@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_auto_detects_every_iresnet_depth(depth: int) -> None:
    layout = _detect(_meta(arcface_iresnet_layout(DEPTHS[depth], embedding_size=128)), "auto", "r.pt")
    assert (layout.family, layout.name) == ("arcface_torch iresnet", f"iresnet{depth}")
    with torch.device("meta"):
        model = layout.build(None)
    assert isinstance(model, IResNet) and model.embedding_size == 128 and model.input_size == 112
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in layout.state.items()}


def test_auto_detects_mbf_and_other_residual_counts() -> None:
    assert _detect(_meta(arcface_mbf_layout()), "auto", "m.pt").name == "mobilefacenet_x2"
    other = _detect(_meta(arcface_mbf_layout(64, residuals=(2, 3, 1))), "auto", "m.pt")
    with torch.device("meta"):
        model = other.build(None)
    assert model.embedding_size == 64
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in other.state.items()}


def test_ddp_prefix_and_input_size_from_fc(tmp_path: Path) -> None:
    state = fill(arcface_iresnet_layout(DEPTHS[18], embedding_size=32, side=1))  # 16x16 input
    plain = load_pretrained(_save(state, tmp_path / "plain.pt"))
    ddp = load_pretrained(_save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt"),
                          source="arcface_torch", embedding_size=32)
    assert plain.input_size == ddp.input_size == 16 and plain.embedding_size == 32
    x = face_batch(size=16)
    with torch.no_grad():
        assert torch.equal(plain(x), ddp(x))


def test_named_backbone_is_built_and_must_fit(tmp_path: Path) -> None:
    path = _save(fill(arcface_mbf_layout(64)), tmp_path / "mbf.pt")
    assert load_pretrained(path, name="mbf").embedding_size == 64
    with pytest.raises(CheckpointError, match="missing key|unexpected key|shape") as err:
        load_pretrained(path, name="mobilefacenet")  # 64 channels, not mbf's 128
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------------ refusals
def test_wrong_embedding_size_names_the_tensor(tmp_path: Path) -> None:
    path = _save(fill(arcface_mbf_layout(512)), tmp_path / "mbf.pt")
    with pytest.raises(CheckpointError, match=r"features\.layers\.2\.weight.*512.*256") as err:
        load_pretrained(path, embedding_size=256)
    assert err.value.path == str(path)


def test_known_family_with_another_size_names_the_tensor(tmp_path: Path) -> None:
    state = fill(arcface_mbf_layout())
    state["conv_sep.layers.0.weight"] = torch.zeros(256, 256, 1, 1)  # 256 channels where mbf has 512
    path = _save(state, tmp_path / "mbf.pt")
    with pytest.raises(CheckpointError, match=r"conv_sep\.layers\.0\.weight.*\(256, 256, 1, 1\)") as err:
        load_pretrained(path)
    assert err.value.path == str(path)


def test_stray_key_in_a_known_family_is_named(tmp_path: Path) -> None:
    state = fill(arcface_mbf_layout())
    state["features.layers.9.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"features\.layers\.9\.weight"):
        load_pretrained(_save(state, tmp_path / "mbf.pt"))


def test_unknown_layout_names_the_families_tried_and_the_keys(tmp_path: Path) -> None:
    path = _save({"encoder.stem.weight": torch.zeros(4, 3), "encoder.out.bias": torch.zeros(4)},
                 tmp_path / "vit.pt")
    with pytest.raises(CheckpointError) as err:
        load_pretrained(path)
    text = str(err.value)
    assert str(path) in text and "encoder.stem.weight" in text
    assert "arcface_torch iresnet" in text and "arcface_torch mbf" in text and "massface" in text
    with pytest.raises(CheckpointError, match="arcface_torch mbf") as forced:
        load_pretrained(_save(build_backbone("mobilefacenet", 16).state_dict(), tmp_path / "own.pt"),
                        source="arcface_torch")
    assert "massface" not in forced.value.reason.split(";")[0]


def test_unknown_source_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        load_pretrained(tmp_path / "x.pt", source="caffe")  # type: ignore[arg-type]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('executed')",)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    state = fill(arcface_mbf_layout(16))
    state["payload"] = _Exploit(marker)  # type: ignore[assignment]
    path = tmp_path / "evil.pt"
    torch.save(state, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="never executes code") as err:
        load_pretrained(path)
    assert err.value.path == str(path)
    assert not marker.exists(), "the checkpoint's code ran"


# ------------------------------------------------------------------------------ massface checkpoints
@pytest.mark.parametrize("name", ["mobilefacenet", "ir_se50", "ghostnet"])
def test_massface_checkpoints_are_rebuilt(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _calibrated(build_backbone(name, 24, input_size=32))
    trainer = {"step": 7, "model": model.state_dict(), "head": {"weight": torch.zeros(24, 3)}}
    path = _save(trainer, tmp_path / "latest.pt")
    loaded = load_pretrained(path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    assert load_pretrained(path, source="massface").embedding_size == 24
    x = face_batch(size=32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# ------------------------------------------------------------------------------ export
@pytest.mark.parametrize("name", ["iresnet18", "mobilefacenet_x2"])
def test_export_writes_arcface_torch_layout_and_round_trips(name: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    size = 16 if name == "iresnet18" else 112
    model = _calibrated(build_backbone(name, 32, input_size=size))
    path = export_pretrained(model, tmp_path / "out" / "model.pt", "arcface_torch")
    written = load_checkpoint(path)
    expected = (arcface_iresnet_layout(DEPTHS[18], 32, side=1) if name == "iresnet18"
                else arcface_mbf_layout(32))
    assert [(k, tuple(v.shape)) for k, v in written.items()] == list(expected.items())  # names, order, shapes
    back = load_pretrained(path)
    assert repr(back) == repr(model)
    assert list(back.state_dict()) == list(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    x = face_batch(size=size)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("make", [
    lambda: build_backbone("ghostnet", 8, input_size=32),
    lambda: build_backbone("ir_se50", 8, input_size=16),
    lambda: build_backbone("mobilefacenet_massface", 8, input_size=32),
    lambda: IResNet((1, 1, 1, 1), 8, shortcut="pool", input_size=16),
    lambda: IResNet((1, 1, 1, 1), 8, head_bn="no_affine", input_size=16),
    lambda: IResNet((1, 1, 1, 1), 8, fc_bn=False, input_size=16),
], ids=["ghostnet", "ir_se50", "mobilefacenet_massface", "pool_shortcut", "no_affine_bn", "no_bn"])
def test_export_refuses_models_without_an_arcface_torch_counterpart(make, tmp_path: Path) -> None:
    model = make()
    with pytest.raises(ValueError, match=rf"{type(model).__name__} has no arcface_torch counterpart"):
        export_pretrained(model, tmp_path / "model.pt", "arcface_torch")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="target"):
        export_pretrained(model, tmp_path / "model.pt", "caffe")


# ------------------------------------------------------------------------------ TFace torchkit
TFACE = [(18, False, "ir18"), (34, False, "ir34"), (50, False, "ir50"), (100, False, "ir100"),
         (152, False, "ir152"), (200, False, "ir200"), (50, True, "ir_se50"), (100, True, "ir_se100"),
         (152, True, "ir_se152"), (200, True, "ir_se200")]
TFACE_BOTTLENECK = {152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}  # TFace get_blocks(152 | 200)


def tface_layout(depth: int, se: bool = False, embedding_size: int = 512, side: int = 7) -> Layout:
    if depth in TFACE_BOTTLENECK:
        return tface_bottleneck_layout(TFACE_BOTTLENECK[depth], se, embedding_size, side)
    return tface_ir_layout(DEPTHS[depth], se, embedding_size, side)


@pytest.mark.parametrize(("depth", "se", "name"), TFACE, ids=[t[2] for t in TFACE])
def test_auto_detects_every_tface_ir_and_ir_se(depth: int, se: bool, name: str) -> None:
    layout = _detect(_meta(tface_layout(depth, se, embedding_size=128)), "auto", "b.pth")
    assert (layout.family, layout.name) == ("tface ir", name)
    with torch.device("meta"):
        model, zoo = layout.build(None), layout.build(name)
    family = IRBottleneckNet if depth in TFACE_BOTTLENECK else IResNet
    assert type(model) is family and model.embedding_size == 128 and model.input_size == 112
    assert repr(model) == repr(zoo)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in layout.state.items()}


@pytest.mark.parametrize(("name", "millions"), [("ir50", 43.6), ("ir152", 109.6), ("ir_se200", 121.2)])
def test_tface_ir_sizes(name: str, millions: float) -> None:
    """IR_50: the published 43.6 M; IR_152 / IR_SE_200: the counts of TFace's own networks."""
    with torch.device("meta"):
        model = build_backbone(name)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions


def test_tface_checkpoint_loads_with_and_without_ddp_prefix(tmp_path: Path) -> None:
    state = fill(tface_ir_layout((1, 1, 1, 1), se=True, embedding_size=32, side=1))  # 16x16 input
    plain = load_pretrained(_save(state, tmp_path / "Backbone_IR_SE_checkpoint.pth"))
    ddp = load_pretrained(_save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth"),
                          source="tface", embedding_size=32)
    assert plain.input_size == ddp.input_size == 16 and plain.embedding_size == 32 and not plain.training
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in _detect(state, "tface", "p").state.items())
    x = face_batch(size=16)
    with torch.no_grad():
        assert torch.equal(plain(x), ddp(x))


def test_tface_wrong_sizes_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    state = fill(tface_ir_layout((1, 1, 1, 1), embedding_size=32, side=1))
    path = _save(state, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"output_layer\.3\.weight.*32.*64") as err:
        load_pretrained(path, embedding_size=64)
    assert err.value.path == str(path)
    state["body.1.res_layer.4.weight"] = torch.zeros(128, 128, 1, 1)  # 1x1 where TFace has 3x3
    with pytest.raises(CheckpointError, match=r"body\.1\.res_layer\.4\.weight.*\(128, 128, 1, 1\)"):
        load_pretrained(_save(state, tmp_path / "bad.pth"))
    with pytest.raises(CheckpointError, match=r"shape"):
        load_pretrained(path, name="ir18")  # depth 18 is not these four units


def test_tface_layouts_massface_cannot_hold_are_refused(tmp_path: Path) -> None:
    state = _meta(tface_ir_layout((1, 1, 1, 1)))
    evolve = {k.replace("res_layer.2.running_mean", "res_layer.2.x"): v for k, v in state.items()}
    with pytest.raises(CheckpointError, match="face.evoLVe"):
        _detect(evolve, "auto", "evolve.pth")
    three_stages = {k: v for k, v in state.items() if not k.startswith("body.3.shortcut_layer.")}
    with pytest.raises(CheckpointError, match="3 stages"):
        _detect(three_stages, "tface", "b.pth")


@pytest.mark.parametrize("name", ["ir18", "ir_se50", "small_bottleneck_se"])
def test_export_writes_tface_layout_and_round_trips(name: str, tmp_path: Path) -> None:
    torch.manual_seed(2)
    if name == "small_bottleneck_se":
        model = _calibrated(IRBottleneckNet((1, 1, 1, 1), 32, se=True, input_size=16))
        expected = tface_bottleneck_layout((1, 1, 1, 1), True, 32, side=1)
    else:
        model = _calibrated(build_backbone(name, 32, input_size=16))
        depth = int(name.removeprefix("ir_se").removeprefix("ir"))
        expected = tface_ir_layout(DEPTHS[depth], name.startswith("ir_se"), 32, side=1)
    path = export_pretrained(model, tmp_path / "Backbone_checkpoint.pth", "tface")
    written = load_checkpoint(path)
    assert [(k, tuple(v.shape)) for k, v in written.items()] == list(expected.items())  # names, order, shapes
    back = load_pretrained(path)
    assert repr(back) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    x = face_batch(size=16)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


@pytest.mark.parametrize("make", [
    lambda: build_backbone("iresnet18", 8, input_size=16),
    lambda: build_backbone("mobilefacenet", 8, input_size=32),
    lambda: IResNet((1, 1, 1, 1), 8, shortcut="pool", head_bn="fixed_gamma", input_size=16),
], ids=["iresnet18", "mobilefacenet", "fixed_gamma_bn"])
def test_export_refuses_models_without_a_tface_counterpart(make, tmp_path: Path) -> None:
    model = make()
    with pytest.raises(ValueError, match=rf"{type(model).__name__} has no tface counterpart"):
        export_pretrained(model, tmp_path / "model.pth", "tface")
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------ TFace torchkit mobile networks
# Written from recognition/torchkit/backbone/model_mobilefacenet.py, model_efficientnet.py, model_ghostnet.py
# and common.py (TFace 171ec14): module names in __init__ order, shapes, and their GDC output layer (conv_6_dw
# k x k depthwise LinearBlock, bias-free Linear, BatchNorm1d(affine=False)). TFace builds them at 112x112 (k = 7)
# only; the small sides below are the same layouts with a smaller GDC kernel, to keep forwards fast.
def _tf_gdc(layout: Layout, head: str, channels: int, embedding_size: int, side: int) -> None:
    layout[f"{head}.conv_6_dw.conv.weight"] = (channels, 1, side, side)
    _bn(layout, f"{head}.conv_6_dw.bn", channels)
    layout[f"{head}.linear.weight"] = (embedding_size, channels)
    layout[f"{head}.bn.running_mean"] = layout[f"{head}.bn.running_var"] = (embedding_size,)
    layout[f"{head}.bn.num_batches_tracked"] = ()


def _tf_conv(layout: Layout, p: str, cin: int, cout: int, k: int, groups: int = 1, act: str | None = "prelu",
             bn: str = "bn") -> None:
    """A conv (no bias) + BatchNorm2d [+ PReLU named ``act``]: Conv_block / LinearBlock / ConvBlock / ConvBnAct."""
    layout[f"{p}.conv.weight"] = (cout, cin // groups, k, k)
    _bn(layout, f"{p}.{bn}", cout)
    if act:
        layout[f"{p}.{act}.weight"] = (cout,)


def tface_mobilefacenet_layout(embedding_size: int = 512, side: int = 7) -> Layout:
    """TFace ``MobileFaceNet([112, 112], D)``: Conv_block / Depth_Wise / Residual, widths 64 / 128."""
    layout: Layout = {}
    _tf_conv(layout, "conv1", 3, 64, 3)
    _tf_conv(layout, "conv2_dw", 64, 64, 3, groups=64)

    def depth_wise(p: str, cin: int, cout: int, groups: int) -> None:
        _tf_conv(layout, f"{p}.conv", cin, groups, 1)
        _tf_conv(layout, f"{p}.conv_dw", groups, groups, 3, groups=groups)
        _tf_conv(layout, f"{p}.project", groups, cout, 1, act=None)

    for down, cin, cout, groups, res, n, res_groups in (("conv_23", 64, 64, 128, "conv_3", 4, 128),
                                                        ("conv_34", 64, 128, 256, "conv_4", 6, 256),
                                                        ("conv_45", 128, 128, 512, "conv_5", 2, 256)):
        depth_wise(down, cin, cout, groups)
        for r in range(n):
            depth_wise(f"{res}.model.{r}", cout, cout, res_groups)
    _tf_conv(layout, "conv_6_sep", 128, 512, 1)
    _tf_gdc(layout, "output_layer", 512, embedding_size, side)
    return layout


TF_EFFICIENTNET_UNITS = {"b0": (1, 2, 2, 3, 3, 4, 1), "b1": (2, 3, 3, 4, 4, 5, 2)}  # ceil(layers * 1.0 | 1.1)


def tface_efficientnet_layout(version: str, embedding_size: int = 512, side: int = 7) -> Layout:
    """TFace ``efficientnet(version='b0' | 'b1')``: layers of 16 / 24 / 40 / 80 / 112 / 192 / 320 channels (kernel 3
    3 5 3 5 5 3, expansion 1 then 6), merged into stage1 ... stage5 where ``downsample`` is 0 (112 into stage4,
    320 into stage5); stage 1's units are EffiDwsConvUnit (dw_conv, se, pw_conv), the others EffiInvResUnit
    (conv1, conv2, se with reduction 6 * 4, conv3); ConvBlock activations are PReLUs named ``act``."""
    layout: Layout = {}
    _tf_conv(layout, "features.init_block.conv", 3, 32, 3, act="act")
    rows = zip((16, 24, 40, 80, 112, 192, 320), (3, 3, 5, 3, 5, 5, 3), TF_EFFICIENTNET_UNITS[version], (1, 1, 1, 1, 0, 1, 0))
    stage, unit, cin = 0, 0, 32
    for cout, k, n, downsample in rows:
        if downsample:
            stage, unit = stage + 1, 0
        for _ in range(n):
            unit += 1
            p = f"features.stage{stage}.unit{unit}"
            if stage == 1:
                _tf_conv(layout, f"{p}.dw_conv", cin, cin, 3, groups=cin, act="act")
                layout[f"{p}.se.fc1.weight"] = (cin // 4, cin, 1, 1)
                layout[f"{p}.se.fc2.weight"] = (cin, cin // 4, 1, 1)
                _tf_conv(layout, f"{p}.pw_conv", cin, cout, 1, act=None)
            else:
                mid = 6 * cin
                _tf_conv(layout, f"{p}.conv1", cin, mid, 1, act="act")
                _tf_conv(layout, f"{p}.conv2", mid, mid, k, groups=mid, act="act")
                layout[f"{p}.se.fc1.weight"] = (mid // 24, mid, 1, 1)
                layout[f"{p}.se.fc2.weight"] = (mid, mid // 24, 1, 1)
                _tf_conv(layout, f"{p}.conv3", mid, cout, 1, act=None)
            cin = cout
    layout["features.final_block.conv.weight"] = (512, 320, 1, 1)  # conv1x1_block: a ConvBlock itself
    _bn(layout, "features.final_block.bn", 512)
    layout["features.final_block.act.weight"] = (512,)
    _tf_gdc(layout, "output", 512, embedding_size, side)
    return layout


TF_GHOSTNET_CFGS = [  # GhostNet.cfgs: (kernel, expansion, channels, SE ratio, stride), grouped as blocks.i
    [(3, 16, 16, 0, 1)], [(3, 48, 24, 0, 2)], [(3, 72, 24, 0, 1)], [(5, 72, 40, 0.25, 2)], [(5, 120, 40, 0.25, 1)],
    [(3, 240, 80, 0, 2)],
    [(3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)],
    [(5, 672, 160, 0.25, 2)],
    [(5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 512, 160, 0.25, 1)]]


def _tf_divisible(v: float, divisor: int = 4) -> int:
    """TFace's ``_make_divisible``."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def tface_ghostnet_layout(embedding_size: int = 512, side: int = 7, width: float = 1.3) -> Layout:
    """TFace ``GhostNet([112, 112], D, width=1.3)``: stem conv/bn1/act1 (PReLU), GhostBottlenecks (ghost1 with
    PReLUs, [conv_dw / bn_dw], [se: biased conv_reduce / conv_expand], ghost2, [4-module shortcut]), the
    ConvBnAct ``blocks.9.0`` to make_divisible(512 * width) = 664 channels, GDC(664)."""
    stem = _tf_divisible(16 * width)
    layout: Layout = {"conv_stem.weight": (stem, 3, 3, 3)}
    _bn(layout, "bn1", stem)
    layout["act1.weight"] = (stem,)

    def ghost(p: str, cin: int, cout: int, relu: bool) -> None:
        init = math.ceil(cout / 2)
        layout[f"{p}.primary_conv.0.weight"] = (init, cin, 1, 1)
        _bn(layout, f"{p}.primary_conv.1", init)
        if relu:
            layout[f"{p}.primary_conv.2.weight"] = (init,)
        layout[f"{p}.cheap_operation.0.weight"] = (init, 1, 3, 3)
        _bn(layout, f"{p}.cheap_operation.1", init)
        if relu:
            layout[f"{p}.cheap_operation.2.weight"] = (init,)

    cin = stem
    for g, cfg in enumerate(TF_GHOSTNET_CFGS):
        for j, (k, exp, c, se, s) in enumerate(cfg):
            p, cout, mid = f"blocks.{g}.{j}", _tf_divisible(c * width), _tf_divisible(exp * width)
            ghost(f"{p}.ghost1", cin, mid, True)
            if s > 1:
                layout[f"{p}.conv_dw.weight"] = (mid, 1, k, k)
                _bn(layout, f"{p}.bn_dw", mid)
            if se:
                r = _tf_divisible(mid * se)
                layout.update({f"{p}.se.conv_reduce.weight": (r, mid, 1, 1), f"{p}.se.conv_reduce.bias": (r,),
                               f"{p}.se.conv_expand.weight": (mid, r, 1, 1), f"{p}.se.conv_expand.bias": (mid,)})
            ghost(f"{p}.ghost2", mid, cout, False)
            if cin != cout or s != 1:
                layout[f"{p}.shortcut.0.weight"] = (cin, 1, k, k)
                _bn(layout, f"{p}.shortcut.1", cin)
                layout[f"{p}.shortcut.2.weight"] = (cout, cin, 1, 1)
                _bn(layout, f"{p}.shortcut.3", cout)
            cin = cout
    tail = _tf_divisible(512 * width)
    _tf_conv(layout, "blocks.9.0", cin, tail, 1, act="act1", bn="bn1")
    _tf_gdc(layout, "output_layer", tail, embedding_size, side)
    return layout


TF_MOBILE = {  # TFace network: (its layout, the massface model it is read into, TFace's parameter count at D = 512)
    "MobileFaceNet": (tface_mobilefacenet_layout, "mobilefacenet(head_bn='no_affine')", 1_199_488),
    "EfficientNetB0": (functools.partial(tface_efficientnet_layout, "b0"), "efficientnet_b0(head_bn='no_affine')",
                       4_057_600),
    "EfficientNetB1": (functools.partial(tface_efficientnet_layout, "b1"), "efficientnet_b1(head_bn='no_affine')",
                       6_567_648),
    "GhostNet": (tface_ghostnet_layout, "ghostnet(**TFACE_GHOSTNET)", 4_057_584),
}
TF_MOBILE_MASSFACE = {  # the same networks built in massface (D, input side 32)
    "MobileFaceNet": lambda: build_backbone("mobilefacenet", 16, input_size=32, head_bn="no_affine"),
    "EfficientNetB0": lambda: build_backbone("efficientnet_b0", 16, input_size=32, head_bn="no_affine"),
    "EfficientNetB1": lambda: build_backbone("efficientnet_b1", 16, input_size=32, head_bn="no_affine"),
    "GhostNet": lambda: build_backbone("ghostnet", 16, input_size=32, **TFACE_GHOSTNET),
}


def _params(layout: Layout) -> int:
    """Trainable entries of a layout (BN running statistics and counters left out)."""
    return sum(math.prod(shape) for key, shape in layout.items()
               if not key.endswith(("running_mean", "running_var", "num_batches_tracked")))


@pytest.mark.parametrize("network", sorted(TF_MOBILE))
def test_auto_detects_tface_mobile_networks(network: str) -> None:
    make, name, params = TF_MOBILE[network]
    assert _params(make()) == params  # the hand-written layout is TFace's network (its own count, measured)
    layout = _detect(_meta(make(embedding_size=128)), "auto", "Backbone_checkpoint.pth")
    assert (layout.family, layout.name) == (f"tface {network.lower().removesuffix('b0').removesuffix('b1')}", name)
    with torch.device("meta"):
        model = layout.build(None)
        full = _detect(_meta(make()), "tface", "b.pth").build(None)
    assert model.embedding_size == 128 and model.input_size == 112
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in layout.state.items()}
    assert isinstance(model.head.bn, nn.BatchNorm1d) and not model.head.bn.affine
    assert sum(p.numel() for p in full.parameters()) == params


@pytest.mark.parametrize("network", sorted(TF_MOBILE))
def test_tface_mobile_checkpoints_load_with_and_without_ddp_prefix(network: str, tmp_path: Path) -> None:
    state = fill(TF_MOBILE[network][0](embedding_size=16, side=2))  # 32x32 input
    plain = load_pretrained(_save(state, tmp_path / f"Backbone_{network}_checkpoint.pth"))
    ddp = load_pretrained(_save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth"),
                          source="tface", embedding_size=16)
    assert plain.input_size == ddp.input_size == 32 and plain.embedding_size == 16 and not plain.training
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in _detect(state, "tface", "p").state.items())
    x = face_batch(size=32)
    with torch.no_grad():
        assert torch.equal(plain(x), ddp(x))


@pytest.mark.parametrize("network", sorted(TF_MOBILE))
def test_export_writes_tface_mobile_layouts_and_round_trips(network: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = _calibrated(TF_MOBILE_MASSFACE[network]())
    path = export_pretrained(model, tmp_path / f"Backbone_{network}_checkpoint.pth", "tface")
    written = load_checkpoint(path)
    expected = TF_MOBILE[network][0](embedding_size=16, side=2)
    assert [(k, tuple(v.shape)) for k, v in written.items()] == list(expected.items())  # names, order, shapes
    back = load_pretrained(path)
    assert repr(back) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    x = face_batch(size=32)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    again = load_pretrained(_save(back.state_dict(), tmp_path / "massface.pt"))  # massface's own checkpoint
    assert repr(again) == repr(model)


def test_tface_mobile_wrong_sizes_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    state = fill(tface_mobilefacenet_layout(embedding_size=16, side=2))
    path = _save(state, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"output_layer\.linear\.weight.*16.*64") as err:
        load_pretrained(path, embedding_size=64)
    assert err.value.path == str(path)
    assert load_pretrained(path, name="mobilefacenet").embedding_size == 16  # built with the file's head_bn
    with pytest.raises(CheckpointError, match="shape"):
        load_pretrained(path, name="mobilefacenet_x2")
    state["conv_6_sep.conv.weight"] = torch.zeros(256, 128, 1, 1)  # 256 channels where TFace has 512
    with pytest.raises(CheckpointError, match=r"conv_6_sep\.conv\.weight.*\(256, 128, 1, 1\)"):
        load_pretrained(_save(state, tmp_path / "bad.pth"))
    ghost = fill(tface_ghostnet_layout(embedding_size=16, side=2, width=1.0))  # TFace's zoo has width 1.3 only
    with pytest.raises(CheckpointError, match=r"conv_stem\.weight.*\(16, 3, 3, 3\).*\(20, 3, 3, 3\)"):
        load_pretrained(_save(ghost, tmp_path / "g.pth"))


def test_tface_mobile_layouts_massface_cannot_hold_are_refused() -> None:
    b0 = _meta(tface_efficientnet_layout("b0"))
    extra = {k.replace("features.stage5.unit5.", "features.stage5.unit6."): v for k, v in b0.items()
             if k.startswith("features.stage5.unit5.")}
    with pytest.raises(CheckpointError, match=r"\(1, 2, 2, 6, 6\).*EfficientNetB0 \(1, 2, 2, 6, 5\)"):
        _detect({**b0, **extra}, "auto", "e.pth")
    ghost = _meta(tface_ghostnet_layout())
    fewer = {k: v for k, v in ghost.items() if not k.startswith("blocks.8.3.")}
    with pytest.raises(CheckpointError, match=r"blocks\.i.*\(1, 1, 1, 1, 1, 1, 5, 1, 3, 1\)"):
        _detect(fewer, "tface", "g.pth")
    mfn = _meta(tface_mobilefacenet_layout())
    gnap = {k: v for k, v in mfn.items() if not k.startswith("output_layer.")}
    gnap.update({"output_layer.bn1.running_mean": torch.empty(512, device="meta"),
                 "output_layer.bn2.running_mean": torch.empty(512, device="meta")})
    with pytest.raises(CheckpointError, match="GNAP"):
        _detect(gnap, "auto", "m.pth")


@pytest.mark.parametrize("make", [
    lambda: build_backbone("ghostnet", 8, input_size=32, head_bn="no_affine"),
    lambda: build_backbone("mobilefacenet_massface", 8, input_size=32, head_bn="no_affine"),
    lambda: build_backbone("efficientnet_b0", 8, input_size=32),
], ids=["zoo_ghostnet", "mobilefacenet_massface", "affine_bn"])
def test_export_refuses_mobile_models_without_a_tface_counterpart(make, tmp_path: Path) -> None:
    model = make()
    with pytest.raises(ValueError, match=rf"{type(model).__name__} has no tface counterpart"):
        export_pretrained(model, tmp_path / "model.pth", "tface")
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------ AdaFace and MagFace
# AdaFace (mk-minchul/AdaFace net.py) is TFace's IR layout inside a PyTorch-Lightning checkpoint: the network
# under state_dict["model.*"], the AdaFace head under "head.*" (kernel D x C, EMA buffers t / batch_mean /
# batch_std). MagFace (IrvingMeng/MagFace models/iresnet.py) is arcface_torch's IResNet layout under
# "module.features.*" (run/trainer.py: DataParallel around the builder) or "features.module.*", MagLinear
# "fc.weight" (D x C). data/adaface_magface_embeddings.pt holds both networks' outputs on these name-filled
# weights, each fed its own BGR convention of face_batch()'s pixels (recorded outside massface).
def adaface_ckpt(blocks: tuple[int, ...] = DEPTHS[18], se: bool = False, classes: int = 10, **kw: int) -> dict:
    network = fill(tface_ir_layout(blocks, se, **kw))
    embedding_size = network["output_layer.3.weight"].shape[0]
    state = {f"model.{k}": v for k, v in network.items()}
    g = torch.Generator().manual_seed(3)
    state.update({"head.kernel": torch.randn(embedding_size, classes, generator=g), "head.t": torch.zeros(1),
                  "head.batch_mean": torch.full((1,), 20.0), "head.batch_std": torch.full((1,), 100.0)})
    return {"epoch": 25, "global_step": 100, "pytorch-lightning_version": "1.8.6", "state_dict": state,
            "optimizer_states": [], "lr_schedulers": [], "hyper_parameters": {"arch": "ir_18", "head": "adaface"}}


def magface_small_var(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The embedding BatchNorm1d's running variances near MagFace's eps (2e-5), where the eps difference shows."""
    g = torch.Generator().manual_seed(11)
    state["features.running_var"] = torch.rand(state["features.running_var"].shape, generator=g) * 4e-5 + 1e-6
    return state


def magface_ckpt(blocks: tuple[int, ...] = DEPTHS[18], dataparallel: bool = True, classes: int = 12,
                 **kw: int) -> dict:
    network = magface_small_var(fill(arcface_iresnet_layout(blocks, **kw)))
    embedding_size = network["fc.weight"].shape[0]
    prefix, fc = ("module.features.", "module.fc.weight") if dataparallel else ("features.module.", "fc.weight")
    state = {prefix + k: v for k, v in network.items()}
    state[fc] = torch.randn(embedding_size, classes, generator=torch.Generator().manual_seed(4))
    return {"epoch": 25, "arch": "iresnet18", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


def _relative(ours: Tensor, theirs: Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def test_adaface_forward_equals_recorded_adaface_embeddings(tmp_path: Path) -> None:
    model = load_pretrained(_save(adaface_ckpt(), tmp_path / "adaface_ir18_ms1mv2.ckpt"))
    assert isinstance(model, IResNet) and model.input_affine is None and not model.training
    with torch.no_grad():
        ours = model(face_batch())  # RGB (x / 255 - 0.5) / 0.5: the BGR swap is folded into the first conv
    theirs = load_checkpoint(DATA / "adaface_magface_embeddings.pt")["adaface_ir18"]
    assert _relative(ours, theirs) <= 1e-4
    with torch.no_grad():
        swapped = model(face_batch().flip(1))  # feeding BGR, as AdaFace's own code does, is now wrong
    assert _relative(swapped, theirs) > 1e-2


@pytest.mark.parametrize("dataparallel", [True, False], ids=["module.features", "features.module"])
def test_magface_forward_equals_recorded_magface_embeddings(dataparallel: bool, tmp_path: Path) -> None:
    model = load_pretrained(_save(magface_ckpt(dataparallel=dataparallel), tmp_path / "00025.pth"))
    assert isinstance(model, IResNet) and not model.training
    assert model.input_affine is not None and model.input_affine.scale.tolist() == [0.5] * 3
    with torch.no_grad():
        ours = model(face_batch())
    theirs = load_checkpoint(DATA / "adaface_magface_embeddings.pt")["magface_iresnet18"]
    assert _relative(ours, theirs) <= 1e-4
    model.input_affine = None  # the affine map cannot be folded into the zero-padded first conv
    with torch.no_grad():
        assert _relative(model(face_batch()), theirs) > 1e-3


def test_magface_eps_is_folded_into_the_running_variances(tmp_path: Path) -> None:
    ckpt = magface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    model = load_pretrained(_save(ckpt, tmp_path / "m.pth"))
    theirs = ckpt["state_dict"]["module.features.features.running_var"]
    assert torch.allclose(model.head.bn.running_var, theirs + 1e-5) and model.head.bn.eps == 1e-5


@pytest.mark.parametrize(("blocks", "se", "name"), [(DEPTHS[18], False, "ir18"), (DEPTHS[34], False, "ir34"),
                                                    (DEPTHS[50], False, "ir50"), (DEPTHS[100], False, "ir100"),
                                                    (DEPTHS[50], True, "ir_se50")])
def test_adaface_architectures_are_detected(blocks: tuple[int, ...], se: bool, name: str) -> None:
    """AdaFace's build_model: ir_18 / ir_34 / ir_50 / ir_101 / ir_se_50."""
    state = {k: v.to("meta") for k, v in adaface_ckpt(blocks, se, embedding_size=8, side=7)["state_dict"].items()
             if k.startswith("model.")}
    layout = _detect(state, "auto", "a.ckpt")
    assert (layout.family, layout.name) == ("adaface ir", name)
    assert layout.original["features.0.0.weight"] == "model.input_layer.0.weight"


@pytest.mark.parametrize("depth", [18, 34, 50, 100])
def test_magface_architectures_are_detected(depth: int) -> None:
    state = {f"features.module.{k}": v for k, v in _meta(arcface_iresnet_layout(DEPTHS[depth], 8)).items()}
    layout = _detect(state, "auto", "m.pth")
    assert (layout.family, layout.name) == ("magface iresnet", f"iresnet{depth}")


def test_class_centres_come_from_the_head_transposed(tmp_path: Path) -> None:
    ada = adaface_ckpt((1, 1, 1, 1), embedding_size=16, side=1, classes=5)
    centres = load_class_centres(_save(ada, tmp_path / "a.ckpt"))
    assert centres.shape == (5, 16) and torch.equal(centres, ada["state_dict"]["head.kernel"].t())
    mag = magface_ckpt((1, 1, 1, 1), embedding_size=16, side=1, classes=7)
    centres = load_class_centres(_save(mag, tmp_path / "m.pth"), source="magface")
    assert centres.shape == (7, 16) and torch.equal(centres, mag["state_dict"]["module.fc.weight"].t())
    tface = _save(fill(tface_ir_layout((1, 1, 1, 1), embedding_size=16, side=1)), tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="no class centres") as err:
        load_class_centres(tface)
    assert err.value.path == str(tface)


def test_adaface_and_magface_hostile_layouts_are_named(tmp_path: Path) -> None:
    ada = adaface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    ada["state_dict"]["discriminator.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"'discriminator\.weight' belongs neither to the network"):
        load_pretrained(_save(ada, tmp_path / "stray.ckpt"))
    ada = adaface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    ada["state_dict"]["head.kernel"] = torch.zeros(17, 3)  # D rows must be the embedding size
    with pytest.raises(CheckpointError, match=r"head\.kernel has shape \(17, 3\)"):
        load_class_centres(_save(ada, tmp_path / "kernel.ckpt"))
    ada = adaface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    ada["state_dict"]["model.body.1.res_layer.4.weight"] = torch.zeros(128, 128, 1, 1)
    with pytest.raises(CheckpointError, match=r"model\.body\.1\.res_layer\.4\.weight.*\(128, 128, 1, 1\)"):
        load_pretrained(_save(ada, tmp_path / "shape.ckpt"))
    mag = magface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    mag["state_dict"]["module.margin.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"magface iresnet: key 'margin\.weight'"):
        load_pretrained(_save(mag, tmp_path / "m.pth"))
    with pytest.raises(CheckpointError, match="unknown layout"):  # forcing a source the file is not
        load_pretrained(_save(magface_ckpt((1, 1, 1, 1), embedding_size=16, side=1), tmp_path / "f.pth"),
                        source="adaface")


def test_old_lightning_hyper_parameters_are_read_inert_and_never_run(tmp_path: Path, monkeypatch) -> None:
    """A Lightning 1.x .ckpt pickles hyper_parameters as pytorch_lightning's AttributeDict holding an argparse
    Namespace: plain torch.load(weights_only=True) refuses it; load_pretrained reads the tensors, and the
    objects as inert mappings (no import, no call: the class faked here runs code if built). A file naming any
    other class (os.system) is still refused."""
    import sys
    import types

    ran: list[str] = []
    module = types.ModuleType("pytorch_lightning.utilities.parsing")

    class AttributeDict(dict):
        def __reduce__(self):  # what a hostile file could make the loader call
            return (_record, ("built",))

    def _record(what: str) -> dict:
        ran.append(what)
        return {}

    AttributeDict.__module__ = _record.__module__ = module.__name__
    AttributeDict.__qualname__, _record.__qualname__ = "AttributeDict", "_record"
    module.AttributeDict, module._record = AttributeDict, _record
    names = ("pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.utilities.parsing")
    for name in names:
        monkeypatch.setitem(sys.modules, name, module if name.endswith("parsing") else types.ModuleType(name))
    import argparse

    ckpt = adaface_ckpt((1, 1, 1, 1), embedding_size=16, side=1)
    ckpt["hyper_parameters"] = AttributeDict(arch="ir_18", args=argparse.Namespace(lr=0.1))
    path = _save(ckpt, tmp_path / "pl1.ckpt")
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)
    model = load_pretrained(path)
    assert model.embedding_size == 16 and ran == []
    assert load_checkpoint(path, inert_objects=True)["hyper_parameters"] == {}

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'MARKER'}",))

    ckpt["hyper_parameters"] = {"arch": "ir_18"}
    ckpt["callbacks"] = {"ModelCheckpoint": Payload()}
    hostile = _save(ckpt, tmp_path / "hostile.ckpt")
    with pytest.raises(CheckpointError, match=r"objects other than tensors.*GLOBAL posix"):
        load_pretrained(hostile)
    assert not (tmp_path / "MARKER").exists()


def test_magface_models_round_trip_through_massface_checkpoints_but_not_export(tmp_path: Path) -> None:
    model = load_pretrained(_save(magface_ckpt(DEPTHS[18], embedding_size=16, side=1), tmp_path / "m.pth"))
    saved = _save(model.state_dict(), tmp_path / "massface.pt")
    back = load_pretrained(saved)  # the InputAffine travels in the state dict: input_affine.scale / .shift
    assert back.input_affine is not None
    x = face_batch(size=16)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    with pytest.raises(ValueError, match="InputAffine"):
        export_pretrained(model, tmp_path / "out.pt", "arcface_torch")
    assert not (tmp_path / "out.pt").exists()
