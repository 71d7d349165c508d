"""Process-group set-up under torchrun, and the all-gather with gradient used for global mining.

Global mining (MassFace mined across all its GPUs): every rank gathers the embeddings of all ranks with
:func:`gather_with_grad` and computes the same loss over the global batch; the backward pass sums the
gradient over ranks and hands each rank the slice of its own embeddings. Under DDP's gradient averaging
this gives exactly the gradient of the global-batch loss (tested against one process on the same batch).
PML's distributed wrapper gathers without gradient and rescales the loss by the world size instead.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
    "init_distributed",
    "is_distributed",
    "world_size",
    "rank",
    "gather_with_grad",
    "gather_labels",
    "barrier",
    "broadcast_object",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: global rank, world size, local rank and the device it should use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Without those variables this is a single process. ``device="auto"`` takes ``cuda:LOCAL_RANK`` when CUDA
    is available (backend NCCL) and the CPU otherwise (backend gloo).
    """
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if env_world > 1 and not is_distributed():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistEnv(rank(), world_size(), local_rank, dev)


class _GatherWithGrad(torch.autograd.Function):
    """Forward: concatenation of every rank's tensor (rank order). Backward: the summed gradient of the
    concatenation, sliced to this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0, differentiable; ``x`` itself when not distributed.

    Every rank must pass the same shape (the P×K sampler guarantees equal batch sizes).
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_labels(labels: torch.Tensor) -> torch.Tensor:
    """All ranks' labels concatenated in rank order (no gradient)."""
    if not is_distributed() or dist.get_world_size() == 1:
        return labels
    parts = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Optional[object], src: int = 0) -> object:
    """``obj`` from rank ``src`` on every rank (pickled)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
