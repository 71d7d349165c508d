"""Parameter, MAC and size counter for backbones (no extra dependency).

Convention (the one behind the field's published "GFLOPs" of face backbones, which are in fact MACs):
multiply-accumulates of ``Conv2d`` and ``Linear`` layers only, measured on one forward pass of a single
``3 x S x S`` image::

    Conv2d:  MACs = C_out * H_out * W_out * (C_in / groups) * k_h * k_w        (bias ignored)
    Linear:  MACs = out_features * in_features * (number of input rows)

BatchNorm, activations, pooling, SE gating products and additions are not counted (they are < 1 % of the
total for every network here).  ``size_mb`` is the fp32 weight size in MiB (2^20 bytes) of parameters plus
floating-point buffers (BN running statistics) -- what a fp32 checkpoint of the state dict holds.

The forward runs on the model's own device in eval mode under ``torch.no_grad`` and restores the training
flag afterwards.  A model built on the ``meta`` device is profiled without allocating memory, so even
``iresnet200`` costs milliseconds.  Time O(one forward at batch 1); memory O(largest activation).
"""

from __future__ import annotations

from typing import TypedDict

import torch
from torch import Tensor, nn


class Profile(TypedDict):
    """What :func:`profile` returns."""

    params: int
    trainable_params: int
    macs: int
    size_mb: float
    input_size: int


def _conv_macs(module: nn.Conv2d, out: Tensor) -> int:
    k = 1
    for side in module.kernel_size:
        k *= int(side)
    per_output = (module.in_channels // module.groups) * k
    return int(out[0].numel()) * per_output


def _linear_macs(module: nn.Linear, out: Tensor) -> int:
    rows = int(out[0].numel()) // module.out_features
    return rows * module.out_features * module.in_features


def count_macs(model: nn.Module, input_size: int = 112) -> int:
    """MACs of ``model`` for one ``(1, 3, input_size, input_size)`` image (conv + linear, see module doc)."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_macs(module, out)
        elif isinstance(module, nn.Linear):
            total += _linear_macs(module, out)

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


def profile(model: nn.Module, input_size: int = 112) -> Profile:
    """Return ``{"params", "trainable_params", "macs", "size_mb", "input_size"}`` for ``model``.

    ``params`` counts every parameter (frozen ones too, e.g. insightface's fixed BN gamma); ``macs`` follows
    the conv + linear convention of the module docstring; ``size_mb`` is fp32 MiB of the state dict.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size must be a positive int; got {input_size!r}")
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return Profile(
        params=params,
        trainable_params=trainable,
        macs=count_macs(model, input_size),
        size_mb=(params + buffers) * 4 / 2**20,
        input_size=input_size,
    )
