"""Global mining under DDP (2 processes, gloo, CPU): gradients equal one process on the same global batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from massface.losses import TripletLoss
from massface.mining import BatchHardestMiner
from massface.training.trainer import GlobalTripletLoss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 10, generator=g, dtype=torch.float64)
    y = torch.arange(8).repeat_interleave(2)  # rank 0 gets identities 0-3, rank 1 gets 4-7
    return x, y


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(10, 12), torch.nn.Tanh(), torch.nn.Linear(12, 6)).double()


def _objective(gather: bool):
    return GlobalTripletLoss(BatchHardestMiner(margin=0.5), TripletLoss(margin=0.5), gather=gather)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = _data()
        half = x.shape[0] // world
        model = torch.nn.parallel.DistributedDataParallel(_model())
        objective = _objective(gather=True)
        emb = model(x[rank * half : (rank + 1) * half])
        loss = objective(emb, y[rank * half : (rank + 1) * half])
        loss.backward()
        torch.save({"loss": loss.detach(), "num_triplets": objective.miner.num_triplets,
                    "grads": [p.grad for p in model.parameters()]}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_global_mining_gradients_match_single_process(tmp_path):
    world = 2
    mp.start_processes(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, start_method="spawn")
    x, y = _data()
    model = _model()
    objective = _objective(gather=False)
    loss = objective(model(x), y)
    loss.backward()
    for rank in range(world):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["num_triplets"] == 16, "every rank mines over the global batch"
        torch.testing.assert_close(got["loss"], loss.detach())
        for g, p in zip(got["grads"], model.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12)
