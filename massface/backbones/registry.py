"""Name -> constructor table of the backbone zoo, and :func:`build_backbone` / :func:`list_backbones`.

The table is an immutable mapping built once at import (no registration hooks, no global mutable state).
Each entry records the constructor, its default embedding width and the figures published for it
(reference trainers.md sections 1.8 and 5), which the tests and ``benchmarks/bench_backbones.py`` compare
against.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import nn

from . import efficientnet as _eff
from . import ghostnet as _ghost
from . import ir as _tf
from . import iresnet as _ir
from . import mobilefacenet as _mfn


@dataclass(frozen=True)
class BackboneSpec:
    """One zoo entry: how to build it and what was published about it (``None`` = nothing published)."""

    builder: Callable[..., nn.Module]
    family: type[nn.Module]
    default_embedding_size: int = 512
    published_params: float | None = None  # millions, at the default embedding size
    published_gmacs: float | None = None  # GMACs at 112x112
    published_size_mb: float | None = None  # fp32 MB as published
    source: str = ""


_SPECS: dict[str, BackboneSpec] = {
    "mobilefacenet": BackboneSpec(
        _mfn.mobilefacenet, _mfn.MobileFaceNet, 512, 1.20, 0.221, 4.7, "TFace MobileFaceNet / paper"
    ),
    "mobilefacenet_x2": BackboneSpec(
        _mfn.mobilefacenet_x2, _mfn.MobileFaceNet, 512, 2.06, 0.44, None, "insightface mbf"
    ),
    "mobilefacenet_massface": BackboneSpec(
        _mfn.mobilefacenet_massface, _mfn.MobileFaceNet, 1024, None, None, 6.0, "MassFace README"
    ),
    "iresnet18": BackboneSpec(
        functools.partial(_ir.iresnet, 18), _ir.IResNet, 512, 24.0, 2.61, 91.0, "insightface r18"
    ),
    "iresnet34": BackboneSpec(
        functools.partial(_ir.iresnet, 34), _ir.IResNet, 512, 34.1, 4.46, 130.0, "insightface r34"
    ),
    "iresnet50": BackboneSpec(
        functools.partial(_ir.iresnet, 50), _ir.IResNet, 512, 43.6, 6.31, 166.0, "insightface r50"
    ),
    "iresnet100": BackboneSpec(
        functools.partial(_ir.iresnet, 100), _ir.IResNet, 512, 65.2, 12.09, 249.0, "insightface r100"
    ),
    "iresnet200": BackboneSpec(
        functools.partial(_ir.iresnet, 200), _ir.IResNet, 512, 118.8, 23.4, 453.0, "insightface r200"
    ),
    # TFace torchkit / AdaFace IR and IR-SE (face.evoLVe blocks with a BN before the PReLU, max-pool shortcuts,
    # BatchNorm1d without affine): ``ir*`` / ``ir_se*``, apart from insightface's ``iresnet*`` (conv shortcuts).
    "ir18": BackboneSpec(functools.partial(_ir.ir_se, 18, se=False), _ir.IResNet, 512, None, None, None, "TFace IR_18"),
    "ir34": BackboneSpec(functools.partial(_ir.ir_se, 34, se=False), _ir.IResNet, 512, None, None, None, "TFace IR_34"),
    "ir50": BackboneSpec(functools.partial(_ir.ir_se, 50, se=False), _ir.IResNet, 512, None, None, None, "TFace IR_50"),
    "ir100": BackboneSpec(
        functools.partial(_ir.ir_se, 100, se=False), _ir.IResNet, 512, None, None, None, "TFace IR_101"
    ),
    "ir152": BackboneSpec(
        functools.partial(_tf.ir_bottleneck, 152), _tf.IRBottleneckNet, 512, None, None, None, "TFace IR_152"
    ),
    "ir200": BackboneSpec(
        functools.partial(_tf.ir_bottleneck, 200), _tf.IRBottleneckNet, 512, None, None, None, "TFace IR_200"
    ),
    "ir_se50": BackboneSpec(functools.partial(_ir.ir_se, 50), _ir.IResNet, 512, None, None, None, "TFace IR_SE_50"),
    "ir_se100": BackboneSpec(functools.partial(_ir.ir_se, 100), _ir.IResNet, 512, None, None, None, "TFace IR_SE_101"),
    "ir_se152": BackboneSpec(
        functools.partial(_tf.ir_bottleneck, 152, se=True), _tf.IRBottleneckNet, 512, None, None, None,
        "TFace IR_SE_152",
    ),
    "ir_se200": BackboneSpec(
        functools.partial(_tf.ir_bottleneck, 200, se=True), _tf.IRBottleneckNet, 512, None, None, None,
        "TFace IR_SE_200",
    ),
    # GhostNet x1.3 with the ImageNet table and the shared mobile tail; TFace torchkit's GhostNet differs (PReLU,
    # a 512 * 1.3 last expansion, a 664-channel tail, BN1d without affine): ghostnet(**ghostnet.TFACE_GHOSTNET)
    "ghostnet": BackboneSpec(
        _ghost.ghostnet, _ghost.GhostNet, 512, None, None, None, "GhostNet x1.3 (TFace's: **TFACE_GHOSTNET)"
    ),
    "efficientnet_b0": BackboneSpec(
        functools.partial(_eff.efficientnet, "b0"), _eff.EfficientNet, 512, None, None, None, "TFace EfficientNetB0"
    ),
    "efficientnet_b1": BackboneSpec(
        functools.partial(_eff.efficientnet, "b1"), _eff.EfficientNet, 512, None, None, None, "TFace EfficientNetB1"
    ),
}

BACKBONES: MappingProxyType[str, BackboneSpec] = MappingProxyType(_SPECS)
"""Read-only zoo table, canonical name -> :class:`BackboneSpec`."""

ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {"mbf": "mobilefacenet_x2", "r18": "iresnet18", "r34": "iresnet34", "r50": "iresnet50",
     "r100": "iresnet100", "r200": "iresnet200", "ir101": "ir100", "ir_se101": "ir_se100"}
)
"""insightface's short names and TFace's depth spelling (``IR_101`` = ``ir100``) accepted by :func:`build_backbone`."""


def list_backbones() -> list[str]:
    """Canonical names accepted by :func:`build_backbone`, sorted."""
    return sorted(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` for ``name`` (canonical or alias); ValueError listing valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str; got {type(name).__name__}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}; valid names: {', '.join(list_backbones())} "
            f"(aliases: {', '.join(sorted(ALIASES))})"
        )
    return BACKBONES[key]


def _allowed_options(family: type[nn.Module]) -> list[str]:
    params = inspect.signature(family.__init__).parameters
    return [p for p in params if p not in ("self", "embedding_size", "blocks")]


def build_backbone(name: str, embedding_size: int | None = None, **kw: Any) -> nn.Module:
    """Build backbone ``name`` producing ``(N, embedding_size)`` float32 embeddings from 112x112 RGB.

    ``embedding_size=None`` takes the preset's default (512; 1024 for ``mobilefacenet_massface``).
    Options (``**kw``) are the family constructor's keyword arguments, e.g. ``dropout=0.4``,
    ``fc_bn=False`` (mobile families), ``gradient_checkpointing=True`` (IResNet / IR-SE),
    ``input_size=...`` (any multiple of 16).  Unknown names or options raise a ValueError listing the
    valid ones.  Cost: construction allocates the weights (use ``with torch.device('meta'):`` to skip it).
    """
    spec = get_spec(name)
    allowed = _allowed_options(spec.family)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(f"backbone {name!r} has no option(s) {unknown}; allowed: {', '.join(allowed)}")
    size = spec.default_embedding_size if embedding_size is None else embedding_size
    return spec.builder(embedding_size=size, **kw)
