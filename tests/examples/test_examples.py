"""The shipped example configs validate, and the quickstart trains (one short epoch)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from massface.training.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted((EXAMPLES / "casia_lfw").glob("*.yaml"))
                         + sorted((EXAMPLES / "finetune_pretrained").glob("*.yaml")), ids=lambda p: p.name)
def test_casia_configs_validate(path):
    cfg = load_config(path)
    assert cfg.data.format == "rec" and cfg.data.path.endswith("train.rec")


def test_quickstart_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart.py", "--epochs", "1", "--p", "16"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "epoch 1: loss" in out and "held-out rank-1" in out


def test_pml_interop_example_runs(capsys):
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(EXAMPLES / "pml_interop.py"), run_name="__main__")
    assert done.value.code == 0
    assert "XBM + BatchMinMaxMiner" in capsys.readouterr().out
