"""The collectives every layer uses: world queries and row-wise all-gathers, with or without gradient.

This is the one place in massface that calls ``torch.distributed`` collectives (process-group *set-up* under
torchrun lives in :mod:`massface.training.distributed`). Every function is a no-op identity when no process
group is initialised (or the world has one rank), so library code calls them unconditionally.

* :func:`all_gather_rows` — every rank's rows concatenated in rank order; ranks may hold different numbers of
  rows (padded to the largest, then trimmed). No gradient. O(W · max_rows · D) memory.
* :func:`all_reduce_sum_with_grad` — Σ over ranks, differentiable (each rank's value is a partial term of a
  sum, so the backward is a sum too: PartialFC's sharded softmax); :func:`all_reduce_max` — elementwise max over
  ranks, without gradient (a numerically stable log-sum-exp).
* :func:`gather_with_grad` — the same, differentiable: the backward sums the gradient of the concatenation over
  ranks and hands each rank the slice of its own rows (times ``grad_scale``). Under DDP's gradient averaging
  this is exactly the gradient of a loss over the global batch (global mining, PartialFC). PML's distributed
  wrapper gathers without gradient and rescales the loss instead.
* :func:`collective_device` — where CPU data must go for a collective (the CUDA device under NCCL).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "world_size", "rank", "barrier", "collective_device", "broadcast_object",
           "all_gather_sizes", "all_gather_rows", "gather_with_grad", "all_reduce_max", "all_reduce_sum_with_grad"]


def is_distributed() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size(group: Any = None) -> int:
    """Ranks in ``group`` (the default group when None); 1 without a process group."""
    return dist.get_world_size(group) if is_distributed() else 1


def rank(group: Any = None) -> int:
    """This process's rank in ``group``; 0 without a process group."""
    return dist.get_rank(group) if is_distributed() else 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if is_distributed():
        dist.barrier()


def collective_device(group: Any = None) -> torch.device:
    """The device whose tensors the collectives of ``group`` take: the current CUDA device under NCCL (which
    handles no CPU tensor), the CPU otherwise (gloo, or no process group). For callers holding CPU data."""
    if is_distributed() and dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: object | None, src: int = 0) -> object:
    """``obj`` from rank ``src`` on every rank (pickled between trusted ranks of one job)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_sizes(rows: int, device: torch.device, group: Any = None) -> list[int]:
    """Every rank's ``rows`` in rank order (one small all-gather)."""
    if world_size(group) == 1:
        return [int(rows)]
    mine = torch.tensor([int(rows)], dtype=torch.long, device=device)
    parts = [torch.empty_like(mine) for _ in range(world_size(group))]
    dist.all_gather(parts, mine, group=group)
    return [int(p.item()) for p in parts]


def _gather_padded(x: Tensor, sizes: list[int], group: Any) -> Tensor:
    padded = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    chunks = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded.contiguous(), group=group)
    return torch.cat([chunk[:n] for chunk, n in zip(chunks, sizes)])


def all_gather_rows(x: Tensor, group: Any = None, sizes: list[int] | None = None) -> Tensor:
    """Every rank's rows of ``x`` concatenated along dim 0 in rank order, without gradient.

    ``sizes`` (every rank's row count, e.g. from :func:`all_gather_sizes`) saves one collective when known;
    ranks may hold different numbers of rows. ``x`` itself without a process group.
    """
    if world_size(group) == 1:
        return x
    sizes = all_gather_sizes(x.shape[0], x.device, group) if sizes is None else sizes
    with torch.no_grad():
        return _gather_padded(x.detach(), sizes, group)


class _GatherWithGrad(torch.autograd.Function):
    """Forward: every rank's rows concatenated. Backward: the gradient summed over ranks, own rows kept."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, sizes: list[int], group: Any, grad_scale: float) -> Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank, ctx.group, ctx.grad_scale = sizes, dist.get_rank(group), group, grad_scale
        return _gather_padded(x, sizes, group)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        own = grad[start:start + ctx.sizes[ctx.rank]]
        return (own * ctx.grad_scale if ctx.grad_scale != 1.0 else own), None, None, None


def gather_with_grad(x: Tensor, group: Any = None, sizes: list[int] | None = None,
                     grad_scale: float = 1.0) -> Tensor:
    """Differentiable :func:`all_gather_rows`: the backward sums the concatenation's gradient over ranks and
    returns this rank's rows times ``grad_scale``. ``x`` itself without a process group."""
    if world_size(group) == 1:
        return x
    sizes = all_gather_sizes(x.shape[0], x.device, group) if sizes is None else sizes
    return _GatherWithGrad.apply(x, sizes, group, float(grad_scale))


def all_reduce_max(x: Tensor, group: Any = None) -> Tensor:
    """Elementwise maximum of ``x`` over the ranks of ``group``, without gradient (``x`` itself alone)."""
    if world_size(group) == 1:
        return x
    out = x.detach().contiguous().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX, group=group)
    return out


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_ranks x; the backward is the same sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        ctx.group = group
        out = x.contiguous().clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        out = grad.contiguous().clone()
        dist.all_reduce(out, group=ctx.group)
        return out, None


def all_reduce_sum_with_grad(x: Tensor, group: Any = None) -> Tensor:
    """Σ of ``x`` over the ranks of ``group``, differentiable (the gradient is summed likewise); ``x`` alone."""
    if world_size(group) == 1:
        return x
    return _AllReduceSum.apply(x, group)
