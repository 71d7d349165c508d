"""The per-mode batch sources (xbm, semi_online, offline) inside the trainer: statistics, pools, refreshes, resume."""

from __future__ import annotations

import math

import pytest
import torch

from massface.training.trainer import Trainer

EXPECTED_STATS = {"xbm": "miner_memory_filled", "semi_online": "miner_pool_batches", "offline": "miner_embedded"}



@pytest.mark.parametrize("mode", sorted(EXPECTED_STATS))
def test_each_mode_trains_and_logs_its_miner_statistics(tmp_path, mode, mode_config):
    trainer = Trainer(mode_config(tmp_path, mode, scale=2, memory_size=16), log=lambda m: None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.fit()["status"] == "completed"
    assert all(math.isfinite(h["loss"]) for h in trainer.history) and len(trainer.history) == 3
    assert EXPECTED_STATS[mode] in trainer.history[-1] and trainer.history[-1]["miner_num_triplets"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))



def test_semi_online_pool_of_scale_batches_feeds_several_steps(tmp_path, mode_config):
    trainer = Trainer(mode_config(tmp_path, "semi_online", steps=4, scale=3), log=lambda m: None)
    assert trainer.sampler.p == 3 * 4, "one sampler batch is a pool of scale × P identities"
    trainer.fit()
    pool_batches = trainer.history[0]["miner_pool_batches"]
    assert pool_batches >= 4 and trainer.history[0]["miner_pool_size"] == 3 * 4 * 2
    assert trainer._batches_in_pass == 1, "four steps came from the first pool"



def test_offline_mode_re_mines_every_refresh_every_steps(tmp_path, mode_config):
    logs = []
    trainer = Trainer(mode_config(tmp_path, "offline", steps=5, refresh_every=2, subset=30), log=logs.append)
    trainer.fit()
    refreshes = [m for m in logs if m.startswith("offline mining")]
    assert [m.split(":")[0] for m in refreshes] == [f"offline mining at step {s}" for s in (0, 2, 4)]
    assert all("from 30 images" in m for m in refreshes)
    assert trainer.history[-1]["miner_embedded"] == 30



def test_xbm_resume_restores_the_memory_and_equals_an_uninterrupted_run(tmp_path, mode_config):
    straight = Trainer(mode_config(tmp_path / "a", "xbm", steps=5, memory_size=24), log=lambda m: None)
    straight.fit()
    first = Trainer(mode_config(tmp_path / "b", "xbm", steps=5, memory_size=24), log=lambda m: None)
    first.fit(until=2)
    del first
    resumed = Trainer(mode_config(tmp_path / "b", "xbm", steps=5, memory_size=24), log=lambda m: None)
    assert int(resumed.memory.num_filled) == 16, "two batches of 8 restored from the checkpoint"
    resumed.fit()
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history][2:]
    assert torch.equal(resumed.memory.contents()[0], straight.memory.contents()[0])
