"""Trainer: resume mid-epoch, non-finite losses, SIGINT."""

from __future__ import annotations

import pytest
import torch

from massface.training.trainer import Trainer, TrainingStopped


def test_resume_mid_epoch_equals_uninterrupted_run(tmp_path, tiny_config):
    straight = Trainer(tiny_config(tmp_path / "a"), log=lambda m: None)
    assert straight.fit()["status"] == "completed"
    first = Trainer(tiny_config(tmp_path / "b"), log=lambda m: None)
    assert first.fit(until=2) == {"step": 2, "status": "paused", "eval": {}, "skipped_steps": 0}
    del first
    resumed = Trainer(tiny_config(tmp_path / "b"), log=lambda m: None)  # picks up checkpoints/latest.pt
    assert resumed.step == 2
    resumed.fit()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(straight.head.weight, resumed.head.weight)
    losses = [h["loss"] for h in straight.history]
    assert [h["loss"] for h in resumed.history] == losses[2:]
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5 and "miner_active_fraction" in lines[0]



def test_non_finite_loss_stops_with_a_clear_message_or_is_skipped(tmp_path, nan_on_call, tiny_config):
    trainer = Trainer(tiny_config(tmp_path / "n"), log=lambda m: None)
    with torch.no_grad():
        trainer.head.weight.fill_(float("nan"))
    with pytest.raises(TrainingStopped, match="non-finite loss at step 1"):
        trainer.fit()
    assert not (tmp_path / "n" / "checkpoints" / "latest.pt").exists()

    skipper = Trainer(tiny_config(tmp_path / "s", on_nan="skip", steps=3), log=lambda m: None)
    nan_on_call(skipper, 2)
    before = {k: v.clone() for k, v in skipper.model.state_dict().items()}
    result = skipper.fit()
    assert result["status"] == "completed" and result["skipped_steps"] == 1 and result["step"] == 3
    assert all(torch.isfinite(v).all() for v in skipper.model.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in skipper.model.state_dict().items())

    stuck = Trainer(tiny_config(tmp_path / "x", on_nan="skip"), log=lambda m: None)
    stuck.MAX_CONSECUTIVE_SKIPS = 3
    with torch.no_grad():
        stuck.head.weight.fill_(float("nan"))
    with pytest.raises(TrainingStopped, match="3 consecutive non-finite losses"):
        stuck.fit()



def test_sigint_writes_a_final_checkpoint_and_resumes(tmp_path, tiny_config):
    import os
    import signal

    trainer = Trainer(tiny_config(tmp_path / "i", steps=50), log=lambda m: None)
    original = trainer._log_step

    def log_then_interrupt(*args, **kwargs):
        original(*args, **kwargs)
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would; handled, not raised

    trainer._log_step = log_then_interrupt
    result = trainer.fit()
    assert result["status"] == "interrupted" and result["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = Trainer(tiny_config(tmp_path / "i", steps=50), log=lambda m: None)
    assert resumed.step == 2
