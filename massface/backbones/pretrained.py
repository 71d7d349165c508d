"""Pretrained checkpoints of the field in and out: :func:`load_pretrained` and :func:`export_pretrained`.

Sources (``source=``), detected from the file's keys and shapes when ``source="auto"``:

* ``"arcface_torch"`` -- insightface ``recognition/arcface_torch`` ``iresnet18/34/50/100/200`` and ``mbf``: the
  raw ``state_dict`` that ``train_v2.py`` saves (``model.pt``), DDP's ``module.`` prefix allowed. Depth, width,
  embedding size and input size are read from the tensors (blocks counted per ``layerN``, D from ``fc`` /
  ``features.layers.2``, the input side from ``fc``'s in-features or the GDC kernel).
* ``"tface"`` -- Tencent TFace ``recognition/torchkit/backbone/model_irse.py`` ``IR_18/34/50/101/152/200`` and
  ``IR_SE_50/101/152/200``: the ``Backbone_*_checkpoint.pth`` state dicts its trainer saves (``module.`` allowed),
  read into the zoo's ``ir18/34/50/100`` / ``ir_se50/100`` (massface IResNets with max-pool shortcuts and a
  BatchNorm1d without affine) and ``ir152/200`` / ``ir_se152/200`` (:class:`~massface.backbones.ir.IRBottleneckNet`).
  Units are counted from ``body.N`` (bottleneck units have ``res_layer.8``), stages start at unit 0 and at every
  unit with a ``shortcut_layer`` conv, SE from ``res_layer.se_block.fc1``, D and the input side (112 or 224) from
  ``output_layer.3``. face.evoLVe's original ``bottleneck_IR`` (no BN between its first conv and the PReLU, so
  ``res_layer.2`` is a PReLU -- its IR_50 / IR_152 files do *not* share TFace's layout) has no massface
  counterpart and is refused naming the key.
  Also TFace's mobile networks (``model_mobilefacenet.py``, ``model_efficientnet.py``, ``model_ghostnet.py``),
  whose ``GDC`` head ends in ``BatchNorm1d(affine=False)``: ``MobileFaceNet`` into ``mobilefacenet`` built with
  ``head_bn='no_affine'`` (residual units counted from ``conv_3/4/5.model.N``; ``output_name='GNAP'`` has no
  massface counterpart and is refused), ``EfficientNetB0`` / ``EfficientNetB1`` into ``efficientnet_b0`` /
  ``_b1`` with ``head_bn='no_affine'`` (the version from the units of each ``features.stageS``: B0 (1, 2, 2, 6, 5),
  B1 (2, 3, 3, 8, 7)), and ``GhostNet`` into the massface :class:`~massface.backbones.ghostnet.GhostNet` built
  with ``**TFACE_GHOSTNET`` (PReLU, TFace's last-unit expansion of 512, a 664-channel tail, the BN1d without
  affine: the zoo's ``ghostnet`` is another design, see :mod:`massface.backbones.ghostnet`). D and the input
  side from ``linear`` and the k x k ``conv_6_dw`` of the ``GDC`` (TFace builds these at 112x112 only, k = 7).
* ``"adaface"`` -- mk-minchul/AdaFace ``net.py`` ``ir_18/34/50/101`` and ``ir_se_50`` (TFace's IR layout): the
  PyTorch-Lightning ``.ckpt`` its trainer saves, network under ``state_dict["model.*"]``, head under
  ``head.*``; read into ``ir18/34/50/100`` / ``ir_se50``. AdaFace feeds **BGR** ``(x / 255 - 0.5) / 0.5``: the
  channel swap is folded into the first convolution (its weight's input channels reversed -- exact, since a
  permutation commutes with zero padding), so the returned model takes RGB like every massface model. Its
  ``forward`` returns AdaFace's feature *before* the L2 normalisation AdaFace's ``Backbone`` ends with
  (``output * norm`` there). ``head.kernel`` (D x C) is the class centres: :func:`load_class_centres`.
* ``"magface"`` -- IrvingMeng/MagFace ``models/iresnet.py`` ``iresnet18/34/50/100`` (arcface_torch's IResNet
  layout, BatchNorm eps 2e-5) in the checkpoints its trainers save: ``state_dict`` keys ``features.module.*``
  (DDP inside the builder) or ``module.features.*`` (DataParallel around it), MagLinear ``fc.weight`` (D x C,
  the class centres). MagFace feeds **BGR** ``x / 255`` (``cv2.imread`` + ``ToTensor``, mean 0, std 1): the
  channel swap is folded into the first convolution, the affine map ``u = 0.5 * x + 0.5`` runs as the model's
  :class:`~massface.backbones.layers.InputAffine` (buffers ``input_affine.scale`` / ``.shift``; not foldable
  exactly: the zero padding of the first conv would change meaning) and the eps difference is folded into the
  running variances (``running_var + 1e-5`` at massface's eps 1e-5 is MagFace's ``running_var`` at 2e-5).
* ``"massface"`` -- massface's own backbone state dicts and trainer checkpoints (found by
  :func:`massface.serialization.find_state_dict`); the zoo entry whose keys and shapes match is built (with
  its ``InputAffine`` when the file has one).

A Lightning checkpoint written by an older PyTorch Lightning pickles its ``hyper_parameters`` as an
``AttributeDict`` (and argparse ``Namespace`` values): these are read as inert empty mappings
(``load_checkpoint(..., inert_objects=True)``), never imported or called.

Input convention: the returned model takes massface's input, RGB ``(x / 255 - 0.5) / 0.5`` at 112x112, which
is arcface_torch's own convention (its ``inference.py`` converts BGR to RGB and normalises the same way), so
no weight is changed: the loaded model's forward equals arcface_torch's on the same tensor (measured against
arcface_torch's own code, fp32, random weights and BN statistics: max relative difference 0 -- bit-identical --
for r18, r34, r50, r100, r200 and mbf; ``tests/backbones/data/arcface_torch_embeddings.pt`` holds its r18 / mbf outputs).

AdaFace and MagFace, measured against their own networks (AdaFace ``net.py`` at c60eaa7 inside a Lightning
2.6 ``.ckpt``; MagFace ``models/iresnet.py`` at 99bae61; outside massface, fp32, random weights, BN statistics and
PReLU slopes, each fed its own BGR convention of the same uint8 images): see ``tests/backbones/data/README.md``.

TFace's own convention is the same RGB ``(x / 255 - 0.5) / 0.5``: measured against TFace's own ``Backbone`` (commit
171ec14, outside massface; fp32, random weights, BN statistics and PReLU slopes, ``module.`` prefixed or not):
max |diff| / max |ref| = 0 -- bit-identical -- for IR_18, IR_34, IR_50, IR_101, IR_152, IR_200, IR_SE_50,
IR_SE_101, IR_SE_152, IR_SE_200 at 112x112 and IR_50 at 224x224; ``export_pretrained(..., "tface")`` files load
strictly into TFace's ``Backbone`` with the same key order, giving identical outputs. Parameter counts equal
TFace's (IR_50 43.59 M, IR_SE_50 43.81 M, IR_101 65.15 M, IR_SE_101 65.52 M, IR_152 109.64 M, IR_200 114.14 M,
IR_SE_152 116.21 M, IR_SE_200 121.24 M). The same measurement for TFace's mobile networks at 112x112 (BN statistics
measured on random images then jittered, so that the embedding varies with the input; 3 images): max |diff| /
max |ref| = 0 -- bit-identical -- for MobileFaceNet, EfficientNetB0, EfficientNetB1 and GhostNet, plain and
``module.`` prefixed; the exports have TFace's key names and order, load strictly into TFace's networks and give
identical outputs (a single PReLU's slopes reversed gives 0.25 - 0.33, so the comparison sees one tensor). Parameter
counts equal TFace's: MobileFaceNet 1,199,488, EfficientNetB0 4,057,600, EfficientNetB1 6,567,648, GhostNet
4,057,584 (the zoo's ``ghostnet``: 4,614,332).

Key mapping (arcface_torch module -> massface module; the leaf -- ``weight``, ``bias``, ``running_mean``,
``running_var``, ``num_batches_tracked`` -- is kept)::

    IResNet (k = 1 + index of the block counted over all four stages)
      conv1 / bn1 / prelu                     features.0.0 / features.0.1 / features.0.2
      layerS.i.bn1 / conv1 / bn2              features.k.body.0 / .body.1 / .body.2
      layerS.i.prelu / conv2 / bn3            features.k.body.3 / .body.4 / .body.5
      layerS.i.downsample.0 / .1              features.k.shortcut.0 / .shortcut.1
      bn2 / fc / features                     head.bn2d / head.linear / head.bn
    mbf (MobileFaceNet, scale 2; k = 2 + index of the bottleneck counted over all stages)
      layers.0.layers.j / layers.1.layers.j   features.0.0.j / features.0.1.j          (stem, j = conv/BN/PReLU)
      layers.L.layers.u.layers.j              features.0.k.body.u.j   L = 2, 4, 6 (downsampling units)
      layers.L.layers.r.layers.u.layers.j     features.0.k.body.u.j   L = 3, 5, 7 (residual units r)
      conv_sep.layers.j                       features.1.j
      features.layers.0.layers.j              head.gdc.j
      features.layers.2 / features.layers.3   head.linear / head.bn
    TFace IR / IR-SE (k = 1 + N; L = 6 for basic units, 9 for the bottleneck units of 152 / 200)
      input_layer.0 / .1 / .2                 features.0.0 / features.0.1 / features.0.2
      body.N.res_layer.0 ... .(L-1)           features.k.body.0 ... .(L-1)
      body.N.res_layer.se_block.fc1 / fc2     features.k.body.L.reduce / .expand
      body.N.shortcut_layer.0 / .1            features.k.shortcut.0 / .1   (MaxPool2d(1, s) shortcuts: no tensors)
      output_layer.0 / .3 / .4                head.bn2d / head.linear / head.bn
    TFace GDC (``output_layer`` of MobileFaceNet / GhostNet, ``output`` of EfficientNet; H below)
      H.conv_6_dw.conv / .bn / H.linear / H.bn    head.gdc.0 / head.gdc.1 / head.linear / head.bn
    TFace MobileFaceNet (k = 2 + index of the Depth_Wise unit counted over conv_23 ... conv_5)
      conv1 / conv2_dw (.conv / .bn / .prelu) features.0.0 / features.0.1 (.0 / .1 / .2)
      conv_23 / conv_34 / conv_45 .U.P        features.0.k.body.u.j     U = conv / conv_dw / project (u = 0, 1, 2),
      conv_3 / conv_4 / conv_5 .model.r.U.P   features.0.k.body.u.j     P = conv / bn / prelu (j = 0, 1, 2)
      conv_6_sep.conv / .bn / .prelu          features.1.0 / .1 / .2
    TFace EfficientNet (k = 1 + index of the unit counted over all stages)
      features.init_block.conv.conv/bn/act    features.0.0.0 / .1 / .2
      features.stage1.unitU.dw_conv / se / pw_conv          features.0.k.body.0 / .1 / .2
      features.stageS.unitU.conv1 / conv2 / se / conv3      features.0.k.body.0 / .1 / .2 / .3   (S > 1)
      ... .se.fc1 / .se.fc2                   ... .reduce / .expand
      features.final_block.conv / .bn / .act  features.1.0 / .1 / .2
    TFace GhostNet (k = 1 + index of blocks.i.j counted over blocks.0 ... blocks.8)
      conv_stem / bn1 / act1                  features.0.0.0 / .1 / .2
      blocks.i.j.ghost1 / ghost2 .primary_conv.n / .cheap_operation.n    features.0.k.body.b.primary.n / .cheap.n
      blocks.i.j.conv_dw / .bn_dw             features.0.k.body.1.0 / .1      (stride-2 units)
      blocks.i.j.se.conv_reduce / conv_expand features.0.k.body.b.reduce / .expand   (b counts the modules present)
      blocks.i.j.shortcut.0 / .1 / .2 / .3    features.0.k.shortcut.0.0 / .0.1 / .1.0 / .1.1
      blocks.9.0.conv / .bn1 / .act1          features.1.0 / .1 / .2

Every file is read by :func:`massface.serialization.load_checkpoint` (``weights_only=True``): nothing in it
executes. Refusals are :class:`~massface.serialization.CheckpointError` naming the file and the first key or
tensor that does not fit.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from massface.serialization import (
    CheckpointError,
    PathLike,
    atomic_save,
    find_state_dict,
    load_checkpoint,
    load_module_state,
)

from . import efficientnet as _eff
from . import ghostnet as _ghost
from . import ir as _tf
from . import iresnet as _ir
from . import mobilefacenet as _mfn
from .layers import InputAffine, SqueezeExcite
from .sources import SOURCES, TARGETS

__all__ = ["load_pretrained", "load_weights", "load_class_centres", "export_pretrained", "SOURCES", "TARGETS",
           "arcface_torch_key_map", "tface_key_map"]

Source = Literal["auto", "arcface_torch", "tface", "adaface", "magface", "massface"]

_BGR_TO_RGB = "features.0.0.weight"  # the first convolution, whose input channels a BGR network's fold reverses
_MAGFACE_EPS, _MASSFACE_EPS = 2e-5, 1e-5

_LEAF = re.compile(r"^(.*)\.([^.]+)$")
_AF_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.")
_AF_MBF_RESIDUAL = re.compile(r"^layers\.([357])\.layers\.(\d+)\.layers\.0\.layers\.0\.weight$")
_IR_BLOCK_MODULES = (("bn1", "body.0"), ("conv1", "body.1"), ("bn2", "body.2"), ("prelu", "body.3"),
                     ("conv2", "body.4"), ("bn3", "body.5"), ("downsample.0", "shortcut.0"),
                     ("downsample.1", "shortcut.1"))
_MBF_UNIT = ("layers.0", "layers.1", "layers.2")  # expand / depthwise / linear of a DepthWise unit
_CONV_BN_ACT = ("0", "1", "2")  # a ConvBlock's conv / BN / PReLU (a LinearBlock has the first two)
_TF_UNIT = re.compile(r"^body\.(\d+)\.")
_TF_CBA = (("conv", "0"), ("bn", "1"), ("prelu", "2"))  # TFace Conv_block / LinearBlock -> ConvBNAct
_TF_EFF_CBA = (("conv", "0"), ("bn", "1"), ("act", "2"))  # TFace EfficientNet ConvBlock -> ConvBNAct
_TF_MFN_UNIT = ("conv", "conv_dw", "project")  # a TFace Depth_Wise unit: expand / depthwise / linear
_TF_MFN_STAGES = (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5"))  # downsample, residuals
_TF_MFN_RESIDUAL = re.compile(r"^conv_([345])\.model\.(\d+)\.")
_TF_EFF_UNIT = re.compile(r"^features\.stage(\d+)\.unit(\d+)\.")
_TF_GHOST_UNIT = re.compile(r"^blocks\.(\d+)\.(\d+)\.")
_TF_GHOST_GROUPS = (1, 1, 1, 1, 1, 1, 5, 1, 4)  # TFace GhostNet.cfgs: units of blocks.0 ... blocks.8


def _tf_unit_modules(layers: int) -> tuple[tuple[str, str], ...]:
    """A TFace unit's modules (``layers`` = 6 basic, 9 bottleneck) -> the massface unit's."""
    return tuple((f"res_layer.{j}", f"body.{j}") for j in range(layers)) + (
        ("res_layer.se_block.fc1", f"body.{layers}.reduce"), ("res_layer.se_block.fc2", f"body.{layers}.expand"),
        ("shortcut_layer.0", "shortcut.0"), ("shortcut_layer.1", "shortcut.1"))


_SIGNATURES: dict[str, tuple[str, ...]] = {
    "arcface_torch iresnet": ("conv1.weight", "layer1.0.conv1.weight", "fc.weight", "features.running_mean"),
    "arcface_torch mbf": ("layers.0.layers.0.weight", "conv_sep.layers.0.weight", "features.layers.2.weight"),
    "tface ir": ("input_layer.0.weight", "body.0.res_layer.0.weight", "output_layer.3.weight"),
    "tface mobilefacenet": ("conv1.conv.weight", "conv2_dw.conv.weight", "conv_6_sep.conv.weight"),
    "tface efficientnet": ("features.init_block.conv.conv.weight", "features.final_block.conv.weight",
                           "output.linear.weight"),
    "tface ghostnet": ("conv_stem.weight", "blocks.0.0.ghost1.primary_conv.0.weight", "output_layer.linear.weight"),
    "adaface ir": ("model.input_layer.0.weight", "model.body.0.res_layer.0.weight", "model.output_layer.3.weight"),
    "magface iresnet": ("features.conv1.weight", "features.layer1.0.conv1.weight", "features.fc.weight"),
}


# --------------------------------------------------------------------------------------------- key maps
def _iresnet_module_map(blocks: tuple[int, ...]) -> dict[str, str]:
    """arcface_torch IResNet module path -> massface :class:`~massface.backbones.iresnet.IResNet` module path."""
    pairs = {"conv1": "features.0.0", "bn1": "features.0.1", "prelu": "features.0.2"}
    k = 1
    for stage, n in enumerate(blocks, start=1):
        for i in range(n):
            for theirs, mine in _IR_BLOCK_MODULES:
                pairs[f"layer{stage}.{i}.{theirs}"] = f"features.{k}.{mine}"
            k += 1
    pairs.update({"bn2": "head.bn2d", "fc": "head.linear", "features": "head.bn"})
    return pairs


def _mbf_module_map(residuals: tuple[int, int, int]) -> dict[str, str]:
    """arcface_torch MobileFaceNet module path -> massface :class:`MobileFaceNet` module path (blocks[0] == 1)."""
    pairs: dict[str, str] = {}
    for stem in (0, 1):
        for j in _CONV_BN_ACT:
            pairs[f"layers.{stem}.layers.{j}"] = f"features.0.{stem}.{j}"
    k = 2

    def unit(theirs: str) -> None:
        nonlocal k
        for u, part in enumerate(_MBF_UNIT):
            for j in _CONV_BN_ACT:
                pairs[f"{theirs}.{part}.layers.{j}"] = f"features.0.{k}.body.{u}.{j}"
        k += 1

    for down, res, n in ((2, 3, residuals[0]), (4, 5, residuals[1]), (6, 7, residuals[2])):
        unit(f"layers.{down}")
        for r in range(n):
            unit(f"layers.{res}.layers.{r}")
    for j in _CONV_BN_ACT:
        pairs[f"conv_sep.layers.{j}"] = f"features.1.{j}"
        pairs[f"features.layers.0.layers.{j}"] = f"head.gdc.{j}"
    pairs.update({"features.layers.2": "head.linear", "features.layers.3": "head.bn"})
    return pairs


def _tface_module_map(units: int, bottleneck: bool = False) -> dict[str, str]:
    """TFace torchkit ``Backbone`` (IR / IR-SE) module path -> massface :class:`IResNet` (basic units) or
    :class:`~massface.backbones.ir.IRBottleneckNet` (bottleneck units) module path."""
    pairs = {"input_layer.0": "features.0.0", "input_layer.1": "features.0.1", "input_layer.2": "features.0.2"}
    unit_modules = _tf_unit_modules(9 if bottleneck else 6)
    for j in range(units):
        for theirs, mine in unit_modules:
            pairs[f"body.{j}.{theirs}"] = f"features.{j + 1}.{mine}"
    pairs.update({"output_layer.0": "head.bn2d", "output_layer.3": "head.linear", "output_layer.4": "head.bn"})
    return pairs


def _tface_gdc_pairs(head: str) -> dict[str, str]:
    """TFace torchkit's ``GDC`` (``common.py``) under ``head`` -> massface :class:`GDCHead`."""
    return {f"{head}.conv_6_dw.conv": "head.gdc.0", f"{head}.conv_6_dw.bn": "head.gdc.1",
            f"{head}.linear": "head.linear", f"{head}.bn": "head.bn"}


