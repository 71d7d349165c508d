"""training.schedules: the learning-rate factor."""

from __future__ import annotations

import pytest

from massface.training.config import ScheduleConfig
from massface.training.schedules import lr_factor


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
