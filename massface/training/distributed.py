"""Process-group set-up under torchrun, and the trainer's view of the collectives in :mod:`massface.distributed`.

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

import torch
import torch.distributed as dist

from massface import distributed as collectives
from massface.distributed import barrier, broadcast_object, is_distributed, rank, world_size

__all__ = [
    "DistEnv",
    "init_distributed",
    "is_distributed",
    "world_size",
    "rank",
    "gather_with_grad",
    "gather_labels",
    "any_rank",
    "min_over_ranks",
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
        """Whether this is rank 0 (the one that writes files and logs)."""
        return self.rank == 0


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


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0, differentiable (:func:`massface.distributed.gather_with_grad`);
    every rank passes the same number of rows (the P×K sampler guarantees it), so no size exchange is needed."""
    return collectives.gather_with_grad(x, sizes=[x.shape[0]] * world_size())


def gather_labels(labels: torch.Tensor) -> torch.Tensor:
    """All ranks' labels concatenated in rank order (no gradient; equal sizes as in :func:`gather_with_grad`)."""
    return collectives.all_gather_rows(labels, sizes=[labels.shape[0]] * world_size())


def any_rank(flag: bool, device: torch.device) -> bool:
    """Returns True on every rank when ``flag`` is true on any rank (``flag`` itself without a process group)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def min_over_ranks(value: int, device: torch.device) -> int:
    """Returns the smallest ``value`` over all ranks (``value`` itself without a process group)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())
