"""examples/finetune_pretrained as shipped: an arcface_torch-format IResNet checkpoint fine-tuned with min-max
triplets + CosFace on a miniature ``faces_webface_112x112``, then ``massface eval`` on the result.

The checkpoint is small (an r18-sized IResNet at 32x32 with D = 64, written in arcface_torch's ``backbone.pth``
layout); the shipped config runs with only sizes, paths, steps and the CPU's ``train.amp=none`` overridden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from massface.backbones import build_backbone, export_pretrained, load_pretrained
from massface.evaluation.cli import main as eval_main
from massface.training.cli import main as train_main

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "finetune_pretrained"


@pytest.mark.slow
def test_finetune_recipe_runs_from_an_arcface_torch_checkpoint(miniature_webface, sizes_paths_steps, tmp_path,
                                                               capsys):
    data = miniature_webface(32)
    torch.manual_seed(0)
    pretrained = build_backbone("iresnet18", 64, input_size=32)
    path = export_pretrained(pretrained, tmp_path / "pretrained" / "backbone.pth", "arcface_torch")
    out = tmp_path / "runs" / "finetune"
    argv = [str(RECIPE / "r50_minmax_cosface.yaml"), *sizes_paths_steps(data, out, 4),
            "--set", f"model.init_checkpoint={path}", "--set", "model.backbone=iresnet18",
            "--set", "model.embedding_size=64", "--set", "model.input_size=32",
            "--set", "model.freeze_steps=3", "--set", "loss.head.pretrain_steps=1",
            "--set", "schedule.warmup_steps=1", "--set", "train.amp=none"]
    assert train_main(argv) == 0, capsys.readouterr().err[-2000:]
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["step"] == 4 and "lfw" in result["eval"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_metric" in m for m in metrics), "the triplet part trains after the head-only step"

    tuned = load_pretrained(out / "checkpoints" / "latest.pt")
    start = {k: v for k, v in pretrained.state_dict().items()}
    after = tuned.state_dict()
    stem = "features.0.0.weight"  # frozen for steps 1-3 (head-only step, then freeze_stages), learnt at step 4
    late = "features.8.body.4.weight"  # stage 4: learns from step 2
    assert not torch.equal(after[late], start[late])
    assert torch.equal(after["features.0.1.running_mean"], start["features.0.1.running_mean"]), "freeze_bn"
    assert not torch.equal(after[stem], start[stem])

    report = tmp_path / "eval"
    assert eval_main(["--model", str(out / "checkpoints" / "latest.pt"), "--data-dir", str(data), "--out",
                      str(report), "--quiet", "--no-plots", "--batch-size", "16"]) == 0
    results = json.loads((report / "results.json").read_text())
    assert set(results["sets"]) == {"lfw", "cfp_fp", "agedb_30"}
