"""The CASIA-WebFace → LFW recipe as shipped: stage 1, stage 2 from its checkpoint, then ``massface eval``.

A miniature ``faces_webface_112x112`` (SynthFaces in insightface's layout: ``train.rec``, ``train.idx``,
``property``, ``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``) stands in for the real one, and the shipped configs
run with only sizes, paths and steps overridden — so the path a user takes to reproduce MassFace works end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from massface.evaluation.cli import main as eval_main
from massface.training.cli import main as train_main

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "casia_lfw"


@pytest.fixture(scope="module")
def webface(miniature_webface) -> Path:
    """``faces_webface_112x112`` in miniature at 112x112 (see conftest.py)."""
    return miniature_webface(112)


@pytest.mark.slow
def test_stage1_stage2_and_eval_run_as_shipped(webface, sizes_paths_steps, tmp_path, capsys):
    stage1 = tmp_path / "runs" / "casia_stage1_cosface"
    argv = [str(RECIPE / "stage1_cosface.yaml"), *sizes_paths_steps(webface, stage1, 3),
            "--set", "schedule.warmup_steps=1", "--set", "schedule.milestones=[2]"]
    assert train_main(argv) == 0, capsys.readouterr().err[-2000:]
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["status"] == "completed" and "lfw" in first["eval"]

    stage2 = tmp_path / "runs" / "casia_stage2_triplet"
    argv = [str(RECIPE / "stage2_triplet_minmax.yaml"), *sizes_paths_steps(webface, stage2, 3),
            "--set", f"model.init_checkpoint={stage1 / 'checkpoints' / 'latest.pt'}",
            "--set", "loss.head.pretrain_steps=1"]
    assert train_main(argv) == 0, capsys.readouterr().err[-2000:]
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["status"] == "completed" and second["step"] == 3
    metrics = [json.loads(line) for line in (stage2 / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_metric" in m for m in metrics), "stage 2 trains the triplet part after the head-only step"

    out = tmp_path / "eval-out"
    assert eval_main(["--model", str(stage2 / "checkpoints" / "latest.pt"), "--backbone", "mobilefacenet_massface",
                      "--embedding-size", "1024", "--data-dir", str(webface), "--out", str(out), "--quiet",
                      "--no-plots", "--batch-size", "16"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["sets"]) == {"lfw", "cfp_fp", "agedb_30"}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results["sets"].values())
