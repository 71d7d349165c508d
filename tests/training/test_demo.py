"""The main job (`massface demo`) end to end at smoke size: data export, before/after evaluation, report."""

from __future__ import annotations

import json

import pytest

from massface.training.demo import main


@pytest.mark.slow
def test_demo_smoke(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--out", str(out), "--cache", str(cache), "--steps", "3", "--identities", "16", "--images", "4",
            "--pairs-per-fold", "20", "--p", "4", "--k", "2", "--workers", "0", "--image-size", "32",
            "--embedding-size", "16"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["accuracy_before"] <= 1.0 and 0.0 <= results["accuracy_after"] <= 1.0
    assert results["steps"] == 3 and results["data"]["heldout_pairs"] == 400
    for name in ("report.md", "loss_curve.png", "distances_before.png", "distances_after.svg", "roc.png"):
        assert (out / name).stat().st_size > 0, name
    assert "before" in capsys.readouterr().out
    # the generated data is cached and reused
    assert main(argv + ["--out", str(tmp_path / "again")]) == 0
    assert len(list(cache.iterdir())) == 1
