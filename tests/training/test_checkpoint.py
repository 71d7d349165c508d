"""training.checkpoint: atomic saves never leave a torn latest checkpoint."""

from __future__ import annotations

import pytest
import torch

from massface.training.checkpoint import CheckpointManager, atomic_save


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
