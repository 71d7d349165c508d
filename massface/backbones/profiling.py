"""Parameter, MAC and size counter for backbones (torch's own ``FlopCounterMode``, no extra dependency).

Convention (the one behind the field's published "GFLOPs" of face backbones, which are in fact MACs):
multiply-accumulates of ``Conv2d`` and ``Linear`` layers only, measured on one forward pass of a single
``3 x S x S`` image — ``torch.utils.flop_counter.FlopCounterMode``'s FLOPs divided by two::

    Conv2d:  MACs = C_out * H_out * W_out * (C_in / groups) * k_h * k_w        (bias ignored)
    Linear:  MACs = out_features * in_features * (number of input rows)

BatchNorm, activations, pooling, SE gating products and additions are not counted (they are < 1 % of the
total for every network here). ``FlopCounterMode`` also counts other convolutions and matrix products
(``matmul``/``bmm``, attention); no backbone here has any, and for every one of them the count equals the
former per-module hook count exactly.  ``size_mb`` is the fp32 weight size in MiB (2^20 bytes) of parameters plus
floating-point buffers (BN running statistics) -- what a fp32 checkpoint of the state dict holds.

The forward runs on the model's own device under :func:`massface._torch.eval_mode` (eval mode, no autograd,
the training flag restored afterwards).  A model built on the ``meta`` device is profiled without allocating memory, so even
``iresnet200`` costs milliseconds.  Time O(one forward at batch 1); memory O(largest activation).
"""

from __future__ import annotations

from typing import TypedDict

import torch
from torch import nn

from massface._checks import check_int

__all__ = ["Profile", "count_macs", "profile"]


class Profile(TypedDict):
    """What :func:`profile` returns."""

    params: int
    trainable_params: int
    macs: int
    size_mb: float
    input_size: int


def count_macs(model: nn.Module, input_size: int = 112) -> int:
    """MACs of ``model`` for one ``(1, 3, input_size, input_size)`` image (conv + linear, see module doc).

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs = 2 · MACs for convolutions and matrix
    products, bias and everything else uncounted), halved.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from massface._torch import eval_mode

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    counter = FlopCounterMode(display=False)
    with eval_mode(model), counter:
        model(torch.zeros(1, 3, input_size, input_size, device=device, dtype=dtype))
    return counter.get_total_flops() // 2


def profile(model: nn.Module, input_size: int = 112) -> Profile:
    """Return ``{"params", "trainable_params", "macs", "size_mb", "input_size"}`` for ``model``.

    ``params`` counts every parameter (frozen ones too, e.g. insightface's fixed BN gamma); ``macs`` follows
    the conv + linear convention of the module docstring; ``size_mb`` is fp32 MiB of the state dict.
    """
    check_int("input_size", input_size, "profile")
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