def _tface_mfn_module_map(residuals: tuple[int, int, int]) -> dict[str, str]:
    """TFace torchkit ``MobileFaceNet`` module path -> massface :class:`MobileFaceNet` module path (``residuals``:
    the units of ``conv_3`` / ``conv_4`` / ``conv_5``)."""
    pairs: dict[str, str] = {}
    for k, theirs in enumerate(("conv1", "conv2_dw")):
        for part, j in _TF_CBA:
            pairs[f"{theirs}.{part}"] = f"features.0.{k}.{j}"
    k = 2
    for (down, res), n in zip(_TF_MFN_STAGES, residuals):
        for theirs in (down, *(f"{res}.model.{r}" for r in range(n))):
            for u, unit in enumerate(_TF_MFN_UNIT):
                for part, j in _TF_CBA:
                    pairs[f"{theirs}.{unit}.{part}"] = f"features.0.{k}.body.{u}.{j}"
            k += 1
    for part, j in _TF_CBA:
        pairs[f"conv_6_sep.{part}"] = f"features.1.{j}"
    pairs.update(_tface_gdc_pairs("output_layer"))
    return pairs


def _tface_effnet_module_map(stage_units: tuple[int, ...]) -> dict[str, str]:
    """TFace torchkit ``EfficientNet`` module path -> massface :class:`~massface.backbones.efficientnet.EfficientNet`
    module path (``stage_units``: the units of ``features.stage1`` ...; stage 1's are ``EffiDwsConvUnit``)."""
    pairs = {f"features.init_block.conv.{part}": f"features.0.0.{j}" for part, j in _TF_EFF_CBA}
    k = 1
    for stage, n in enumerate(stage_units, start=1):
        parts = ("dw_conv", "se", "pw_conv") if stage == 1 else ("conv1", "conv2", "se", "conv3")
        for u in range(1, n + 1):
            for i, part in enumerate(parts):
                theirs, mine = f"features.stage{stage}.unit{u}.{part}", f"features.0.{k}.body.{i}"
                if part == "se":
                    pairs.update({f"{theirs}.fc1": f"{mine}.reduce", f"{theirs}.fc2": f"{mine}.expand"})
                else:
                    pairs.update({f"{theirs}.{leaf}": f"{mine}.{j}" for leaf, j in _TF_EFF_CBA})
            k += 1
    pairs.update({f"features.final_block.{part}": f"features.1.{j}" for part, j in _TF_EFF_CBA})
    pairs.update(_tface_gdc_pairs("output"))
    return pairs


