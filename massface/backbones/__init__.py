"""Backbone zoo: face-embedding networks in plain torch, their profiles, and ONNX export.

``build_backbone(name, embedding_size=None, **options)`` builds one of :func:`list_backbones` --
``mobilefacenet`` (+ ``mobilefacenet_x2`` = insightface mbf, ``mobilefacenet_massface``), ``iresnet18/34/50/100/200``,
``ir18/34/50/100/152/200`` and ``ir_se50/100/152/200`` (TFace / AdaFace IR, IR-SE), ``ghostnet``, ``efficientnet_b0/b1`` -- each mapping ``(N, 3, 112, 112)`` RGB to ``(N, D)``
float32 embeddings.  ``profile(model)`` counts params / MACs / fp32 size; ``export_onnx(model, path)`` writes
a dynamic-batch ONNX graph; ``load_pretrained(path)`` reads an arcface_torch, TFace, AdaFace, MagFace or massface checkpoint into
a zoo backbone (also AdaFace and MagFace; ``load_class_centres(path)`` reads their heads) and ``export_pretrained(model, path, "arcface_torch" | "tface")`` writes one back.  Nothing heavy is imported until a name is used.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "build_backbone": "registry",
    "list_backbones": "registry",
    "get_spec": "registry",
    "BackboneSpec": "registry",
    "profile": "profiling",
    "count_macs": "profiling",
    "export_onnx": "onnx",
    "onnx_max_abs_diff": "onnx",
    "load_backbone_weights": "onnx",
    "load_pretrained": "pretrained",
    "load_weights": "pretrained",
    "load_class_centres": "pretrained",
    "export_pretrained": "pretrained",
    "MobileFaceNet": "mobilefacenet",
    "IResNet": "iresnet",
    "IRBottleneckNet": "ir",
    "GhostNet": "ghostnet",
    "EfficientNet": "efficientnet",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
