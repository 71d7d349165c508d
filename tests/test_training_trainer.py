"""Trainer: config validation, exact mid-epoch resume, NaN handling, checkpoints and schedules."""

from __future__ import annotations

import pytest
import torch

from massface.training.checkpoint import CheckpointManager, atomic_save
from massface.training.config import ConfigError, ScheduleConfig, config_from_dict, load_config
from massface.training.schedules import lr_factor
from massface.training.trainer import Trainer, TrainingStopped


def tiny_config(out, **train):
    return config_from_dict({
        "seed": 3,
        "output_dir": str(out),
        "data": {"format": "synthetic", "synthetic_identities": 12, "synthetic_images_per_identity": 4,
                 "p": 4, "k": 2, "workers": 0, "transform": "none", "synthetic_image_size": 32},
        "model": {"backbone": "mobilefacenet", "embedding_size": 32, "input_size": 32},
        "loss": {"triplet": {"miner": "min_max", "margin": 0.25},
                 "head": {"name": "cosface", "m": 0.25, "weight": 0.5}},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"kind": "cosine", "warmup_steps": 1},
        "train": {"steps": 5, "log_every": 1, "checkpoint_every": 2, **train},
    })


def test_resume_mid_epoch_equals_uninterrupted_run(tmp_path):
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


def test_non_finite_loss_stops_with_a_clear_message_or_is_skipped(tmp_path, nan_on_call):
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


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key loss.triplet.minr"):
        config_from_dict({"loss": {"triplet": {"minr": "x"}}})
    with pytest.raises(ConfigError, match=r"loss.triplet.miner: 'minmax' is not one of"):
        config_from_dict({"loss": {"triplet": {"miner": "minmax"}}})
    with pytest.raises(ConfigError, match="data.p must be >= 1"):
        config_from_dict({"data": {"p": 0}})
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        config_from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="data.path is required"):
        config_from_dict({"data": {"format": "rec"}})
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data:\n  p: 8\n")
    cfg = load_config(cfg_file, ["data.k=3", "loss.head.name=arcface", "schedule.milestones=[10, 20]"])
    assert (cfg.data.p, cfg.data.k, cfg.loss.head.name, cfg.schedule.milestones) == (8, 3, "arcface", [10, 20])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_schedules():
    cos = ScheduleConfig(kind="cosine", warmup_steps=10, min_lr=0.0)
    assert lr_factor(0, cos, 110, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, cos, 110, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, cos, 110, 0.1) == pytest.approx(0.5)
    assert lr_factor(110, cos, 110, 0.1) == pytest.approx(0.0)
    step = ScheduleConfig(kind="step", milestones=[5, 8], gamma=0.1)
    assert [lr_factor(s, step, 10, 1.0) for s in (4, 5, 8)] == pytest.approx([1.0, 0.1, 0.01])
    poly = ScheduleConfig(kind="poly", power=2.0)
    assert lr_factor(5, poly, 10, 1.0) == pytest.approx(0.25)


def test_atomic_checkpoint_never_leaves_a_torn_latest(tmp_path, monkeypatch):
    mgr = CheckpointManager(tmp_path, keep=2)
    for step in (1, 2, 3):
        mgr.save({"step": step}, step)
    assert [p.name for p in mgr.periodic()] == ["step_00000002.pt", "step_00000003.pt"]

    def crash(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"step": 4}, mgr.latest)
    monkeypatch.undo()
    assert mgr.load_latest(required=("step",))["step"] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_sigint_writes_a_final_checkpoint_and_resumes(tmp_path):
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