def _tface_ghost_module_map(units: list[tuple[bool, bool]]) -> dict[str, str]:
    """TFace torchkit ``GhostNet`` module path -> massface :class:`~massface.backbones.ghostnet.GhostNet` module
    path; ``units`` holds (strided, SE) for each Ghost bottleneck, grouped as TFace's ``blocks.i.j``."""
    pairs = {"conv_stem": "features.0.0.0", "bn1": "features.0.0.1", "act1": "features.0.0.2"}
    names = [f"blocks.{g}.{j}" for g, n in enumerate(_TF_GHOST_GROUPS) for j in range(n)]
    for k, (theirs, (strided, se)) in enumerate(zip(names, units), start=1):
        mine = f"features.0.{k}"
        parts = ["ghost1", *(["dw"] if strided else []), *(["se"] if se else []), "ghost2"]
        for i, part in enumerate(parts):
            body = f"{mine}.body.{i}"
            if part == "dw":
                pairs.update({f"{theirs}.conv_dw": f"{body}.0", f"{theirs}.bn_dw": f"{body}.1"})
            elif part == "se":
                pairs.update({f"{theirs}.se.conv_reduce": f"{body}.reduce", f"{theirs}.se.conv_expand": f"{body}.expand"})
            else:
                for op, mod in (("primary_conv", "primary"), ("cheap_operation", "cheap")):
                    for j in "012":
                        pairs[f"{theirs}.{part}.{op}.{j}"] = f"{body}.{mod}.{j}"
        for j in range(4):  # depthwise conv, BN, 1x1 conv, BN
            pairs[f"{theirs}.shortcut.{j}"] = f"{mine}.shortcut.{j // 2}.{j % 2}"
    tail = f"blocks.{len(_TF_GHOST_GROUPS)}.0"  # ConvBnAct(C, 664, 1)
    pairs.update({f"{tail}.conv": "features.1.0", f"{tail}.bn1": "features.1.1", f"{tail}.act1": "features.1.2"})
    pairs.update(_tface_gdc_pairs("output_layer"))
    return pairs


