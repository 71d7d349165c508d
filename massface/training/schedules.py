"""Learning-rate schedules: linear warm-up, then constant, step, polynomial or cosine decay.

The factor is a pure function of the optimizer step, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import math

import torch

from massface.training.config import ScheduleConfig, check_schedule

__all__ = ["lr_factor", "build_scheduler"]


def lr_factor(step: int, cfg: ScheduleConfig, total_steps: int, base_lr: float) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    warm-up: (step + 1) / warmup_steps for step < warmup_steps; then with t = (step − warmup) / (total − warmup):
    constant 1; step γ^(number of milestones ≤ step); poly (1 − t)^power; cosine
    r + (1 − r)(1 + cos πt)/2 with r = min_lr / base_lr (poly decays to r as well).
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "step":
        return cfg.gamma ** sum(1 for m in cfg.milestones if step >= m)
    span = max(total_steps - cfg.warmup_steps, 1)
    t = min(max((step - cfg.warmup_steps) / span, 0.0), 1.0)
    floor = cfg.min_lr / base_lr if base_lr > 0 else 0.0
    if cfg.kind == "poly":
        return floor + (1.0 - floor) * (1.0 - t) ** cfg.power
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int,
                    base_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` to every parameter group (their own base lrs kept).

    ``cfg`` is checked against the run first (:func:`~massface.training.config.check_schedule`: warm-up
    shorter than ``total_steps``, milestones inside it, ``0 < gamma <= 1``, ``0 <= min_lr <= base_lr``, ...),
    so a schedule built by hand cannot give a negative or NaN learning rate; a ``ConfigError`` names the key.
    """
    check_schedule(cfg, total_steps, base_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, total_steps, base_lr))
