"""PartialFC: single-process fallback, sampling, and a 2-process gloo run against the full softmax."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from massface.losses import AdaFace, CosFace, CurricularFace, MagFace, PartialFC, Softmax, SubCenterArcFace
from tests._gloo import free_port

D, C = 6, 7



def make_heads() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"cosface": CosFace(D, C, s=16.0), "curricular": CurricularFace(D, C, s=16.0),
            "adaface": AdaFace(D, C, s=16.0), "magface": MagFace(D, C, s=16.0),
            "subcenter": SubCenterArcFace(D, C, s=16.0, k=2)}



def global_batch() -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    gen = torch.Generator().manual_seed(1)
    sizes = [5, 4]  # ranks may hold different batch sizes
    x = torch.randn(sum(sizes), D, generator=gen, dtype=torch.float64) * 15
    y = torch.randint(0, C, (sum(sizes),), generator=gen)
    y[3] = -1
    return x, y, sizes



def test_single_process_matches_head() -> None:
    for name, head in make_heads().items():
        head = head.double()
        ref = copy.deepcopy(head)
        pfc = PartialFC(head, sample_rate=1.0)
        x, y, _ = global_batch()
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        loss, want = pfc(xa, y), ref.loss(xb, y)
        torch.testing.assert_close(loss, want, msg=name)
        loss.backward()
        want.backward()
        torch.testing.assert_close(pfc.weight.grad, ref.weight.grad, msg=name)
        torch.testing.assert_close(xa.grad, xb.grad, msg=name)
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(pfc.state_dict()[f"head.{key}" if key != "weight" else key], value)



def test_no_loss_cap() -> None:
    head = CosFace(D, C, s=64.0, m=0.35).double()
    x = torch.randn(4, D, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():  # every target centre points away from its sample: p_target ~ e^-128
        head.weight[y] = -x
        head.weight[4:] = x[:3]
    ref = copy.deepcopy(head)
    pfc = PartialFC(head)
    loss = pfc(x, y)
    assert loss.item() > 69.0776 + 10
    torch.testing.assert_close(loss, ref.loss(x, y))



def test_sampling_keeps_positives_and_matches_sub_softmax() -> None:
    torch.manual_seed(0)
    head = CosFace(D, 40, s=16.0).double()
    pfc = PartialFC(head, sample_rate=0.25, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 5, 5, 17, -1, 39])
    index, remapped = pfc.sample(y)
    assert index is not None and index.numel() == 10 and (index.diff() > 0).all()
    assert set(y[y >= 0].tolist()) <= set(index.tolist())
    assert (index[remapped[y >= 0]] == y[y >= 0]).all() and remapped[4] == -1
    x = torch.randn(6, D, dtype=torch.float64)
    pfc.generator = torch.Generator().manual_seed(3)
    loss = pfc(x, y)
    loss.backward()
    sub = CosFace(D, 10, s=16.0).double()
    with torch.no_grad():
        sub.weight.copy_(pfc.weight[index])
    torch.testing.assert_close(loss, sub.loss(x, remapped))
    unsampled = torch.ones(40, dtype=torch.bool)
    unsampled[index] = False
    assert (pfc.weight.grad[unsampled] == 0).all() and (pfc.weight.grad[index] != 0).any()
    pfc.eval()  # no sampling at evaluation
    assert pfc.sample(y)[0] is None
    many = PartialFC(CosFace(D, 8), sample_rate=0.25)  # more positives than num_sample: keep them all
    index, _ = many.sample(torch.tensor([0, 1, 2, 3]))
    assert index.tolist() == [0, 1, 2, 3]



def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="Softmax"):
        PartialFC(Softmax(D, C))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_rate"):
        PartialFC(CosFace(D, C), sample_rate=0.0)
    head = CosFace(D, C)
    PartialFC(head)
    with pytest.raises(RuntimeError, match="PartialFC"):
        head(torch.randn(2, D), torch.tensor([0, 1]))
    pfc = PartialFC(CosFace(D, C))
    with pytest.raises(RuntimeError, match="full centre matrix"):
        pfc.load_state_dict({"weight": torch.zeros(C - 1, D)})






def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """allclose with a message; torch.testing.assert_close would import torch.distributed.tensor (~5 s) here."""
    assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-7, atol=1e-9), (got, want)



def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y, sizes = global_batch()
        start = sum(sizes[:rank])
        own = slice(start, start + sizes[rank])
        results: dict[str, object] = {}
        for name, head in make_heads().items():
            head = head.double()
            ref = copy.deepcopy(head)
            full = head.weight.detach().clone()
            pfc = PartialFC(head, sample_rate=1.0, scale_embedding_grad=False)
            x_own = x[own].clone().requires_grad_()
            loss = pfc(x_own, y[own])
            loss.backward()
            x_ref = x.clone().requires_grad_()
            want = ref.loss(x_ref, y)
            want.backward()
            k = pfc.k
            rows = slice(pfc.class_start * k, (pfc.class_start + pfc.num_local) * k)
            _close(loss, want)
            _close(pfc.weight.grad, ref.weight.grad[rows])
            _close(x_own.grad, x_ref.grad[own])
            for key, value in ref.state_dict().items():  # running statistics identical to the 1-process head
                if key != "weight":
                    _close(pfc.head.state_dict()[key], value)
            state = pfc.state_dict()
            _close(state["weight"], full)
            results[name] = loss.item()
            if name == "cosface":  # re-shard a full matrix on load; DDP-compensated embedding gradient
                pfc.load_state_dict({**state, "weight": full * 2})
                _close(pfc.weight.detach(), 2 * full[rows])
                pfc.scale_embedding_grad = True
                x_own = x[own].clone().requires_grad_()
                pfc.weight.grad = None
                pfc(x_own, y[own]).backward()
                _close(x_own.grad, world * x_ref.grad[own])
                if rank == 0:
                    torch.save(state, Path(out_dir) / "pfc.pt")
        sampled = PartialFC(CosFace(D, 40, s=16.0).double(), sample_rate=0.3,
                            generator=torch.Generator().manual_seed(rank))
        loss = sampled(x[own], torch.randint(0, 40, (sizes[rank],), generator=torch.Generator().manual_seed(9)))
        loss.backward()
        assert math.isfinite(float(loss))
        results["sampled"] = float(loss)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()



@pytest.mark.distributed
def test_two_process_gloo_matches_full_softmax(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0 == r1  # the loss is the same global value on every rank
    # a checkpoint written by 2 ranks loads in one process
    state = torch.load(tmp_path / "pfc.pt")
    single = PartialFC(make_heads()["cosface"].double())
    single.load_state_dict(state)
    _close(single.weight.detach(), state["weight"])
    assert single.weight.shape == (C, D)
