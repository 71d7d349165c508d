"""Numerical helpers shared by the losses."""

from __future__ import annotations

from torch import Tensor

from massface.distances import compute_dtype

__all__ = ["connected_zero"]


def connected_zero(*tensors: Tensor) -> Tensor:
    """An exact 0 (float32 or wider) that is still connected to the graph of every tensor given.

    For a loss that has nothing to score (no triplet, no labelled sample): the value is the sum over an
    *empty* slice of each tensor, so no element is ever read — it is exactly 0.0 whatever the tensors hold
    (finite values whose sum would overflow in float16, NaN or ±inf alike), and backward gives every element
    a gradient of exactly 0. ``x.sum() * 0`` is NaN as soon as the sum overflows or an element is non-finite,
    because inf · 0 = NaN. The graph link matters: DDP and the GradScaler expect every parameter that
    produced the embeddings to take part in the backward. O(1) time and memory (plus a zero gradient of
    each tensor's size in the backward).
    """
    dtype = compute_dtype(*(t.dtype for t in tensors))
    total = None
    for t in tensors:
        empty = (t if t.dim() else t.reshape(1))[:0]
        part = empty.to(dtype).sum()
        total = part if total is None else total + part
    if total is None:
        raise ValueError("connected_zero needs at least one tensor")
    return total
