"""massface compare: grid expansion, skipping finished runs, the report's intervals and paired sentences."""

from __future__ import annotations

import json

import pytest
import yaml

from massface.training.compare import load_grid, main
from massface.training.config import ConfigError

BASE = {
    "seed": 0, "output_dir": "unused",
    "data": {"format": "synthetic", "synthetic_identities": 12, "synthetic_images_per_identity": 4, "p": 4, "k": 2,
             "workers": 0, "transform": "none", "synthetic_image_size": 32},
    "model": {"backbone": "mobilefacenet", "embedding_size": 16, "input_size": 32},
    "train": {"steps": 2, "log_every": 1, "checkpoint_every": 100},
}


def write(tmp_path, grid: dict, base: dict | None = None):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **grid}, sort_keys=False))
    return path


@pytest.mark.slow
def test_grid_runs_skips_finished_runs_and_reports(tmp_path, capsys):
    from massface.data.synthetic import SynthFaces

    bins = tmp_path / "heldout"
    SynthFaces(4, 2, seed=0, image_size=32).export(bins, bin_name="lfw.bin", n_folds=2, pairs_per_fold=4)
    base = {**BASE, "eval": {"sets": [str(bins / "lfw.bin")], "batch_size": 16},
            "data": {**BASE["data"], "synthetic_label_noise": 0.25},
            "train": {**BASE["train"], "probe_every": 1, "triplet_grid_steps": [2]}}
    grid = write(tmp_path, {"seeds": [0, 1], "axes": {"loss.triplet.miner": ["hardest", "min_max"]},
                            "baseline": {"loss.triplet.miner": "hardest"}, "metric": "lfw"}, base)
    out = tmp_path / "out"
    assert main([str(grid), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["values"]["loss.triplet.miner"], r["seed"]) for r in results] == [
        ("hardest", 0), ("hardest", 1), ("min_max", 0), ("min_max", 1)]
    assert all(r["status"] == "completed" and r["step"] == 2 and "lfw" in r["eval"] for r in results)
    report = (out / "report.md").read_text()
    assert "| loss.triplet.miner=hardest |" in report and " ± " in report
    for measure in ("**accuracy**", "**auc**", "**tar@0.001**", "**tar@0.0001**"):
        assert measure in report
    assert set(results[0]["metrics"]["lfw"]) == {"accuracy", "auc", "tar@0.001", "tar@0.0001"}
    assert "![distances](distances.png)" in report and (out / "distances.png").stat().st_size > 10_000
    assert "- loss.triplet.miner=min_max vs loss.triplet.miner=hardest, lfw:" in report
    # mining dynamics with bands over seeds, the probe's hardness histogram and the triplet grids
    first = results[0]
    assert [d["step"] for d in first["dynamics"]] == [1, 2] and "miner_active_fraction" in first["dynamics"][0]
    assert [q["step"] for q in first["probe"]] == [1, 2] and "false_negative_fraction" in first["probe"][0]
    assert first["triplet_grids"] == ["triplets/step_2.png"] and first["seconds"] > 0
    for figure in ("dynamics.png", "hardness.png", "triplets/00_step_2.png", "triplets/01_step_2.png"):
        assert (out / figure).stat().st_size > 10_000, figure
        assert f"]({figure})" in report
    assert "4 runs; training and evaluation took" in report and "| false-negative share % |" in report
    stamp = (out / "runs" / results[0]["name"] / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main([str(grid), "--out", str(out)]) == 0
    assert "4 already finished, 0 to train" in capsys.readouterr().err
    assert (out / "runs" / results[0]["name"] / "result.json").stat().st_mtime_ns == stamp


def test_grid_expansion_and_names(tmp_path):
    grid = load_grid(write(tmp_path, {"seeds": [3, 4], "axes": {"loss.triplet.miner": ["hardest", "semihard"],
                                                                "loss.triplet.margin": [0.2, 0.3]}}))
    assert len(grid.runs) == 8 and grid.runs[0].overrides() == [
        'loss.triplet.miner="hardest"', "loss.triplet.margin=0.2", "seed=3"]
    assert grid.runs[0].name == "loss.triplet.miner=hardest,loss.triplet.margin=0.2,seed=3"
    plain = load_grid(write(tmp_path, {"seeds": [0]}))
    assert [r.config_name for r in plain.runs] == ["base"]


@pytest.mark.parametrize(("grid", "message"), [
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"seeds": [0, 0]}, "distinct"),
    ({"seeds": [0], "axes": {"loss.triplet.miner": "hardest"}}, "axes.loss.triplet.miner must be a non-empty list"),
    ({"seeds": [0], "axes": {"loss.triplet.miner": ["nope"]}}, r"run loss.triplet.miner=nope: .*loss.triplet.miner"),
    ({"seeds": [0], "axes": {"seed": [1, 2]}}, "axes.seed: set by the grid itself"),
    ({"seeds": [0], "axes": {"loss.triplet.miner": ["hardest"]}, "baseline": {"loss.triplet.miner": "min_max"}},
     "is not a configuration of the grid"),
    ({"seeds": [0], "extra": 1}, "unknown key 'extra'"),
])
def test_hostile_grids_are_named(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=message):
        load_grid(write(tmp_path, grid))