def _rename(state: Mapping[str, Tensor], modules: Mapping[str, str]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename ``state``'s keys module by module; returns the renamed dict and the keys with no counterpart."""
    out: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        found = _LEAF.match(key)
        prefix = modules.get(found.group(1)) if found else None
        if prefix is None:
            unmapped.append(key)
        else:
            out[f"{prefix}.{found.group(2)}"] = value  # type: ignore[union-attr]
    return out, unmapped


def arcface_torch_key_map(model: nn.Module) -> dict[str, str]:
    """massface state-dict key -> arcface_torch key for ``model`` (an IResNet or an mbf-layout MobileFaceNet).

    Raises:
        ValueError: naming the model when it has no arcface_torch counterpart.
    """
    return _key_map(model, _module_map_for(model), "arcface_torch")


def tface_key_map(model: nn.Module) -> dict[str, str]:
    """massface state-dict key -> TFace torchkit key for ``model``: an :class:`IResNet` such as ``ir50`` /
    ``ir_se50``, an :class:`~massface.backbones.ir.IRBottleneckNet` (``ir152`` ... ``ir_se200``), or, built with
    ``head_bn='no_affine'``, a :class:`MobileFaceNet` (``mobilefacenet``), an
    :class:`~massface.backbones.efficientnet.EfficientNet` (``efficientnet_b0`` / ``_b1``) or a
    :class:`~massface.backbones.ghostnet.GhostNet` (``ghostnet`` with ``**TFACE_GHOSTNET``).

    Raises:
        ValueError: naming the model when it has no TFace counterpart.
    """
    if isinstance(model, (_ir.IResNet, _tf.IRBottleneckNet)):
        _tface_head_bn(model, "TFace's output_layer")
        bottleneck = isinstance(model, _tf.IRBottleneckNet)
        return _key_map(model, _tface_module_map(len(model.features) - 1, bottleneck), "tface")
    if isinstance(model, (_mfn.MobileFaceNet, _eff.EfficientNet, _ghost.GhostNet)):
        _tface_head_bn(model, "TFace's GDC")
        units = list(model.features[0])[1:]  # after the (one-conv) stem of EfficientNet and GhostNet
        if isinstance(model, _mfn.MobileFaceNet):
            modules = _tface_mfn_module_map(_mbf_residuals(model, "tface", "TFace's MobileFaceNet"))
        elif isinstance(model, _eff.EfficientNet):
            modules = _tface_effnet_module_map(_effnet_stage_units(units))
        else:
            if len(units) != sum(_TF_GHOST_GROUPS):
                raise _no_counterpart(model, "tface", f"it has {len(units)} Ghost bottlenecks, TFace's GhostNet "
                                                      f"{sum(_TF_GHOST_GROUPS)}")
            modules = _tface_ghost_module_map([_ghost_unit_kind(unit) for unit in units])
        return _key_map(model, modules, "tface")
    raise _no_counterpart(model, "tface", "TFace torchkit's IR / IR-SE, MobileFaceNet, EfficientNetB0 / B1 and "
                                          "GhostNet layouts are read into massface IResNets, IRBottleneckNets, "
                                          "MobileFaceNets, EfficientNets and GhostNets only")


def _tface_head_bn(model: nn.Module, where: str) -> None:
    bn = getattr(model.head, "bn", None)
    if not isinstance(bn, nn.BatchNorm1d) or bn.affine:
        raise _no_counterpart(model, "tface", f"{where} ends in BatchNorm1d(affine=False) (head_bn='no_affine')")


def _strided(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in module.modules())


def _effnet_stage_units(units: list[nn.Module]) -> tuple[int, ...]:
    """TFace's EfficientNet stages from a unit list: a stage starts at the first unit and at every stride-2 one."""
    counts: list[int] = []
    for unit in units:
        if not counts or _strided(unit):
            counts.append(0)
        counts[-1] += 1
    return tuple(counts)


def _effnet_table_units(depth_factor: float) -> tuple[int, ...]:
    """Units per TFace EfficientNet stage at ``depth_factor`` (rows as massface's table, grouped at stride 2)."""
    counts: list[int] = []
    for _, _, _, repeats, stride in _eff.EFFICIENTNET_STAGES:
        if not counts or stride > 1:
            counts.append(0)
        counts[-1] += math.ceil(repeats * depth_factor)
    return tuple(counts)


def _ghost_unit_kind(unit: nn.Module) -> tuple[bool, bool]:
    """(has a stride-2 depthwise conv, has SE) of a massface Ghost bottleneck."""
    body = getattr(unit, "body", unit)
    return _strided(body), any(isinstance(m, SqueezeExcite) for m in body.modules())


def _key_map(model: nn.Module, modules: Mapping[str, str], target: str) -> dict[str, str]:
    mine_to_theirs = {mine: theirs for theirs, mine in modules.items()}
    out: dict[str, str] = {}
    for key in model.state_dict():
        found = _LEAF.match(key)
        theirs = mine_to_theirs.get(found.group(1)) if found else None
        if theirs is None:
            raise _no_counterpart(model, target, f"its tensor {key!r} has no {target} name")
        out[key] = f"{theirs}.{found.group(2)}"  # type: ignore[union-attr]
    return out


def _module_map_for(model: nn.Module) -> dict[str, str]:
    if isinstance(model, _ir.IResNet):
        return _iresnet_module_map(tuple(_stage_blocks(model)))
    if isinstance(model, _mfn.MobileFaceNet):
        return _mbf_module_map(_mbf_residuals(model))
    raise _no_counterpart(model, "arcface_torch", "arcface_torch has iresnet18/34/50/100/200 and mbf only")


def _stage_blocks(model: _ir.IResNet) -> list[int]:
    """Blocks per stage of a massface IResNet (a new stage starts at every stride-2 block)."""
    counts: list[int] = []
    for block in list(model.features)[1:]:
        if block.body[4].stride == (2, 2) or not counts:
            counts.append(0)
        counts[-1] += 1
    return counts


def _mbf_residuals(model: _mfn.MobileFaceNet, target: str = "arcface_torch",
                   network: str = "mbf") -> tuple[int, int, int]:
    """Residual units after each of the three downsampling units that follow the stem (arcface mbf's, TFace's)."""
    units = [m for m in model.features[0] if isinstance(m, _mfn.Bottleneck)]
    counts: list[int] = []
    for unit in units:
        if not unit.residual:
            counts.append(0)
        else:
            if not counts:
                raise _no_counterpart(model, target, "its first bottleneck is residual")
            counts[-1] += 1
    # arcface's first downsampling unit plus its residuals form one massface row; rows 2/3 and 4/5 likewise
    if len(counts) != 3:
        raise _no_counterpart(model, target, f"it has {len(counts)} downsampling units, {network} has 3")
    return counts[0], counts[1], counts[2]


def _no_counterpart(model: nn.Module, target: str, why: str) -> ValueError:
    return ValueError(f"{type(model).__name__} has no {target} counterpart: {why}")


# --------------------------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class _Layout:
    """What a checkpoint holds: a description, a builder for the massface model, its keys in massface names."""

    family: str
    name: str
    build: Callable[[str | None], nn.Module]  # the detected model, or the named zoo entry at its sizes
    state: dict[str, Tensor]
    original: dict[str, str]  # massface key -> the key in the file
    centres: tuple[str, Tensor] | None = None  # (key in the file, C x D class centres) of the file's head


def _units_per_stage(state: Mapping[str, Tensor], pattern: re.Pattern[str],
                     stages: tuple[int, ...]) -> tuple[int, ...]:
    """Units of each stage, counted from keys ``pattern`` matches as (stage, unit index): 1 + the largest index
    (0 for a stage without keys). O(keys)."""
    counts = dict.fromkeys(stages, 0)
    for key in state:
        found = pattern.match(key)
        if found and int(found.group(1)) in counts:
            stage = int(found.group(1))
            counts[stage] = max(counts[stage], int(found.group(2)) + 1)
    return tuple(counts[stage] for stage in stages)


def _arcface_iresnet(state: Mapping[str, Tensor], path: PathLike, family: str = "arcface_torch iresnet") -> _Layout:
    blocks = _units_per_stage(state, _AF_BLOCK, (1, 2, 3, 4))
    if 0 in blocks:
        raise CheckpointError(path, f"{family} without blocks in layer{blocks.index(0) + 1}")
    fc = state["fc.weight"]
    if fc.dim() != 2:
        raise CheckpointError(path, f"fc.weight: expected a matrix, got shape {tuple(fc.shape)}")
    embedding_size, flat = int(fc.shape[0]), int(fc.shape[1])
    side = round((flat / 512) ** 0.5)
    depth = next((d for d, b in _ir.STAGE_BLOCKS.items() if b == blocks), None)
    name = f"iresnet{depth}" if depth else f"IResNet(blocks={blocks})"

    def build(zoo_name: str | None) -> nn.Module:
        if zoo_name is not None:
            from .registry import build_backbone

            return build_backbone(zoo_name, embedding_size=embedding_size, input_size=16 * side)
        return _ir.IResNet(blocks, embedding_size, input_size=16 * side)

    return _renamed(state, _iresnet_module_map(blocks), family, name, build, path)


def _arcface_mbf(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    if "layers.1.layers.0.weight" not in state:
        raise CheckpointError(path, "arcface_torch MobileFaceNet with residual units in its first stage "
                                    "(blocks[0] > 1, e.g. mbf_large) has no massface counterpart")
    residuals = _units_per_stage(state, _AF_MBF_RESIDUAL, (3, 5, 7))
    width = int(state["layers.0.layers.0.weight"].shape[0])
    stem_groups = width // max(1, int(state["layers.1.layers.0.weight"].shape[1]))
    embedding_size = int(state["features.layers.2.weight"].shape[0])
    gdc = state.get("features.layers.0.layers.0.weight")
    side = int(gdc.shape[-1]) if gdc is not None and gdc.dim() == 4 else 7
    standard = residuals == (4, 6, 2) and width == 128 and stem_groups == 64
    name = "mobilefacenet_x2" if standard else f"MobileFaceNet(width={width}, residuals={residuals})"

    def build(zoo_name: str | None) -> nn.Module:
        if zoo_name is not None:
            from .registry import build_backbone

            return build_backbone(zoo_name, embedding_size=embedding_size, input_size=16 * side)
        rows = _mfn.paper_rows(width, blocks=residuals)
        return _mfn.MobileFaceNet(embedding_size, width=width, rows=rows, stem_groups=stem_groups,
                                  input_size=16 * side)

    return _renamed(state, _mbf_module_map(residuals), "arcface_torch mbf", name, build, path)


def _tface(state: Mapping[str, Tensor], path: PathLike, family: str = "tface ir") -> _Layout:
    """TFace torchkit ``Backbone`` (``IR_18 ... IR_200``, ``IR_SE_50 ... IR_SE_200``): stages, unit kind and SE
    from the keys."""
    units = 1 + max(int(m.group(1)) for m in map(_TF_UNIT.match, state) if m)
    bottleneck = "body.0.res_layer.8.weight" in state
    if "body.0.res_layer.2.running_mean" not in state:
        raise CheckpointError(path, "body.0.res_layer.2 is not a BatchNorm: face.evoLVe's original bottleneck_IR "
                                    "(conv3x3 -> PReLU without the BN between) has no massface counterpart; TFace's "
                                    "and AdaFace's IR units have it")
    starts = sorted({0} | {j for j in range(units) if f"body.{j}.shortcut_layer.0.weight" in state})
    if len(starts) != 4:
        raise CheckpointError(path, f"{family}: {len(starts)} stages found (a stage starts at unit 0 and at every "
                                    "unit with shortcut_layer.0.weight), massface IResNets have 4")
    blocks = tuple(b - a for a, b in zip(starts, [*starts[1:], units]))
    last_conv = "res_layer.7" if bottleneck else "res_layer.4"
    widths = tuple(int(state[f"body.{j}.{last_conv}.weight"].shape[0]) for j in starts)
    se = "body.0.res_layer.se_block.fc1.weight" in state
    fc = state["output_layer.3.weight"]
    if fc.dim() != 2:
        raise CheckpointError(path, f"output_layer.3.weight: expected a matrix, got shape {tuple(fc.shape)}")
    embedding_size, flat = int(fc.shape[0]), int(fc.shape[1])
    side = round((flat / widths[-1]) ** 0.5)
    if "output_layer.4.weight" in state:
        head_bn = "affine"
    else:
        head_bn = "no_affine" if "output_layer.4.running_mean" in state else "none"
    table = _tf.BLOCKS if bottleneck else {d: _ir.STAGE_BLOCKS[d] for d in (18, 34, 50, 100)}
    depth = next((d for d, b in table.items() if b == blocks), None)
    standard_widths = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    standard = depth is not None and widths == standard_widths and head_bn == "no_affine"
    if standard and (not se or depth != 18 and depth != 34):
        name = f"ir_se{depth}" if se else f"ir{depth}"
    else:
        kind = "IRBottleneckNet" if bottleneck else "IResNet"
        name = f"{kind}(blocks={blocks}, se={se}, head_bn={head_bn!r})"

    def build(zoo_name: str | None) -> nn.Module:
        if zoo_name is not None:
            from .registry import build_backbone

            return build_backbone(zoo_name, embedding_size=embedding_size, input_size=16 * side)
        if bottleneck:
            return _tf.IRBottleneckNet(blocks, embedding_size, se=se, head_bn=head_bn,  # type: ignore[arg-type]
                                       input_size=16 * side, widths=widths)
        return _ir.IResNet(blocks, embedding_size, se=se, shortcut="pool", head_bn=head_bn,  # type: ignore[arg-type]
                           input_size=16 * side, widths=widths)

    return _renamed(state, _tface_module_map(units, bottleneck), family, name, build, path)


def _tface_gdc(state: Mapping[str, Tensor], path: PathLike, family: str, head: str) -> dict[str, object]:
    """Embedding size, input size and head BN of TFace's ``GDC`` under ``head``: ``linear`` (D x C), the k x k
    depthwise ``conv_6_dw`` (input side 16 k; TFace builds k = 7 only) and ``bn`` (affine=False in TFace)."""
    linear, gdc = state.get(f"{head}.linear.weight"), state.get(f"{head}.conv_6_dw.conv.weight")
    if linear is None or linear.dim() != 2:
        raise CheckpointError(path, f"{family}: {head}.linear.weight: expected a (D, C) matrix, got "
                                    f"{'no tensor' if linear is None else f'shape {tuple(linear.shape)}'}")
    if gdc is None or gdc.dim() != 4 or gdc.shape[-1] != gdc.shape[-2]:
        raise CheckpointError(path, f"{family}: {head}.conv_6_dw.conv.weight: expected a (C, 1, k, k) depthwise "
                                    f"kernel, got {'no tensor' if gdc is None else f'shape {tuple(gdc.shape)}'}")
    if f"{head}.bn.weight" in state:
        head_bn = "affine"
    else:
        head_bn = "no_affine" if f"{head}.bn.running_mean" in state else "none"
    return {"embedding_size": int(linear.shape[0]), "input_size": 16 * int(gdc.shape[-1]), "head_bn": head_bn}


def _zoo_build(zoo_name: str, options: Mapping[str, object]) -> nn.Module:
    """``build_backbone(zoo_name, ...)`` with those of ``options`` that its family takes."""
    from .registry import _allowed_options, build_backbone, get_spec

    allowed = {"embedding_size", *_allowed_options(get_spec(zoo_name).family)}
    return build_backbone(zoo_name, **{k: v for k, v in options.items() if k in allowed})  # type: ignore[arg-type]


def _options_name(zoo: str, options: Mapping[str, object]) -> str:
    """``zoo(option=value, ...)`` for the options that are not sizes (``zoo`` may already hold some)."""
    extra = ", ".join(f"{k}={v!r}" for k, v in options.items() if k not in ("embedding_size", "input_size"))
    if not extra:
        return zoo
    return f"{zoo[:-1]}, {extra})" if zoo.endswith(")") else f"{zoo}({extra})"


def _tface_mobilefacenet(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    """TFace torchkit ``MobileFaceNet(input_size)`` (``output_name='GDC'``): residual units counted from
    ``conv_3/4/5.model.N``; D, input side and head BN from ``output_layer``."""
    family = "tface mobilefacenet"
    if "output_layer.linear.weight" not in state and "output_layer.bn1.running_mean" in state:
        raise CheckpointError(path, f"{family}: output_layer.bn1 / output_layer.bn2 without output_layer.linear is "
                                    "TFace's output_name='GNAP' (global norm-aware pooling), which has no massface "
                                    "counterpart (massface's MobileFaceNet ends in the GDC head)")
    residuals = _units_per_stage(state, _TF_MFN_RESIDUAL, (3, 4, 5))
    options = _tface_gdc(state, path, family, "output_layer")
    zoo = "mobilefacenet" if residuals == (4, 6, 2) else f"MobileFaceNet(residuals={residuals})"
    name = _options_name(zoo, options)

    def build(zoo_name: str | None) -> nn.Module:
        if zoo_name is not None:
            return _zoo_build(zoo_name, options)
        return _mfn.MobileFaceNet(rows=_mfn.paper_rows(64, blocks=residuals), **options)  # type: ignore[arg-type]

    return _renamed(state, _tface_mfn_module_map(residuals), family, name, build, path)


def _tface_efficientnet(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    """TFace torchkit ``EfficientNetB0`` / ``EfficientNetB1``: the version from the units of each
    ``features.stageS`` (``unitU``); D, input side and head BN from ``output``."""
    family = "tface efficientnet"
    units: dict[int, int] = {}
    for key in state:
        found = _TF_EFF_UNIT.match(key)
        if found:
            stage = int(found.group(1))
            units[stage] = max(units.get(stage, 0), int(found.group(2)))
    found_units = tuple(units.get(stage, 0) for stage in range(1, 1 + max(units, default=0)))
    tables = {version: _effnet_table_units(factor) for version, factor in _eff.DEPTH_FACTORS.items()}
    version = next((v for v, table in tables.items() if table == found_units), None)
    if version is None:
        known = ", ".join(f"EfficientNet{v.upper()} {t}" for v, t in tables.items())
        raise CheckpointError(path, f"{family}: units per features.stageS (counted from features.stageS.unitU) "
                                    f"are {found_units}; TFace's are {known}")
    options = _tface_gdc(state, path, family, "output")
    name = _options_name(f"efficientnet_{version}", options)

    def build(zoo_name: str | None) -> nn.Module:
        if zoo_name is not None:
            return _zoo_build(zoo_name, options)
        return _eff.EfficientNet(depth_factor=_eff.DEPTH_FACTORS[version], **options)  # type: ignore[arg-type]

    return _renamed(state, _tface_effnet_module_map(found_units), family, name, build, path)


def _tface_ghostnet(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    """TFace torchkit ``GhostNet(input_size)`` (width 1.3): massface's :class:`GhostNet` with
    ``**TFACE_GHOSTNET``; each unit's stride-2 depthwise conv and SE read from its keys, D, input side and head
    BN from ``output_layer``."""
    family = "tface ghostnet"
    groups: dict[int, int] = {}
    for key in state:
        found = _TF_GHOST_UNIT.match(key)
        if found:
            group = int(found.group(1))
            groups[group] = max(groups.get(group, 0), int(found.group(2)) + 1)
    found_groups = tuple(groups.get(g, 0) for g in range(1 + max(groups, default=-1)))
    expected = (*_TF_GHOST_GROUPS, 1)
    if found_groups != expected:
        raise CheckpointError(path, f"{family}: units per blocks.i (counted from blocks.i.j) are {found_groups}; "
                                    f"TFace's GhostNet has {expected} (its cfgs, then the ConvBnAct "
                                    f"blocks.{len(_TF_GHOST_GROUPS)}.0)")
    kinds = [(f"blocks.{g}.{j}.conv_dw.weight" in state, f"blocks.{g}.{j}.se.conv_reduce.weight" in state)
             for g, n in enumerate(_TF_GHOST_GROUPS) for j in range(n)]
    options = {**_ghost.TFACE_GHOSTNET, **_tface_gdc(state, path, family, "output_layer")}
    head_bn = options["head_bn"]
    name = "ghostnet(**TFACE_GHOSTNET" + ("" if head_bn == "no_affine" else f", head_bn={head_bn!r}") + ")"

    def build(zoo_name: str | None) -> nn.Module:
        return _zoo_build(zoo_name or "ghostnet", options)

    return _renamed(state, _tface_ghost_module_map(kinds), family, name, build, path)


def _split_network(state: Mapping[str, Tensor], path: PathLike, family: str, prefixes: tuple[str, ...],
                   head_prefix: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``state`` split into the network's tensors (the first matching prefix removed) and the head's (keys
    under ``head_prefix``); any other key is refused, named."""
    network: dict[str, Tensor] = {}
    head: dict[str, Tensor] = {}
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is not None:
            network[key[len(prefix):]] = value
        elif key.startswith(head_prefix):
            head[key] = value
        else:
            raise CheckpointError(path, f"{family}: key {key!r} belongs neither to the network "
                                        f"({' / '.join(p + '*' for p in prefixes)}) nor to its head ({head_prefix}*)")
    return network, head


def _centres(head: Mapping[str, Tensor], key: str, embedding_size: int, path: PathLike,
             family: str) -> tuple[str, Tensor] | None:
    """The head's D x C class-centre matrix ``head[key]`` as C x D rows (None when the file has no head)."""
    if key not in head:
        return None
    kernel = head[key]
    if kernel.dim() != 2 or kernel.shape[0] != embedding_size:
        raise CheckpointError(path, f"{family}: {key} has shape {tuple(kernel.shape)}; expected "
                                    f"({embedding_size}, num_classes) like the network's embedding size")
    return key, kernel.t().contiguous()


def _with_file_names(layout: _Layout, prefix: str, centres: tuple[str, Tensor] | None) -> _Layout:
    original = {mine: prefix + theirs for mine, theirs in layout.original.items()}
    return _Layout(layout.family, layout.name, layout.build, layout.state, original, centres)


def _adaface(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    """AdaFace's Lightning checkpoint: TFace's IR layout under ``model.``, its head under ``head.``; BGR folded."""
    family = "adaface ir"
    network, head = _split_network(state, path, family, ("model.",), "head.")
    layout = _tface(network, path, family)
    layout.state[_BGR_TO_RGB] = layout.state[_BGR_TO_RGB].flip(1)  # BGR network -> RGB input, exactly
    embedding_size = int(layout.state["head.linear.weight"].shape[0])
    return _with_file_names(layout, "model.", _centres(head, "head.kernel", embedding_size, path, family))


def _magface(state: Mapping[str, Tensor], path: PathLike) -> _Layout:
    """MagFace's checkpoint: arcface_torch's IResNet under ``features.`` (or ``features.module.``), MagLinear
    ``fc.weight``; BGR folded into the first conv, ``x / 255`` as an :class:`InputAffine`, eps 2e-5 folded."""
    family = "magface iresnet"
    network, head = _split_network(state, path, family, ("features.module.", "features."), "fc.")
    layout = _arcface_iresnet(network, path, family)
    layout.state[_BGR_TO_RGB] = layout.state[_BGR_TO_RGB].flip(1)
    for key in layout.state:
        if key.endswith(".running_var"):  # var + (2e-5 - 1e-5) at eps 1e-5 == var at MagFace's eps 2e-5
            layout.state[key] = layout.state[key] + (_MAGFACE_EPS - _MASSFACE_EPS)
    layout.state["input_affine.scale"] = torch.full((3,), 0.5)  # massface (x/255 - 0.5)/0.5 -> MagFace x/255
    layout.state["input_affine.shift"] = torch.full((3,), 0.5)
    prefix = "features.module." if any(k.startswith("features.module.") for k in state) else "features."
    embedding_size = int(layout.state["head.linear.weight"].shape[0])
    named = _with_file_names(layout, prefix, _centres(head, "fc.weight", embedding_size, path, family))
    named.original.update({"input_affine.scale": "(MagFace's x / 255 input)", "input_affine.shift":
                           "(MagFace's x / 255 input)"})
    return named


def _renamed(state: Mapping[str, Tensor], modules: Mapping[str, str], family: str, name: str,
             build: Callable[[str | None], nn.Module], path: PathLike) -> _Layout:
    renamed, unmapped = _rename(state, modules)
    if unmapped:
        raise CheckpointError(path, f"{family} ({name}): key {unmapped[0]!r} has no counterpart"
                                    + (f" (+{len(unmapped) - 1} more)" if len(unmapped) > 1 else ""))
    inverse = {mine: theirs for theirs, mine in modules.items()}
    original = {}
    for key in renamed:
        module, leaf = _LEAF.match(key).groups()  # type: ignore[union-attr]
        original[key] = f"{inverse[module]}.{leaf}"
    return _Layout(family, name, build, renamed, original)


def _massface_candidates(state: Mapping[str, Tensor]) -> list[tuple[str, dict[str, object]]]:
    """Zoo names and options whose key set could be ``state``'s (sizes read from the head)."""
    from .registry import get_spec, list_backbones

    options: dict[str, object] = {}
    linear = state.get("head.linear.weight")
    if linear is not None and linear.dim() == 2:
        options["embedding_size"] = int(linear.shape[0])
        gdc = state.get("head.gdc.0.weight")
        bn2d = state.get("head.bn2d.weight")
        if gdc is not None and gdc.dim() == 4:
            options["input_size"] = 16 * int(gdc.shape[-1])
        elif bn2d is not None and bn2d.numel():
            options["input_size"] = 16 * round((int(linear.shape[1]) / bn2d.numel()) ** 0.5)
    if "head.bn.running_mean" not in state:
        head_bn: tuple[dict[str, object], ...] = ({"fc_bn": True}, {"fc_bn": False})
    else:
        head_bn = ({"head_bn": "no_affine"},) if "head.bn.weight" not in state else ({},)
    # family options no zoo name carries: GhostNet as TFace torchkit builds it (its head_bn comes from the file)
    variants: dict[type, tuple[dict[str, object], ...]] = {
        _ghost.GhostNet: ({}, {k: v for k, v in _ghost.TFACE_GHOSTNET.items() if k != "head_bn"})}
    flatten_head = "head.bn2d.weight" in state  # the IResNet family; the others end in a GDC
    blocks = len({key.split(".")[1] for key in state if key.startswith("features.")}) - 1
    names: list[tuple[str, type]] = []
    for name in list_backbones():
        family = get_spec(name).family
        if (family in (_ir.IResNet, _tf.IRBottleneckNet)) != flatten_head:
            continue
        depth = re.search(r"(\d+)$", name)
        table = _tf.BLOCKS if family is _tf.IRBottleneckNet else _ir.STAGE_BLOCKS
        if flatten_head and depth and sum(table.get(int(depth.group(1)), ())) != blocks:
            continue
        names.append((name, family))
    return [(name, {**options, **variant, **extra}) for name, family in names for variant in variants.get(family, ({},))
            for extra in head_bn]


def _massface(state: Mapping[str, Tensor], path: PathLike) -> _Layout | None:
    """The zoo entry whose state-dict keys and shapes equal ``state``'s, built on the meta device."""
    from .registry import build_backbone

    want = {k: tuple(v.shape) for k, v in state.items() if not k.startswith("input_affine.")}
    for name, options in _massface_candidates(state):
        try:
            with torch.device("meta"):
                candidate = build_backbone(name, **options)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if {k: tuple(v.shape) for k, v in candidate.state_dict().items()} == want:

            def build(zoo_name: str | None, _name: str = name, _options: dict = options) -> nn.Module:
                return build_backbone(zoo_name or _name, **_options)  # type: ignore[arg-type]

            return _Layout("massface", name, build, dict(state), {k: k for k in state})
    return None


def _detect(state: Mapping[str, Tensor], source: str, path: PathLike) -> _Layout:
    """The layout of ``state`` (``module.`` prefixes already stripped) for ``source``."""
    tried: list[str] = []
    if source in ("auto", "magface"):  # before arcface_torch: its keys are arcface_torch's under ``features.``
        tried.append("magface iresnet")
        keys = {k.replace("features.module.", "features.", 1) for k in state}
        if all(key in keys for key in _SIGNATURES["magface iresnet"]):
            return _magface(state, path)
    if source in ("auto", "arcface_torch"):
        for family, reader in (("arcface_torch iresnet", _arcface_iresnet), ("arcface_torch mbf", _arcface_mbf)):
            tried.append(family)
            if all(key in state for key in _SIGNATURES[family]):
                return reader(state, path)
    if source in ("auto", "tface"):
        for family, reader in (("tface ir", _tface), ("tface mobilefacenet", _tface_mobilefacenet),
                               ("tface efficientnet", _tface_efficientnet), ("tface ghostnet", _tface_ghostnet)):
            tried.append(family)
            if all(key in state for key in _SIGNATURES[family]):
                return reader(state, path)
    if source in ("auto", "adaface"):
        tried.append("adaface ir")
        if all(key in state for key in _SIGNATURES["adaface ir"]):
            return _adaface(state, path)
    if source in ("auto", "massface"):
        tried.append("massface (zoo: build_backbone names)")
        found = _massface(state, path)
        if found is not None:
            return found
    first = list(state)[:4]
    raise CheckpointError(path, f"unknown layout: not {' / '.join(tried)}; the first keys "
                                f"{first} match none of them (arcface_torch iresnet starts with 'conv1.weight', "
                                "mbf with 'layers.0.layers.0.weight', tface ir with 'input_layer.0.weight', tface "
                                "mobilefacenet with 'conv1.conv.weight', tface efficientnet with "
                                "'features.init_block.conv.conv.weight', tface ghostnet with 'conv_stem.weight', "
                                "massface with 'features.0.0.weight', adaface with 'model.input_layer.0.weight', "
                                "magface with 'features.conv1.weight' or 'features.module.conv1.weight')")


# --------------------------------------------------------------------------------------------- public API
def load_pretrained(
    path: PathLike,
    *,
    source: Source = "auto",
    name: str | None = None,
    embedding_size: int | None = None,
    map_location: str | torch.device | None = "cpu",
) -> nn.Module:
    """A massface backbone in eval mode carrying the weights of the checkpoint at ``path``.

    Args:
        path: an arcface_torch ``model.pt`` or TFace ``Backbone_*_checkpoint.pth`` (IR / IR-SE, MobileFaceNet,
            EfficientNetB0 / B1, GhostNet; raw state dicts, ``module.`` prefixes allowed), an AdaFace Lightning
            ``.ckpt``, a MagFace checkpoint, or a massface backbone state dict / trainer checkpoint.
        source: ``"auto"`` (detect from keys and shapes), or one of :data:`SOURCES`: ``"arcface_torch"``,
            ``"tface"``, ``"adaface"``, ``"magface"``, ``"massface"``.
        name: a :func:`~massface.backbones.build_backbone` name to build instead of the detected one, at the
            detected sizes and with those of the detected options its family takes (e.g. ``head_bn`` of a TFace
            MobileFaceNet); its tensors must then fit exactly.
        embedding_size: the D the caller expects; a checkpoint with another D is refused, naming the tensor.
        map_location: where the tensors are read to and the model is moved to (``None``: where they were saved).

    The model takes RGB ``(x / 255 - 0.5) / 0.5`` 112x112 input (arcface_torch's and TFace's own convention; AdaFace's
    and MagFace's BGR conventions are folded in); its forward equals the original network's. See the module
    docstring for the key mapping and the folds.

    Raises:
        CheckpointError: naming the file -- an unsafe or unreadable file, an unknown layout (the families tried
            and the first keys), or a known family whose sizes differ (the mismatching tensor).
        ValueError: an unknown ``source``.
    """
    layout = _read_layout(path, source, map_location)
    model = layout.build(name)
    if "input_affine.scale" in layout.state:
        model.input_affine = InputAffine([1.0] * 3, [0.0] * 3)  # the file's scale and shift load below
    own = model.state_dict()
    for key, tensor in layout.state.items():  # name the file's tensor, then let the strict load judge the rest
        if key in own and tuple(tensor.shape) != tuple(own[key].shape):
            raise CheckpointError(path, f"{layout.original[key]} (massface {key}): shape {tuple(tensor.shape)} "
                                        f"in this {layout.family} checkpoint, {tuple(own[key].shape)} in "
                                        f"{name or layout.name}")
    actual = getattr(model, "embedding_size", None)
    if embedding_size is not None and actual != embedding_size:
        key = next(k for k in layout.state if k.startswith("head.linear."))
        raise CheckpointError(path, f"{layout.original[key]}: embedding size {actual} in the checkpoint, "
                                    f"{embedding_size} asked for")
    load_module_state(model, layout.state, path, what=f"{layout.family} {name or layout.name}")
    if map_location is not None:
        model = model.to(torch.device(map_location))
    return model.eval()


def _read_layout(path: PathLike, source: str, map_location: str | torch.device | None) -> _Layout:
    if source not in ("auto", *SOURCES):
        raise ValueError(f"source must be 'auto' or one of {list(SOURCES)}; got {source!r}")
    state = find_state_dict(load_checkpoint(path, map_location=map_location, inert_objects=True), path)
    return _detect(state, source, path)


def load_class_centres(path: PathLike, *, source: Source = "auto",
                       map_location: str | torch.device | None = "cpu") -> Tensor:
    """The class centres of the classification head saved with a pretrained network, as a ``(C, D)`` float
    tensor (row ``c`` is class ``c``'s centre, as in massface heads' ``weight``), unnormalised as saved.

    AdaFace's ``head.kernel`` and MagFace's MagLinear ``fc.weight`` are ``(D, C)`` in their files and are
    transposed. (arcface_torch and TFace save their heads apart from the backbone, per GPU shard; a massface
    run's head is read by the trainer's ``loss.head.init_from_checkpoint`` with its buffers.)

    Raises:
        CheckpointError: naming the file -- as :func:`load_pretrained`, or when it holds no head.
    """
    layout = _read_layout(path, source, map_location)
    if layout.centres is None:
        holds = {"adaface ir": "no head.kernel", "magface iresnet": "no fc.weight"}.get(layout.family, "no head")
        raise CheckpointError(path, f"{layout.family} checkpoint with {holds}: no class centres to read "
                                    "(AdaFace .ckpt files carry head.kernel, MagFace checkpoints fc.weight)")
    return layout.centres[1].float()


def export_pretrained(model: nn.Module, path: PathLike, target: str = "arcface_torch") -> Path:
    """Write ``model``'s weights as ``target``'s own tooling saves them; returns the path written.

    ``target="arcface_torch"``: a raw state dict with arcface_torch's key names (see the module docstring), as
    ``train_v2.py`` saves ``model.pt`` -- for massface IResNets with conv shortcuts and no SE (``iresnet*``) and
    MobileFaceNets of the mbf layout (``mobilefacenet_x2``). ``target="tface"``: a raw state dict with TFace
    torchkit's key names and order, as its trainer saves ``Backbone_*_checkpoint.pth`` -- for IResNets with
    max-pool shortcuts and a BatchNorm1d without affine (``ir18/34/50/100``, ``ir_se50/100``: TFace's ``Backbone``),
    the bottleneck ``IRBottleneckNet`` (``ir152/200``, ``ir_se152/200``), and, built with ``head_bn='no_affine'``,
    ``mobilefacenet`` (TFace's ``MobileFaceNet``), ``efficientnet_b0`` / ``_b1`` (``EfficientNetB0`` / ``B1``)
    and ``GhostNet(D, **TFACE_GHOSTNET)`` (``GhostNet``; the zoo's ``ghostnet`` is refused). Written atomically
    (temporary file + ``os.replace``). ``load_pretrained(export_pretrained(m, p))`` rebuilds ``m`` exactly.

    Raises:
        ValueError: naming the model and the target when the model has no counterpart there, or an unknown
            target.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}; got {target!r}")
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    if getattr(model, "input_affine", None) is not None:
        raise _no_counterpart(model, target, f"it carries an InputAffine ({model.input_affine.extra_repr()}; "
                                             "a MagFace network's BGR x / 255 input), which the target's networks, "
                                             "taking RGB (x / 255 - 0.5) / 0.5, do not have")
    names = arcface_torch_key_map(model) if target == "arcface_torch" else tface_key_map(model)
    state = {names[key]: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    if target == "tface" and isinstance(model, (_ir.IResNet, _tf.IRBottleneckNet)):  # the others: module order
        state = {key: state[key] for key in sorted(state, key=_tface_order)}
    try:
        layout = _detect(state, target, os.fspath(path))
        with torch.device("meta"):
            rebuilt = layout.build(None)
    except CheckpointError as err:
        raise _no_counterpart(model, target, err.reason) from None
    if _structure(rebuilt) != _structure(model):
        why = ("TFace's GhostNet is GhostNet(D, **TFACE_GHOSTNET): PReLU in the stem and Ghost modules, a last "
               "unit expanding to 512 * 1.3, a 664-channel tail" if isinstance(model, _ghost.GhostNet)
               else "SE blocks, shortcuts, or another stem / head")
        raise _no_counterpart(model, target, f"its architecture differs from {target}'s {layout.name} ({why})")

    return atomic_save(state, path)


def _tface_order(key: str) -> tuple[int, int, int]:
    """TFace ``Backbone.state_dict()``'s order: input_layer, output_layer, then body; a unit's shortcut first."""
    section = ("input_layer", "output_layer", "body").index(key.split(".", 1)[0])
    unit = _TF_UNIT.match(key)
    return section, int(unit.group(1)) if unit else 0, 0 if ".shortcut_layer." in key else 1


def _structure(model: nn.Module) -> str:
    """The module tree as text, dropout rates (not part of the weights) left out."""
    return re.sub(r"Dropout\(p=[^)]*\)", "Dropout", repr(model))


def load_weights(model: nn.Module, path: PathLike, *, source: Source = "auto", what: str = "model") -> None:
    """Load the checkpoint at ``path`` — of any family :func:`load_pretrained` reads — into the existing
    ``model`` (strict). Used by the trainer's ``model.init_checkpoint`` (+ ``model.init_source``) and
    ``massface export-onnx --checkpoint`` (+ ``--source``). A checkpoint whose network takes another input
    convention (MagFace) gives ``model`` its :class:`~massface.backbones.layers.InputAffine`, so that ``model``
    keeps taking massface's RGB ``(x / 255 - 0.5) / 0.5``.

    Raises:
        CheckpointError: naming the file — as :func:`load_pretrained` does, or the first key or shape of the
            checkpoint's network that differs from ``model`` (``what`` prefixes the key, e.g. ``model.``).
    """
    pretrained = load_pretrained(path, source=source)
    if getattr(pretrained, "input_affine", None) is not None and getattr(model, "input_affine", None) is None:
        if not hasattr(model, "input_affine"):
            raise CheckpointError(path, f"its network takes another input convention (an InputAffine), which "
                                        f"{type(model).__name__} cannot carry")
        model.input_affine = InputAffine([1.0] * 3, [0.0] * 3)
    load_module_state(model, pretrained.state_dict(), path, what)
