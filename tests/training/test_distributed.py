"""Global mining under DDP (2 processes, gloo, CPU): gradients equal one process on the same global batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from massface.losses import TripletLoss
from massface.mining import BatchHardestMiner
from massface.training.trainer import GlobalTripletLoss
from tests._gloo import free_port


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
    torch.set_num_threads(1)
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
        dist.barrier()  # no rank tears its group down while the other still talks to it
        del model, loss, emb  # the DDP reducer's threads end before the group goes ("terminate called ...")
    finally:
        dist.destroy_process_group()




def _spawn(worker, world: int, tmp_path) -> None:
    """Run ``worker(rank, world, port, out_dir)`` in ``world`` spawned processes on one free port."""
    mp.start_processes(worker, args=(world, free_port(), str(tmp_path)), nprocs=world, start_method="spawn")

@pytest.mark.distributed
@pytest.mark.slow
def test_global_mining_gradients_match_single_process(tmp_path):
    world = 2
    _spawn(_worker, world, tmp_path)
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



def _trainer_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from massface.training.config import config_from_dict
    from massface.training.trainer import Trainer

    cfg = config_from_dict({
        "seed": 1, "output_dir": out_dir,
        "data": {"format": "synthetic", "synthetic_identities": 16, "synthetic_images_per_identity": 4,
                 "synthetic_image_size": 32, "p": 2, "k": 2, "workers": 0, "transform": "none"},
        "model": {"backbone": "mobilefacenet", "embedding_size": 16, "input_size": 32,
                  "freeze_stages": 2, "freeze_steps": 2},  # released at step 2: DDP must reduce them from then on
        "loss": {"triplet": {"miner": "hardest"}, "head": {"name": "arcface", "weight": 0.5}},
        "train": {"steps": 3, "log_every": 1, "checkpoint_every": 3, "device": "cpu"},
    })
    trainer = Trainer(cfg, log=lambda m: None)
    trainer.fit()
    params = {name: p.detach() for name, p in trainer.model.named_parameters()}  # BN buffers: rank 0's at forward
    torch.save({"model": params, "triplets": trainer.miner.num_triplets},
               os.path.join(out_dir, f"trainer_rank{rank}.pt"))
    dist.destroy_process_group()



@pytest.mark.distributed
@pytest.mark.slow
def test_trainer_under_two_gloo_processes_stays_in_sync_and_resumes_in_one(tmp_path):
    world = 2
    _spawn(_trainer_worker, world, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"trainer_rank{r}.pt") for r in range(world))
    # shard_mining (the default): each rank mined its own P×K anchors (hardest: one triplet each) against the
    # gathered batch -- together the global batch's P×K×world anchors
    assert r0["triplets"] == r1["triplets"] == 2 * 2, "every rank mined its own share of the global batch"
    for (name, a), (_, b) in zip(r0["model"].items(), r1["model"].items()):
        assert torch.equal(a, b), name
    # the 2-rank checkpoint resumes in a single process (world-size independent sampler and state)
    from massface.training.config import config_from_dict
    from massface.training.trainer import Trainer

    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 3
    cfg = config_from_dict({**state["config"], "train": {**state["config"]["train"], "steps": 4}})
    single = Trainer(cfg, log=lambda m: None)
    assert single.step == 3
    assert single.fit()["step"] == 4



def _modes_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from massface.training.config import config_from_dict
    from massface.training.trainer import Trainer

    results = {}
    for mode in ("xbm", "semi_online", "offline", "sharded"):
        cfg = config_from_dict({
            "seed": 2, "output_dir": os.path.join(out_dir, mode),
            "data": {"format": "synthetic", "synthetic_identities": 16, "synthetic_images_per_identity": 4,
                     "synthetic_image_size": 32, "p": 2, "k": 3, "workers": 0, "transform": "none"},
            "model": {"backbone": "mobilefacenet", "embedding_size": 16, "input_size": 32},
            "loss": {"triplet": {"miner": "all", "margin": 0.5, "shard_mining": mode == "sharded"}},
            "mining": {"mode": "online" if mode == "sharded" else mode, "scale": 2, "memory_size": 24, "refresh_every": 2, "max_batches_per_pool": 2},
            "train": {"steps": 3, "log_every": 1, "checkpoint_every": 3, "device": "cpu"},
        })
        trainer = Trainer(cfg, log=lambda m: None)
        trainer.fit()
        results[mode] = {
            "model": {name: p.detach().clone() for name, p in trainer.model.named_parameters()},
            "memory": trainer.memory.contents()[1] if trainer.memory is not None else None,
            "losses": [h["loss"] for h in trainer.history],
        }
    torch.save(results, os.path.join(out_dir, f"modes_rank{rank}.pt"))
    dist.destroy_process_group()



@pytest.mark.distributed
@pytest.mark.slow
def test_mining_modes_under_two_gloo_processes_stay_in_sync(tmp_path):
    world = 2
    _spawn(_modes_worker, world, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"modes_rank{r}.pt") for r in range(world))
    for mode in ("xbm", "semi_online", "offline", "sharded"):
        assert len(r0[mode]["losses"]) == len(r1[mode]["losses"]) == 3, mode
        for (name, a), (_, b) in zip(r0[mode]["model"].items(), r1[mode]["model"].items()):
            assert torch.equal(a, b), f"{mode}: {name}"
    assert torch.equal(r0["xbm"]["memory"], r1["xbm"]["memory"]), "every rank enqueues the same global batch"
    assert r0["xbm"]["memory"].numel() == 24
    assert r0["sharded"]["losses"] == r1["sharded"]["losses"], "sharded mining logs the global loss on every rank"


def _sharded_objectives():
    from massface.losses import FusedTripletLoss, JointLoss
    from massface.mining import BatchAllMiner, BatchMinMaxMiner, BatchMinMinMiner, SemiHardMiner

    return {
        "hardest": lambda shard: GlobalTripletLoss(BatchHardestMiner(margin=0.5), TripletLoss(margin=0.5),
                                                  gather=shard is not None, shard=bool(shard)),
        "min_max_nonzero": lambda shard: GlobalTripletLoss(BatchMinMaxMiner(margin=0.5),
                                                          TripletLoss(margin=0.5, reduction="nonzero_mean"),
                                                          gather=shard is not None, shard=bool(shard)),
        "all_sum": lambda shard: GlobalTripletLoss(BatchAllMiner(margin=0.5), TripletLoss(margin=0.5, reduction="sum"),
                                                  gather=shard is not None, shard=bool(shard)),
        "fused_all": lambda shard: GlobalTripletLoss(None, FusedTripletLoss("all", 0.5), gather=shard is not None,
                                                    shard=bool(shard)),
        "fused_semihard": lambda shard: GlobalTripletLoss(None, FusedTripletLoss("semihard", 0.5),
                                                         gather=shard is not None, shard=bool(shard)),
        "min_min": lambda shard: GlobalTripletLoss(BatchMinMinMiner(margin=0.5), TripletLoss(margin=0.5),
                                                  gather=shard is not None, shard=bool(shard)),
        "semihard_mined": lambda shard: GlobalTripletLoss(SemiHardMiner(margin=0.5), TripletLoss(margin=0.5, soft=True),
                                                         gather=shard is not None, shard=bool(shard)),
        "joint": lambda shard: JointLoss(GlobalTripletLoss(BatchMinMaxMiner(margin=0.5), TripletLoss(margin=0.5),
                                                           gather=shard is not None, shard=bool(shard)),
                                         _head(), metric_weight=0.7, head_weight=0.3),
    }


def _head():
    from massface.losses import CosFace

    torch.manual_seed(5)
    return CosFace(6, 8, s=8.0, m=0.2).double()


def _parameters(model, objective):
    """The backbone's and (for the joint loss) the head's parameters."""
    head = getattr(objective, "head", None)
    return list(model.parameters()) + (list(head.parameters()) if head is not None else [])


def _sharded_data():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(24, 10, generator=g, dtype=torch.float64)
    y = torch.arange(8).repeat(3)  # every identity on every rank: positives and negatives cross ranks
    return x, y


def _sharded_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = _sharded_data()
        part = x.shape[0] // world
        out = {}
        for name, make in _sharded_objectives().items():
            model, objective = torch.nn.parallel.DistributedDataParallel(_model()), make(True)
            loss = objective(model(x[rank * part : (rank + 1) * part]), y[rank * part : (rank + 1) * part])
            loss.backward()
            grads = [p.grad.clone() for p in _parameters(model.module, objective)]
            for g in grads[len(list(model.parameters())):]:  # the head: averaged as DDP would if it wrapped it
                dist.all_reduce(g)
                g /= world
            value = loss.detach().clone()
            dist.all_reduce(value)  # the rank-local head loss: its mean over the ranks is the global one
            out[name] = {"loss": loss.detach(), "mean_loss": value / world, "grads": grads}
            del model, loss
        torch.save(out, os.path.join(out_dir, f"sharded{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_sharded_global_mining_gives_the_single_process_gradient(tmp_path, world):
    _spawn(_sharded_worker, world, tmp_path)
    x, y = _sharded_data()
    for name, make in _sharded_objectives().items():
        model, objective = _model(), make(None)
        loss = objective(model(x), y)  # one process, the whole global batch
        loss.backward()
        params = _parameters(model, objective)
        for rank in range(world):
            got = torch.load(tmp_path / f"sharded{rank}.pt")[name]
            value = got["mean_loss"] if name == "joint" else got["loss"]
            torch.testing.assert_close(value, loss.detach(), rtol=1e-10, atol=1e-12, msg=name)
            assert len(got["grads"]) == len(params)
            for g, p in zip(got["grads"], params):
                torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12, msg=name)