def test_unreadable_grids_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_grid(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not a valid YAML mapping"):
        load_grid(bad)
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_two_stage_regime_trains_stage1_once_and_starts_every_run_from_it(tmp_path):
    stage1 = {**BASE, "loss": {"triplet": {"enabled": False}, "head": {"name": "cosface"}}}
    (tmp_path / "stage1.yaml").write_text(yaml.safe_dump(stage1))
    grid = write(tmp_path, {"seeds": [0, 1], "axes": {"loss.triplet.miner": ["hardest", "min_max"]},
                            "stage1": "stage1.yaml"})
    out = tmp_path / "out"
    assert main([str(grid), "--out", str(out)]) == 0
    latest = out / "stage1" / "checkpoints" / "latest.pt"
    assert latest.exists()
    assert json.loads((out / "stage1" / "result.json").read_text())["status"] == "completed"
    assert "| stage 1 alone (every run's start) |" in (out / "report.md").read_text()
    for run in json.loads((out / "results.json").read_text()):
        cfg = yaml.safe_load((out / "runs" / run["name"] / "config.yaml").read_text())
        assert cfg["model"]["init_checkpoint"] == str(latest) and run["status"] == "completed"
    stamp = latest.stat().st_mtime_ns
    assert main([str(grid), "--out", str(out)]) == 0
    assert latest.stat().st_mtime_ns == stamp, "stage 1 is not trained again when every run is finished"


def test_pretrained_start_and_regime_errors(tmp_path):
    import torch

    from massface.backbones import build_backbone

    torch.save(build_backbone("mobilefacenet", 16, input_size=32).state_dict(), tmp_path / "start.pt")
    grid = load_grid(write(tmp_path, {"seeds": [0], "init_checkpoint": "start.pt"}))
    assert grid.init_checkpoint == (tmp_path / "start.pt").resolve() and grid.stage1 is None
    (tmp_path / "stage1.yaml").write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match="stage1 and init_checkpoint are two regimes"):
        load_grid(write(tmp_path, {"seeds": [0], "init_checkpoint": "start.pt", "stage1": "stage1.yaml"}))
    with pytest.raises(ConfigError, match="stage1 .*missing.yaml is not a file"):
        load_grid(write(tmp_path, {"seeds": [0], "stage1": "missing.yaml"}))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({**BASE, "train": {"steps": -1}}))
    with pytest.raises(ConfigError, match="stage1: .*train.steps"):
        load_grid(write(tmp_path, {"seeds": [0], "stage1": "broken.yaml"}))
